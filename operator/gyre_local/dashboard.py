"""The demo's live view: a Snapshot of the loop drawn as rich tables, and the closing summary.

`render(snapshot)` is a pure function from what the demo gathered (the watched objects as
dicts, the timeline, the load generator's figures) to one rich renderable: a resources table
(one row per object with its phase and key detail), the last drift check's per-feature scores
(the features the demo shifted highlighted), the traffic figures and the timeline with
elapsed seconds. The demo's loop only gathers snapshots; rich's Live draws them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gyre_local.milestones import (
    KINDS,
    Mark,
    Milestone,
    Obj,
    canary_step,
    failure_reason,
    shown_metrics,
    status_of,
)
from gyre_local.workload import SHIFT_SDS, LoadFigures

TIMELINE_ROWS = 16
CANARY_BAR = 20
_MARK_STYLES = {
    Mark.DONE: "green",
    Mark.ACTION: "cyan",
    Mark.NOTICE: "yellow",
    Mark.FAILED: "bold red",
}
_PHASE_STYLES = {
    "Ready": "green",
    "Succeeded": "green",
    "Healthy": "green",
    "Drifted": "yellow",
    "InsufficientData": "yellow",
    "RolledBack": "red",
    "Failed": "bold red",
}
_SHIFTED_STYLE = "bold magenta"
_DRIFTED_MARK = "●"


@dataclass(frozen=True)
class Entry:
    """A milestone and when it happened, in seconds since the demo applied the examples."""

    elapsed: float
    milestone: Milestone


@dataclass(frozen=True)
class Snapshot:
    """Everything the view shows at one moment."""

    elapsed: float
    now: datetime  # wall clock (UTC), for times the objects' status gives
    objects: Mapping[str, Mapping[str, Obj]]  # kind -> name -> object
    timeline: Sequence[Entry] = ()
    load: LoadFigures | None = None  # None until traffic starts
    shifted_features: frozenset[str] = field(default_factory=frozenset)


def entry_text(entry: Entry) -> Text:
    """One timeline line: mark, elapsed seconds, what happened."""
    mark = entry.milestone.mark
    text = Text(f"{mark} ", style=_MARK_STYLES[mark])
    text.append(f"{entry.elapsed:6.1f}s  ")
    text.append(entry.milestone.text, style="red" if mark is Mark.FAILED else "")
    return text


def render(snapshot: Snapshot) -> RenderableType:
    """The whole view of a snapshot."""
    # The resources and the timeline take the width the traffic and drift tables leave.
    top = Table.grid(expand=True, padding=(0, 1))
    top.add_column(ratio=1)
    top.add_column()
    top.add_row(resources_table(snapshot), load_panel(snapshot.load))
    bottom = Table.grid(expand=True, padding=(0, 1))
    bottom.add_column()
    bottom.add_column(ratio=1)
    bottom.add_row(drift_table(snapshot), timeline_panel(snapshot.timeline))
    title = Text.assemble(
        ("gyre local demo", "bold"),
        f"  {snapshot.elapsed:.0f}s since the examples were applied · Ctrl-C stops",
    )
    return Group(title, top, bottom)


def resources_table(snapshot: Snapshot) -> Table:
    """One row per watched object: kind, name, phase, and what matters about it now."""
    table = Table(title="Resources", title_justify="left", expand=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("Name", no_wrap=True)
    table.add_column("Phase", no_wrap=True)
    table.add_column("Detail", ratio=1)
    for kind in KINDS:
        objects = snapshot.objects.get(kind) or {}
        for name in sorted(objects, key=lambda n: _created(objects[n])):
            obj = objects[name]
            phase = str(status_of(obj).get("phase") or "-")
            table.add_row(
                kind, name, Text(phase, style=_PHASE_STYLES.get(phase, "cyan")),
                detail(kind, obj, snapshot.now),
            )  # fmt: skip
    return table


def detail(kind: str, obj: Obj, now: datetime) -> RenderableType:
    """The key detail of an object for its kind; why, for a Failed one."""
    status = status_of(obj)
    if status.get("phase") == "Failed":
        return Text(failure_reason(status), style="red", no_wrap=True, overflow="ellipsis")
    if kind == "Dataset":
        version = status.get("currentVersion") or {}
        count = len(status.get("versions") or [])
        if not version.get("digest"):
            return ""
        return f"version {str(version['digest'])[:12]} · {version.get('rows')} rows · {count} seen"
    if kind == "TrainingRun":
        shown = shown_metrics(status)
        digest = str(status.get("datasetDigest") or "")[:12]
        return " · ".join([*shown, *([f"data {digest}"] if digest else [])])
    if kind == "ModelVersion":
        spec = obj.get("spec") or {}
        return f"model {spec.get('model')} version {spec.get('version')}"
    if kind == "InferenceService":
        return _service_detail(obj)
    if kind == "DriftMonitor":
        return _monitor_detail(status, now)
    return ""


def _service_detail(obj: Obj) -> RenderableType:
    status = status_of(obj)
    stable, canary = status.get("stableVersion"), status.get("canaryVersion")
    text = f"stable v{stable}" if stable is not None else "no stable version"
    if canary is None:
        return text
    weight = int(status.get("canaryWeight") or 0)
    where = canary_step(obj) or "promoting"
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=100, completed=weight, width=CANARY_BAR), f"{weight}%")
    return Group(f"{text} · canary v{canary} · {where}", bar)


def _monitor_detail(status: Obj, now: datetime) -> str:
    check = status.get("lastCheck") or {}
    parts = [f"last {check.get('verdict')}, {check.get('samples')} samples"] if check else []
    runs = len(status.get("retrainRuns") or [])
    if runs:
        parts.append(f"{runs} retrain run{'s' * (runs != 1)}")
    next_check = _time(status.get("nextCheckTime"))
    if next_check is not None:
        parts.append(f"next check in {max(0, round((next_check - now).total_seconds()))}s")
    return " · ".join(parts) or "no check yet"


def drift_table(snapshot: Snapshot) -> RenderableType:
    """The last drift check's per-feature results, features the demo shifted highlighted."""
    monitors = snapshot.objects.get("DriftMonitor") or {}
    checks = [status_of(m).get("lastCheck") for m in monitors.values()]
    check = next((c for c in checks if c), None)
    if check is None:
        return Panel("no drift check yet", title="Drift", title_align="left")
    table = Table(
        title=f"Drift check {check.get('id')}: {check.get('verdict')}, "
        f"{check.get('samples')} samples",
        title_justify="left",
    )
    table.add_column("Feature", no_wrap=True)
    table.add_column("Method", no_wrap=True)
    table.add_column("Score", justify="right", no_wrap=True)
    table.add_column("Drift", justify="center", no_wrap=True)
    for feature in check.get("features") or []:
        name = str(feature.get("name"))
        moved = name in snapshot.shifted_features
        table.add_row(
            Text(name + (" (shifted)" if moved else ""), style=_SHIFTED_STYLE if moved else ""),
            str(feature.get("method")),
            _score(feature.get("score")),
            Text(_DRIFTED_MARK, style="red") if feature.get("drifted") else "",
        )
    return table


