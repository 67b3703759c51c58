"""`gyre-runtime drift`: compare a served model's logged requests with its training data.

A DriftMonitor's check Job runs it. It reads the reference (a Dataset version's profile and
sample, see drift.reference), the window of logged requests (drift.window), runs the
statistics of drift.methods, writes the full report to --report and returns
`{"checkId", "verdict", "samples", "referenceRows", "driftedFeatureShare", "reportUri",
  "windowStart", "windowEnd", "features": [{"name", "method", "score", "drifted",
  "scores"}...], "featuresOmitted"}`, cut to fit the termination message (drift.report).
Fewer rows than --min-samples is the verdict InsufficientData, not a failure.

It exits 1 with ReferenceUnreadable, FeatureMissing, InvalidData, EmptyWindow,
ReportUnwritable or InvalidArgument.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gyre_runtime.arguments import json_object
from gyre_runtime.drift.methods import CORRECTIONS, CategoricalFeature, Settings, check
from gyre_runtime.drift.reference import load_reference
from gyre_runtime.drift.report import check_result, full_report, write_report
from gyre_runtime.drift.window import WindowSize, read_window
from gyre_runtime.result import RuntimeFailure


@dataclass(frozen=True)
class Rule:
    """What a value must be: a test, and how the message describes it."""

    description: str
    test: Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ENABLED = Rule("true or false", lambda value: isinstance(value, bool))
BINS = Rule("an integer from 2 to 100", lambda value: _is_integer(value) and 2 <= value <= 100)
POSITIVE = Rule("a number above 0", lambda value: _is_number(value) and value > 0)
P_VALUE = Rule("a number between 0 and 1 (both excluded)", lambda v: _is_number(v) and 0 < v < 1)
SHARE = Rule("a number above 0 and at most 1", lambda value: _is_number(value) and 0 < value <= 1)
CORRECTION = Rule(f"one of {', '.join(CORRECTIONS)}", lambda value: value in CORRECTIONS)
COUNT = Rule("an integer of at least 1", lambda value: _is_integer(value) and value >= 1)

# --methods in wire form: feature type -> method -> field -> (Settings field, rule).
METHOD_FIELDS: dict[str, dict[str, dict[str, tuple[str, Rule]]]] = {
    "numeric": {
        "psi": {
            "enabled": ("psi", ENABLED),
            "bins": ("psi_bins", BINS),
            "threshold": ("psi_threshold", POSITIVE),
        },
        "ks": {
            "enabled": ("ks", ENABLED),
            "pValue": ("ks_p_value", P_VALUE),
            "correction": ("ks_correction", CORRECTION),
        },
    },
    "categorical": {
        "chiSquared": {
            "enabled": ("chi_squared", ENABLED),
            "pValue": ("chi_squared_p_value", P_VALUE),
        },
        "jensenShannon": {
            "enabled": ("jensen_shannon", ENABLED),
            "threshold": ("jensen_shannon_threshold", SHARE),
        },
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags the operator's check Job passes."""
    parser.add_argument("--monitor", required=True, help="the DriftMonitor's name")
    parser.add_argument("--check-id", required=True, help="the check's identifier")
    parser.add_argument("--reference", required=True, help="the reference profile.json's URI")
    parser.add_argument(
        "--requests", required=True, help="the service's request logs: <root>/requests/<service>/"
    )
    window = parser.add_mutually_exclusive_group(required=True)
    window.add_argument("--window-requests", type=int, help="check the newest N logged requests")
    window.add_argument(
        "--window-seconds", type=float, help="check the requests logged in the last S seconds"
    )
    parser.add_argument(
        "--feature",
        action="extend",
        nargs="+",
        help="features to check (default: every feature of the reference but the target)",
    )
    parser.add_argument("--methods", help="spec.methods as JSON (camelCase; every key optional)")
    parser.add_argument("--min-samples", type=int, help="fewer rows: InsufficientData (500)")
    parser.add_argument(
        "--drifted-feature-share", type=float, help="drifted at this share of features (0.5)"
    )
    parser.add_argument("--report", required=True, help="where the full report goes (a URI)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check the window against the reference, write the report, return the result."""
    settings = settings_from(
        json_object("--methods", args.methods), args.min_samples, args.drifted_feature_share
    )
    size = window_size(args.window_requests, args.window_seconds)
    now = datetime.now(UTC)
    reference = load_reference(args.reference, args.feature)
    categorical = list(reference.categorical)
    window = read_window(args.requests, reference.numeric, categorical, size, now)
    checked = check(
        reference.numeric,
        reference.sorted_values,
        window.numeric,
        [
            CategoricalFeature(name, reference.categorical[name], window.categorical[name])
            for name in categorical
        ],
        settings,
    )
    write_report(
        args.report,
        full_report(
            monitor=args.monitor,
            check_id=args.check_id,
            time=now,
            settings=settings,
            reference=reference,
            requests_uri=args.requests,
            size=size,
            window=window,
            checked=checked,
        ),
    )
    return check_result(
        check_id=args.check_id,
        report_uri=args.report,
        settings=settings,
        reference=reference,
        window=window,
        checked=checked,
    )


def settings_from(
    methods: Mapping[str, Any] | None, min_samples: int | None, share: float | None
) -> Settings:
    """methods.Settings from --methods (wire form), --min-samples and
    --drifted-feature-share; an unknown key or a value out of range is InvalidArgument."""
    fields: dict[str, Any] = {}
    for kind, kind_methods in (methods or {}).items():
        known_methods = _known("--methods", METHOD_FIELDS, kind)
        for method, method_fields in _object(f"--methods {kind}", kind_methods).items():
            known_fields = _known(f"--methods {kind}", known_methods, method)
            for key, value in _object(f"--methods {kind}.{method}", method_fields).items():
                field, rule = _known(f"--methods {kind}.{method}", known_fields, key)
                fields[field] = _checked(f"--methods {kind}.{method}.{key}", value, rule)
    if min_samples is not None:
        fields["min_samples"] = _checked("--min-samples", min_samples, COUNT)
    if share is not None:
        fields["drifted_feature_share"] = _checked("--drifted-feature-share", share, SHARE)
    return Settings(**fields)


def window_size(requests: int | None, seconds: float | None) -> WindowSize:
    """The window the flags ask for (argparse makes them exclusive and one required)."""
    if requests is not None:
        return WindowSize(requests=_checked("--window-requests", requests, COUNT))
    return WindowSize(seconds=_checked("--window-seconds", seconds, POSITIVE))


def _known(where: str, known: Mapping[str, Any], key: str) -> Any:
    if key not in known:
        raise RuntimeFailure(
            "InvalidArgument", f"{where}: unknown key {key!r} (known: {', '.join(known)})"
        )
    return known[key]


def _object(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RuntimeFailure("InvalidArgument", f"{where} must be a JSON object, not {value!r}")
    return value


def _checked(name: str, value: Any, rule: Rule) -> Any:
    if not rule.test(value):
        raise RuntimeFailure("InvalidArgument", f"{name} must be {rule.description}, not {value!r}")
    return value
