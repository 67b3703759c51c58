"""The reference of a drift check: a Dataset version's profile and its sample.

`gyre-runtime profile` wrote both (see gyre_runtime.profile): numeric features are compared
with the sample's values, each feature's row sorted ascending with missing values last, as
methods.check takes them; categorical features with the profile's frequencies over the
whole data set, the count beyond its top categories under methods.OTHER.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.drift.methods import OTHER
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import numeric_column


@dataclass(frozen=True)
class Reference:
    """What the window is compared with, and where it came from."""

    profile_uri: str
    sample_uri: str
    dataset: str
    digest: str
    dataset_rows: int
    numeric: tuple[str, ...]
    # (numeric features, sample rows): each row sorted ascending, missing values last.
    sorted_values: npt.NDArray[np.float64]
    categorical: Mapping[str, Mapping[str, int]]  # feature -> category -> count

    @property
    def rows(self) -> int:
        """Rows of the reference sample."""
        return int(self.sorted_values.shape[1])


def load_reference(profile_uri: str, features: Sequence[str] | None) -> Reference:
    """Read the profile and, for its numeric features, the sample.

    The checked features are `features` in the profile's order, or every feature of the
    profile (never its target). A missing or unreadable profile or sample fails with
    ReferenceUnreadable; a requested feature the profile lacks with InvalidArgument.
    """
    profile = _read_profile(profile_uri)
    try:
        columns = _checked_columns(profile["features"], features)
        sample_uri = str(profile["sample"]["uri"])
        categorical = {
            str(column["name"]): _category_counts(column)
            for column in columns
            if column["type"] == "categorical"
        }
        identity = (str(profile["dataset"]), str(profile["digest"]), int(profile["rows"]))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _unreadable(profile_uri, f"not a profile: {type(error).__name__}: {error}") from error
    numeric = tuple(str(c["name"]) for c in columns if c["type"] == "numeric")
    values = numeric_rows(_read_sample(sample_uri, numeric), numeric)
    values.sort(axis=1)
    return Reference(profile_uri, sample_uri, *identity, numeric, values, categorical)


def numeric_rows(table: Any, names: Sequence[str]) -> npt.NDArray[np.float64]:
    """A table's numeric columns as one C-contiguous (features, rows) float64 matrix.

    NaN and infinities are missing values, as the profile counts them (a null is NaN);
    text that is not a number fails with InvalidData naming the column.
    """
    matrix = np.empty((len(names), table.num_rows), dtype=np.float64)
    for position, name in enumerate(names):
        column = table.column(name)
        # numpy widens integers and float32 while copying; anything else (text) is cast.
        numbers = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        matrix[position] = column.to_numpy() if numbers else numeric_column(table, name)
    np.copyto(matrix, np.nan, where=~np.isfinite(matrix))
    return matrix


def _read_profile(uri: str) -> dict[str, Any]:
    try:
        document = json.loads(storage.read_bytes(uri))
    except storage.StorageError as error:
        raise RuntimeFailure("ReferenceUnreadable", str(error), uri=uri) from error
    except ValueError as error:
        raise _unreadable(uri, f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise _unreadable(uri, "not a profile: the document is not a JSON object")
    return document


def _unreadable(uri: str, problem: str) -> RuntimeFailure:
    return RuntimeFailure("ReferenceUnreadable", f"{uri}: {problem}", uri=uri)


def _checked_columns(
    columns: Sequence[Mapping[str, Any]], wanted: Sequence[str] | None
) -> list[Mapping[str, Any]]:
    """The profile's feature columns to check: all of them, or those wanted."""
    if not wanted:
        return list(columns)
    names = [str(column["name"]) for column in columns]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise RuntimeFailure(
            "InvalidArgument",
            f"--feature {', '.join(map(repr, unknown))}: not a feature of the reference "
            f"profile (features: {', '.join(names)})",
        )
    return [column for column in columns if column["name"] in wanted]


def _category_counts(column: Mapping[str, Any]) -> dict[str, int]:
    counts = {str(value): int(count) for value, count in column["frequencies"].items()}
    other = int(column["other"])
    return {**counts, OTHER: other} if other else counts


def _read_sample(uri: str, numeric: Sequence[str]) -> Any:
    try:
        return pq.read_table(pa.BufferReader(storage.read_bytes(uri)), columns=list(numeric))
    except storage.StorageError as error:
        raise RuntimeFailure("ReferenceUnreadable", str(error), uri=uri) from error
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(uri, f"cannot read the sample: {error}") from error