def load_panel(load: LoadFigures | None) -> Panel:
    """The load generator's figures, or when it starts."""
    if load is None:
        return Panel(
            "starts once the InferenceService is Ready", title="Traffic", title_align="left"
        )
    grid = Table.grid(padding=(0, 1))
    grid.add_row("sent", str(load.sent))
    grid.add_row("ok", Text(str(load.ok), style="green"))
    grid.add_row("failed", Text(str(load.failed), style="red" if load.failed else ""))
    grid.add_row("rate", f"{load.rate:.1f} req/s")
    grid.add_row(
        "rows",
        Text(f"shifted (+{SHIFT_SDS:g} sd)", style=_SHIFTED_STYLE) if load.shifted else "steady",
    )
    if load.last_error:
        grid.add_row("last error", Text(load.last_error[:120], style="red"))
    return Panel(grid, title="Traffic", title_align="left")


def timeline_panel(timeline: Sequence[Entry]) -> Panel:
    """The last TIMELINE_ROWS milestones."""
    shown = timeline[-TIMELINE_ROWS:]
    lines = Table.grid()
    lines.add_column(no_wrap=True, overflow="ellipsis")
    for entry in shown:
        lines.add_row(entry_text(entry))
    return Panel(lines if shown else Text("nothing yet"), title="Timeline", title_align="left")


def summary(
    snapshot: Snapshot, looks: Iterable[tuple[str, str]], *, with_timeline: bool
) -> RenderableType:
    """What happened (when the timeline was not printed line by line), the traffic, and
    where to look next: (what, command or URL) pairs."""
    parts: list[RenderableType] = []
    if with_timeline:
        parts.append(Text("What happened:", style="bold"))
        parts.extend(entry_text(e) for e in snapshot.timeline)
    if snapshot.load is not None:
        load = snapshot.load
        line = f"Requests: {load.sent} sent, {load.ok} ok, {load.failed} failed"
        parts.append(Text(line + (f" (last error: {load.last_error})" if load.failed else "")))
    parts.append(Text("Where to look next:", style="bold"))
    for what, where in looks:
        parts.append(Text.assemble(f"  {where}", (f"  # {what}", "dim")))
    return Group(*parts)


def _score(score: Any) -> str:
    return f"{score:.3g}" if isinstance(score, int | float) else "-"


def _created(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('creationTimestamp', '')} {metadata.get('name', '')}"


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
