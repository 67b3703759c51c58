"""What a drift check reports: the full report in the artifact store, the short result.

The full report (JSON, keys sorted, compact; numpy values as plain numbers, non-finite
numbers such as the outer PSI edges as null):
`{"monitor", "checkId", "time", "verdict", "samples", "driftedFeatureShare",
  "settings": {methods.Settings' fields},
  "reference": {"profileUri", "sampleUri", "dataset", "digest", "datasetRows", "rows"},
  "window": {"requestsUri", "requests", "seconds", "start", "end", "files": [uri...]},
  "features": [{every field of methods.FeatureResult}...]}`.

The result, the termination message, fits its 4096 bytes: scores rounded to 6 significant
digits; when too long, the scores of undrifted features go first, then all scores, then
features beyond what fits, drifted ones and the most severe kept, counted in
featuresOmitted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from gyre_runtime import storage
from gyre_runtime.drift.methods import CheckResult, FeatureResult, Settings
from gyre_runtime.drift.reference import Reference
from gyre_runtime.drift.window import Window, WindowSize
from gyre_runtime.result import RuntimeFailure, encode

SIGNIFICANT_DIGITS = 6
# Per deciding method: the Settings field of its threshold, and whether a larger score is
# worse (a distance) or a smaller one (a p-value).
THRESHOLDS: dict[str, tuple[str, bool]] = {
    "psi": ("psi_threshold", True),
    "ks": ("ks_p_value", False),
    "chi_squared": ("chi_squared_p_value", False),
    "jensen_shannon": ("jensen_shannon_threshold", True),
}
# Whose scores the result keeps, in the order tried until it fits.
SCORES_KEPT: tuple[Callable[[FeatureResult], bool], ...] = (
    lambda feature: True,
    lambda feature: feature.drifted,
    lambda feature: False,
)


def full_report(
    *,
    monitor: str,
    check_id: str,
    time: datetime,
    settings: Settings,
    reference: Reference,
    requests_uri: str,
    size: WindowSize,
    window: Window,
    checked: CheckResult,
) -> dict[str, Any]:
    """The full report of a check, JSON-ready."""
    document = {
        "monitor": monitor,
        "checkId": check_id,
        "time": timestamp(time),
        "verdict": checked.verdict,
        "samples": checked.samples,
        "driftedFeatureShare": checked.drifted_feature_share,
        "settings": dataclasses.asdict(settings),
        "reference": {
            "profileUri": reference.profile_uri,
            "sampleUri": reference.sample_uri,
            "dataset": reference.dataset,
            "digest": reference.digest,
            "datasetRows": reference.dataset_rows,
            "rows": reference.rows,
        },
        "window": {
            "requestsUri": requests_uri,
            "requests": size.requests,
            "seconds": size.seconds,
            "start": timestamp(window.start),
            "end": timestamp(window.end),
            "files": list(window.files),
        },
        "features": [dataclasses.asdict(feature) for feature in checked.features],
    }
    plain: dict[str, Any] = _plain(document)
    return plain


def write_report(uri: str, document: Mapping[str, Any]) -> None:
    """Write the report as JSON to the URI; ReportUnwritable when storage refuses it."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    try:
        storage.write_bytes(uri, text.encode())
    except storage.StorageError as error:
        raise RuntimeFailure("ReportUnwritable", str(error), uri=uri) from error


def check_result(
    *,
    check_id: str,
    report_uri: str,
    settings: Settings,
    reference: Reference,
    window: Window,
    checked: CheckResult,
) -> dict[str, Any]:
    """The short result of a check, cut to fit the termination message."""
    share = checked.drifted_feature_share
    result = {
        "checkId": check_id,
        "verdict": checked.verdict,
        "samples": checked.samples,
        "referenceRows": reference.rows,
        "driftedFeatureShare": None if share is None else rounded(share),
        "reportUri": report_uri,
        "windowStart": timestamp(window.start),
        "windowEnd": timestamp(window.end),
    }
    return _fitted(result, checked.features, settings)


def timestamp(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rounded(value: float) -> float | None:
    """A score to 6 significant digits; None when it is not finite."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else None


def severity(feature: FeatureResult, settings: Settings) -> float:
    """How far the deciding score is past its threshold (above 1: past it); an untested
    feature (no score) is the least severe."""
    field, larger_is_worse = THRESHOLDS[feature.method]
    if math.isnan(feature.score):
        return -math.inf
    threshold = float(getattr(settings, field))
    if larger_is_worse:
        return feature.score / threshold
    return threshold / feature.score if feature.score > 0 else math.inf


def _fitted(
    result: dict[str, Any], features: Sequence[FeatureResult], settings: Settings
) -> dict[str, Any]:
    """The result with as much per-feature detail as fits the termination message."""
    for keeps_scores in SCORES_KEPT:
        entries = [_entry(feature, scores=keeps_scores(feature)) for feature in features]
        candidate = {**result, "features": entries, "featuresOmitted": 0}
        if _fits(candidate):
            return candidate
    ranked = sorted(features, key=lambda f: (not f.drifted, -severity(f, settings)))
    lean = [_entry(feature, scores=False) for feature in ranked]
    kept = _longest_fitting_prefix(result, lean)
    return {**result, "features": lean[:kept], "featuresOmitted": len(lean) - kept}


def _longest_fitting_prefix(result: dict[str, Any], entries: list[dict[str, Any]]) -> int:
    fits, too_many = 0, len(entries)
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        omitted = len(entries) - middle
        if _fits({**result, "features": entries[:middle], "featuresOmitted": omitted}):
            fits = middle
        else:
            too_many = middle
    return fits


def _fits(result: dict[str, Any]) -> bool:
    try:
        encode(result)
    except ValueError:
        return False
    return True


def _entry(feature: FeatureResult, *, scores: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": feature.name,
        "method": feature.method,
        "score": rounded(feature.score),
        "drifted": feature.drifted,
    }
    if scores:
        entry["scores"] = {name: rounded(value) for name, value in feature.scores.items()}
    return entry


def _plain(value: Any) -> Any:
    """A JSON-ready copy: numpy values as Python ones, non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
