"""From a loaded table to the built-in trainer's feature matrix, target and holdout split.

Nothing is dropped or imputed: a row with a missing value, a non-numeric feature or a
missing column fails the run with InvalidData, so a model is never trained on less (or
other) data than the pinned data set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import feature_matrix
from gyre_runtime.training.algorithms import Task


@dataclass(frozen=True)
class TrainingData:
    """The rows to learn from: float32 features (in model input order) and the target."""

    features: list[str]
    x: NDArray[np.float32]
    y: NDArray[Any]


@dataclass(frozen=True)
class Split:
    """Row indices of the training and holdout parts, and whether classes were balanced."""

    train: NDArray[np.intp]
    holdout: NDArray[np.intp]
    stratified: bool

    def to_json(self) -> dict[str, Any]:
        """The split as metadata.json records it."""
        return {
            "trainRows": len(self.train),
            "holdoutRows": len(self.holdout),
            "stratified": self.stratified,
        }


def prepare(table: Any, target: str, features: Sequence[str] | None, task: Task) -> TrainingData:
    """Check the columns and values of a table; return its feature matrix and target."""
    names = list(features) if features is not None else _all_but(table, target)
    _check_columns(table, [*names, target])
    for name in names:
        _check_numeric(table, name)
    x = feature_matrix(table, names, dtype=np.float32)
    target_column = table.column(target)
    _check_complete(x, pc.is_null(target_column, nan_is_null=True).to_numpy(), names, target)
    y = _classes(target, target_column) if task is Task.CLASSIFICATION else _values(target_column)
    return TrainingData(features=names, x=x, y=y)


def _all_but(table: Any, target: str) -> list[str]:
    return [name for name in table.column_names if name != target]


def _check_columns(table: Any, wanted: list[str]) -> None:
    missing = [name for name in wanted if name not in table.column_names]
    if missing:
        raise RuntimeFailure(
            "InvalidData",
            f"column(s) {', '.join(map(repr, missing))} not in the data set; "
            f"it has: {', '.join(table.column_names)}",
            columns=missing,
        )
    if not wanted[:-1]:
        raise RuntimeFailure("InvalidData", "no feature columns besides the target")


def _is_numeric(kind: Any) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _check_numeric(table: Any, name: str) -> None:
    kind = table.schema.field(name).type
    if not _is_numeric(kind):
        raise RuntimeFailure(
            "InvalidData",
            f"feature {name!r} is {kind}, not numeric: the built-in trainer takes numeric "
            "features only (encode categories first, or use your own trainer image)",
            column=name,
        )


def _check_complete(
    x: NDArray[np.float32], target_missing: NDArray[np.bool_], features: list[str], target: str
) -> None:
    # Nulls arrive as NaN in the float32 matrix; values beyond float32's range as infinity.
    bad_cells = ~np.isfinite(x)
    bad_rows = bad_cells.any(axis=1) | target_missing
    count = int(bad_rows.sum())
    if count == 0:
        return
    columns = [features[int(index)] for index in np.flatnonzero(bad_cells.any(axis=0))]
    columns += [target] if target_missing.any() else []
    raise RuntimeFailure(
        "InvalidData",
        f"{count} of {len(bad_rows)} rows have a null, NaN or infinite value (first at row "
        f"{int(np.argmax(bad_rows))}, in column(s) {', '.join(map(repr, columns))}); the "
        "built-in trainer neither drops nor imputes rows: clean the data set",
        rows=count,
        columns=columns,
    )


def _values(column: Any) -> NDArray[np.float64]:
    if not _is_numeric(column.type):
        raise RuntimeFailure(
            "InvalidData", f"the target is {column.type}, not numeric: a regression needs numbers"
        )
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(), dtype=np.float64)


def _classes(target: str, column: Any) -> NDArray[Any]:
    kind = column.type
    if pa.types.is_dictionary(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        labels: NDArray[Any] = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        labels = np.asarray(pc.cast(column, pa.int64()).to_numpy(), dtype=np.int64)
    elif pa.types.is_floating(kind) and _integral(column):
        labels = np.asarray(column.to_numpy(), dtype=np.int64)
    else:
        raise RuntimeFailure(
            "InvalidData",
            f"target {target!r} is {kind} with non-integer values: a classifier needs "
            "integer, boolean or text labels (or use a regression algorithm)",
        )
    if len(np.unique(labels)) < 2:
        raise RuntimeFailure("InvalidData", f"target {target!r} has a single class")
    return labels


def _integral(column: Any) -> bool:
    values = np.asarray(column.to_numpy(), dtype=np.float64)
    return bool(np.all(values == np.round(values)))


def holdout_split(y: NDArray[Any], fraction: float, seed: int, task: Task) -> Split:
    """Hold out `fraction` of the rows, reproducibly for a seed.

    Classification splits are stratified when every class has at least two rows and each
    part has room for every class, so the holdout's class mix matches the data's.
    """
    rows = np.arange(len(y))
    holdout_rows = math.ceil(fraction * len(y))
    if holdout_rows >= len(y):
        raise RuntimeFailure(
            "InvalidData",
            f"{len(y)} rows are too few to hold out a fraction of {fraction:g} and still train",
        )
    stratify = y if task is Task.CLASSIFICATION and _stratifiable(y, holdout_rows) else None
    train, holdout = train_test_split(
        rows, test_size=fraction, random_state=seed, stratify=stratify
    )
    return Split(train=train, holdout=holdout, stratified=stratify is not None)


def _stratifiable(y: NDArray[Any], holdout_rows: int) -> bool:
    counts = np.unique(y, return_counts=True)[1]
    return bool(counts.min() >= 2 and min(holdout_rows, len(y) - holdout_rows) >= len(counts))
