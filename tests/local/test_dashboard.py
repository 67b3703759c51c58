"""The live view and the summary, rendered from hand-made snapshots without a terminal."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table

from gyre_local.dashboard import (
    TIMELINE_ROWS,
    Entry,
    Snapshot,
    drift_table,
    entry_text,
    render,
    summary,
)
from gyre_local.milestones import Mark, Milestone
from gyre_local.workload import SHIFTED_FEATURES, LoadFigures, wine

NOW = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)
DIGEST = "9f2c1d7c4b0d5b3e2a8f6e1c7d9b0a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"


def text(renderable: RenderableType, width: int = 220) -> str:
    output = io.StringIO()
    Console(file=output, width=width, color_system=None).print(renderable)
    return output.getvalue()


def obj(name: str, spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec or {}, "status": status}


def features(drifted: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "method": "psi",
            "score": 1.234 if name in drifted else 0.0123,
            "drifted": name in drifted,
        }
        for name in wine().feature_names
    ]


OBJECTS = {
    "Dataset": {
        "wine": obj(
            "wine", phase="Ready", currentVersion={"digest": DIGEST, "rows": 178}, versions=[{}, {}]
        )
    },
    "TrainingRun": {
        "wine-1": obj(
            "wine-1",
            phase="Succeeded",
            datasetDigest=DIGEST,
            metrics={"accuracy": 0.97777, "f1_macro": 0.9761},
        )
    },
    "ModelVersion": {"wine-v2": obj("wine-v2", {"model": "wine", "version": 2}, phase="Ready")},
    "InferenceService": {
        "wine": obj(
            "wine",
            {"rollout": {"steps": [{"weight": 25}, {"weight": 50}]}},
            phase="Progressing",
            stableVersion=1,
            canaryVersion=2,
            canaryWeight=25,
            currentStep=0,
        )
    },
    "DriftMonitor": {
        "wine": obj(
            "wine",
            phase="Drifted",
            nextCheckTime="2026-01-02T15:04:17Z",
            lastCheck={
                "id": "c2",
                "verdict": "Drift",
                "samples": 612,
                "features": features(set(SHIFTED_FEATURES)),
            },
            retrainRuns=[{"name": "wine-retrain-c2"}],
        )
    },
}
LOAD = LoadFigures(sent=1234, ok=1230, failed=4, rate=39.84, shifted=True, last_error="HTTP 503")


def test_an_empty_snapshot_says_what_comes() -> None:
    shown = text(render(Snapshot(elapsed=3.2, now=NOW, objects={})))
    assert "gyre local demo  3s since the examples were applied" in shown
    assert "no drift check yet" in shown
    assert "starts once the InferenceService is Ready" in shown
    assert "nothing yet" in shown


def test_resources_show_phase_and_key_detail_per_kind() -> None:
    shown = text(render(Snapshot(elapsed=80, now=NOW, objects=OBJECTS)))
    for line in (
        "version 9f2c1d7c4b0d · 178 rows · 2 seen",
        "accuracy 0.978 · f1_macro 0.976 · data 9f2c1d7c4b0d",
        "model wine version 2",
        "stable v1 · canary v2 · step 1 of 2",
        "last Drift, 612 samples · 1 retrain run · next check in 12s",
    ):
        assert line in shown
    for phase in ("Succeeded", "Progressing", "Drifted"):
        assert phase in shown
    assert re.search(r"│ ━{5} +25% ", shown)  # a quarter of the canary bar


def test_a_failed_object_says_why() -> None:
    conditions = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "SourceUnreadable",
            "message": "s3://ml-models/wine-notebook/1/model.onnx: no credentials",
        }
    ]
    failed = obj(
        "wine-notebook-v1",
        {"model": "wine-notebook", "version": 1},
        phase="Failed",
        conditions=conditions,
    )
    objects = {"ModelVersion": {"wine-notebook-v1": failed}}
    shown = text(render(Snapshot(elapsed=9, now=NOW, objects=objects)))
    assert "Failed" in shown and "SourceUnreadable: s3://ml-models/wine-notebook/1/" in shown


def test_drift_scores_mark_drifted_features_and_highlight_the_shifted_ones() -> None:
    before = Snapshot(elapsed=80, now=NOW, objects=OBJECTS)
    shown = text(drift_table(before))
    assert "Drift check c2: Drift, 612 samples" in shown
    assert shown.count("●") == len(SHIFTED_FEATURES)
    assert "1.23" in shown and "0.0123" in shown and "(shifted)" not in shown
    after = Snapshot(
        elapsed=80, now=NOW, objects=OBJECTS, shifted_features=frozenset(SHIFTED_FEATURES)
    )
    table = drift_table(after)
    assert isinstance(table, Table)
    names = list(table.columns[0].cells)
    highlighted = {str(n).removesuffix(" (shifted)") for n in names if getattr(n, "style", "")}
    assert highlighted == set(SHIFTED_FEATURES)
    assert text(table).count("(shifted)") == len(SHIFTED_FEATURES)


def test_traffic_figures() -> None:
    shown = text(render(Snapshot(elapsed=80, now=NOW, objects={}, load=LOAD)))
    for line in ("sent 1234", "ok 1230", "failed 4", "39.8 req/s", "shifted (+1.5 sd)", "HTTP 503"):
        assert line in " ".join(shown.split())


def test_timeline_lines_and_only_the_latest_fit() -> None:
    entry = Entry(12.34, Milestone("Dataset wine Ready (version 9f2c1d7c4b0d, 178 rows)"))
    assert (
        entry_text(entry).plain == "✓   12.3s  Dataset wine Ready (version 9f2c1d7c4b0d, 178 rows)"
    )
    failed = Entry(3.0, Milestone("TrainingRun wine-1 Failed: GateNotMet: x", Mark.FAILED))
    assert entry_text(failed).plain.startswith("✗    3.0s  TrainingRun wine-1 Failed")
    timeline = [Entry(float(i), Milestone(f"milestone number {i}")) for i in range(40)]
    shown = text(render(Snapshot(elapsed=40, now=NOW, objects={}, timeline=timeline)))
    assert "milestone number 39" in shown
    assert f"milestone number {40 - TIMELINE_ROWS}" in shown
    assert f"milestone number {39 - TIMELINE_ROWS} " not in shown


def test_summary_says_what_happened_the_traffic_and_where_to_look() -> None:
    timeline = (Entry(1.0, Milestone("Dataset wine Ready")), Entry(99.0, Milestone("promoted")))
    snapshot = Snapshot(elapsed=99, now=NOW, objects={}, timeline=timeline, load=LOAD)
    looks = [("every Gyre object", "kubectl get gyre")]
    shown = text(summary(snapshot, looks, with_timeline=True))
    assert shown.splitlines() == [
        "What happened:",
        "✓    1.0s  Dataset wine Ready",
        "✓   99.0s  promoted",
        "Requests: 1234 sent, 1230 ok, 4 failed (last error: HTTP 503)",
        "Where to look next:",
        "  kubectl get gyre  # every Gyre object",
    ]
    plain = text(summary(Snapshot(elapsed=9, now=NOW, objects={}), looks, with_timeline=False))
    assert plain.splitlines() == ["Where to look next:", "  kubectl get gyre  # every Gyre object"]
