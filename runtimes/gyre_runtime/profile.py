"""`gyre-runtime profile`: read a data set once; report its digest, statistics and a sample.

Writes, under `<artifact-root>/datasets/<name>/<digest>/`:
- `profile.json` (keys sorted; floats as JSON numbers, null when undefined):
  `{"dataset", "source", "format", "digest", "rows", "files": [uri...],
    "features": [column...], "target": column | null,
    "sample": {"uri", "rows", "seed"}, "validation": {"rules": {...}, "violations": [...]}}`
  where a column is
  `{"name", "type": "numeric", "count", "nullCount", "nullFraction", "min", "max", "mean",
    "std" (ddof=1), "quantiles": {"levels": [...], "values": [...]} (numpy's linear method),
    "histogram": {"edges": [21 floats], "counts": [20 ints]}}` or
  `{"name", "type": "categorical", "count", "nullCount", "nullFraction", "distinct",
    "frequencies": {value: count} (the 100 most frequent), "other": count of the rest}`.
  In a numeric column NaN and infinities count as missing.
- `sample.parquet`: up to --sample-rows rows of the profiled columns, drawn without
  replacement by numpy.random.default_rng(seed), in their original order.

The result reports digest, rows, both URIs, the number of features and no violations; a
validation rule the data breaks fails the run with ValidationFailed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.arguments import json_object
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import FORMATS, ColumnType, load_table, numeric_column

QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 100
DEFAULT_SAMPLE_ROWS = 100_000
MAX_LISTED_VALUES = 5
# Buckets for selecting order statistics: ~250 values each for a million rows.
SELECTION_BUCKETS = 4096


@dataclass(frozen=True)
class Column:
    """A column to profile: its name, type and whether it is the target."""

    name: str
    type: ColumnType
    target: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags the operator's profile Job passes."""
    parser.add_argument("--dataset", required=True, help="the Dataset's name")
    parser.add_argument("--source", required=True, help="the data's URI (a prefix ends in /)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--artifact-root", required=True, help="the artifact store's root URI")
    parser.add_argument("--schema", help="spec.schema as JSON; inferred when absent")
    parser.add_argument("--validation", help="spec.validation as JSON")
    parser.add_argument(
        "--sample-rows", type=_non_negative, default=DEFAULT_SAMPLE_ROWS, help="sample size"
    )
    parser.add_argument("--seed", type=int, default=0, help="the sample's random seed")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Profile the data set, write profile.json and sample.parquet, return the result."""
    schema = json_object("--schema", args.schema)
    rules = json_object("--validation", args.validation)
    features, target = declared_columns(schema)
    loaded = load_table(
        args.source, args.format, columns_types={column.name: column.type for column in features}
    )
    targets = [target] if target else []
    check_columns_present([column.name for column in features] + targets, loaded.table)
    columns = (features or inferred_columns(loaded.table.schema)) + [
        Column(name, _arrow_column_type(loaded.table, name), target=True) for name in targets
    ]
    table = loaded.table.select([column.name for column in columns])
    # The sample is drawn and encoded while the columns are profiled.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample") as background:
        sampled = background.submit(sample_parquet, table, args.sample_rows, args.seed)
        profiles = profile_columns(table, columns)
        violations = validation_violations(loaded.rows, profiles, rules, loaded.table)
        sample, sample_rows = sampled.result()

    directory = storage.join(args.artifact_root, "datasets", args.dataset, loaded.digest)
    sample_uri = storage.join(directory, "sample.parquet")
    profile_uri = storage.join(directory, "profile.json")
    _write(sample_uri, sample)
    document = {
        "dataset": args.dataset,
        "source": args.source,
        "format": args.format,
        "digest": loaded.digest,
        "rows": loaded.rows,
        "files": loaded.files,
        "features": [p for p, c in zip(profiles, columns, strict=True) if not c.target],
        "target": next((p for p, c in zip(profiles, columns, strict=True) if c.target), None),
        "sample": {"uri": sample_uri, "rows": sample_rows, "seed": args.seed},
        "validation": {"rules": rules or {}, "violations": violations},
    }
    _write(profile_uri, profile_json(document))
    if violations:
        raise RuntimeFailure(
            "ValidationFailed",
            "; ".join(violations),
            violations=violations,
            digest=loaded.digest,
            rows=loaded.rows,
            profileUri=profile_uri,
        )
    return {
        "digest": loaded.digest,
        "rows": loaded.rows,
        "profileUri": profile_uri,
        "sampleUri": sample_uri,
        "features": len(document["features"]),
        "violations": [],
    }


def _write(uri: str, data: bytes) -> None:
    try:
        storage.write_bytes(uri, data)
    except storage.StorageError as error:
        raise RuntimeFailure("ArtifactUnwritable", str(error), uri=uri) from error


def declared_columns(schema: Mapping[str, Any] | None) -> tuple[list[Column], str | None]:
    """The features spec.schema declares, in order, and its target column (if any)."""
    if not schema:
        return [], None
    try:
        features = [Column(str(f["name"]), _column_type(f["type"])) for f in schema["features"]]
    except (KeyError, TypeError) as error:
        raise RuntimeFailure(
            "InvalidArguments", f"--schema needs features of name and type: {error!r}"
        ) from error
    target = schema.get("target")
    return features, str(target) if target else None


def _column_type(value: Any) -> ColumnType:
    if value == "numeric":
        return "numeric"
    if value == "categorical":
        return "categorical"
    raise RuntimeFailure("InvalidArguments", f"feature type {value!r} is not numeric/categorical")


def inferred_columns(schema: Any) -> list[Column]:
    """Every column of a table: numeric when pyarrow's type is, categorical otherwise."""
    return [Column(field.name, _arrow_type(field.type)) for field in schema]


def _arrow_column_type(table: Any, name: str) -> ColumnType:
    return _arrow_type(table.schema.field(name).type)


def _arrow_type(arrow_type: Any) -> ColumnType:
    types = pa.types
    numeric = types.is_integer(arrow_type) or types.is_floating(arrow_type)
    return "numeric" if numeric or types.is_decimal(arrow_type) else "categorical"


def check_columns_present(declared: Sequence[str], table: Any) -> None:
    """Fail with InvalidData naming every declared column the data lacks."""
    names = table.column_names
    missing = [name for name in declared if name not in names]
    if missing:
        quoted = ", ".join(repr(name) for name in missing)
        subject = f"column {quoted} declared in spec.schema is"
        if len(missing) > 1:
            subject = f"columns {quoted} declared in spec.schema are"
        raise RuntimeFailure(
            "InvalidData",
            f"{subject} missing from the data (columns: {_listed(names, 50)})",
            missing=missing,
        )


def _listed(values: Sequence[str], limit: int) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values) - limit} more)"


def profile_columns(table: Any, columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Each column's statistics, computed in parallel (numpy and pyarrow release the GIL)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda column: profile_column(table, column), columns))


def profile_column(table: Any, column: Column) -> dict[str, Any]:
    """One column's statistics."""
    if column.type == "numeric":
        return {"name": column.name, **numeric_statistics(numeric_column(table, column.name))}
    return {"name": column.name, **categorical_statistics(table.column(column.name))}


def numeric_statistics(values: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Count, missing values, min, max, mean, std (ddof=1), quantiles and a histogram."""
    usable = np.isfinite(values)
    finite = values if usable.all() else values[usable]
    count = int(finite.size)
    statistics: dict[str, Any] = {
        "type": "numeric",
        **_counts(count, int(values.size)),
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "quantiles": {"levels": list(QUANTILE_LEVELS), "values": []},
        "histogram": {"edges": [], "counts": []},
    }
    if count == 0:
        return statistics
    levels = np.asarray(QUANTILE_LEVELS, dtype=np.float64)
    quantile_values = quantiles(finite, levels)
    low, high = float(quantile_values[0]), float(quantile_values[-1])
    # The range numpy would compute itself: min and max are the 0 and 1 quantiles.
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=_histogram_range(low, high))
    statistics.update(
        min=low,
        max=high,
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if count > 1 else None,
        quantiles={"levels": levels.tolist(), "values": quantile_values.tolist()},
        histogram={"edges": edges.tolist(), "counts": counts.tolist()},
    )
    return statistics


def _histogram_range(low: float, high: float) -> tuple[float, float]:
    """numpy.histogram's own range for data from low to high (a point widens to +-0.5)."""
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def quantiles(
    values: npt.NDArray[np.float64], levels: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """numpy.quantile's default (linear) method, from order statistics found without a sort."""
    last = values.size - 1
    virtual = last * levels
    below = np.floor(virtual).astype(np.int64)
    gamma = virtual - below
    above = np.minimum(below + 1, last)
    below = np.minimum(below, last)
    found = order_statistics(values, np.concatenate([below, above]))
    low, high = found[: len(levels)], found[len(levels) :]
    # numpy's _lerp: interpolate from the nearer end for accuracy.
    difference = high - low
    return np.where(gamma >= 0.5, high - difference * (1 - gamma), low + difference * gamma)


def order_statistics(
    values: npt.NDArray[np.float64], ranks: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """The values at the given ranks of the sorted finite values, without sorting them all.

    The values are spread over equal-width buckets between min and max (an order-preserving
    map); only the buckets holding a wanted rank are sorted. Heavily skewed data degrades
    to one sort of a large bucket, never to a wrong answer.
    """
    low, high = float(values.min()), float(values.max())
    span = high - low
    if span == 0:
        return np.full(len(ranks), low)
    if not np.isfinite(span):
        # The bucket width overflows: sort everything instead.
        ordered: npt.NDArray[np.float64] = np.sort(values)
        return ordered[ranks]
    buckets = min(values.size, SELECTION_BUCKETS)
    index = ((values - low) * (buckets / span)).astype(np.int64)
    np.minimum(index, buckets - 1, out=index)
    ends = np.cumsum(np.bincount(index, minlength=buckets))
    wanted_buckets = np.searchsorted(ends, ranks, side="right")
    wanted = np.zeros(buckets, dtype=bool)
    wanted[wanted_buckets] = True
    candidates: npt.NDArray[np.float64] = np.sort(values[wanted[index]])
    # Where each wanted bucket starts among the values and among the candidates.
    sizes = np.diff(ends, prepend=0)
    starts = ends - sizes
    kept = np.where(wanted, sizes, 0)
    candidate_starts = np.cumsum(kept) - kept
    positions = ranks - starts[wanted_buckets] + candidate_starts[wanted_buckets]
    found: npt.NDArray[np.float64] = candidates[positions]
    return found


def categorical_statistics(column: Any) -> dict[str, Any]:
    """Count, missing values, distinct values, the top frequencies and the rest's count."""
    strings = column if column.type == pa.string() else pc.cast(column, pa.string())
    frequencies = sorted(_value_counts(strings).items(), key=lambda item: (-item[1], item[0]))
    top = frequencies[:TOP_CATEGORIES]
    count = len(column) - column.null_count
    return {
        "type": "categorical",
        **_counts(count, len(column)),
        "distinct": len(frequencies),
        "frequencies": dict(top),
        "other": count - sum(n for _, n in top),
    }


def _value_counts(strings: Any) -> dict[str, int]:
    counted = pc.value_counts(strings.drop_null())
    values = counted.field("values").to_pylist()
    return dict(zip(values, counted.field("counts").to_pylist(), strict=True))


def _counts(count: int, rows: int) -> dict[str, Any]:
    nulls = rows - count
    return {"count": count, "nullCount": nulls, "nullFraction": nulls / rows if rows else 0.0}


def validation_violations(
    rows: int, profiles: Sequence[Mapping[str, Any]], rules: Mapping[str, Any] | None, table: Any
) -> list[str]:
    """One short line per broken rule: minRows, maxNullFraction, allowedCategories."""
    rules = rules or {}
    violations: list[str] = []
    min_rows = rules.get("minRows")
    if min_rows is not None and rows < min_rows:
        violations.append(f"rows {rows} below validation.minRows {min_rows}")
    max_null = rules.get("maxNullFraction")
    if max_null is not None:
        violations += [
            f"column {p['name']!r}: null fraction {p['nullFraction']:.4g} exceeds "
            f"validation.maxNullFraction {max_null}"
            for p in profiles
            if p["nullFraction"] > max_null
        ]
    for name, allowed in (rules.get("allowedCategories") or {}).items():
        violations += _category_violations(table, name, allowed)
    return violations


def _category_violations(table: Any, name: str, allowed: Sequence[str]) -> list[str]:
    if name not in table.column_names:
        return [f"column {name!r} in validation.allowedCategories is missing from the data"]
    column = table.column(name)
    strings = column if column.type == pa.string() else pc.cast(column, pa.string())
    unexpected = sorted(set(_value_counts(strings)) - set(allowed))
    if not unexpected:
        return []
    shown = ", ".join(repr(value) for value in unexpected[:MAX_LISTED_VALUES])
    more = len(unexpected) - MAX_LISTED_VALUES
    suffix = f" and {more} more" if more > 0 else ""
    return [f"column {name!r}: values {shown}{suffix} not in validation.allowedCategories"]


def sample_parquet(table: Any, rows: int, seed: int) -> tuple[bytes, int]:
    """Up to `rows` rows drawn without replacement, in original order, as Parquet bytes."""
    size = min(rows, table.num_rows)
    chosen = np.random.default_rng(seed).choice(table.num_rows, size=size, replace=False)
    sample = table.take(pa.array(np.sort(chosen)))
    sink = pa.BufferOutputStream()
    pq.write_table(sample, sink)
    return sink.getvalue().to_pybytes(), size


def profile_json(document: Mapping[str, Any]) -> bytes:
    """The profile as deterministic JSON (sorted keys, no NaN)."""
    return json.dumps(document, sort_keys=True, allow_nan=False, indent=1).encode()
