"""Reading a data set once: its content digest and its columns, as a pyarrow Table.

Each file is read once. A CSV file streams into pyarrow's multi-threaded reader through a
hashing stream, so its sha256 is computed by the reading thread while other threads parse
(hashlib releases the GIL); a Parquet file, which needs random access, is read into memory
while hashed and parsed from that buffer.

The content digest, the data set's version:
- a single file: the sha256 (hex) of its bytes;
- a prefix (a URI ending in `/`): every data file under it, recursively, in name order,
  digested as the sha256 (hex) of the UTF-8 text made of one line per file,
  `"<name relative to the prefix>\\t<sha256 of the file>\\n"`. Files whose name (or any
  directory on the way) starts with `.` or `_` (`_SUCCESS`, `.crc`, `_metadata`) are not
  data, as for Spark, Hive and pyarrow.dataset: they take no part in digest or table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gyre_runtime import storage
from gyre_runtime.result import RuntimeFailure

FORMATS = ("csv", "parquet")
ColumnType = Literal["numeric", "categorical"]
ARROW_TYPES: dict[str, Any] = {"numeric": pa.float64(), "categorical": pa.string()}

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedTable:
    """A data set read once: its table, content digest, row count and data files."""

    table: Any  # pyarrow.Table
    digest: str
    rows: int
    files: list[str]


def load_table(
    uri: str, fmt: str, *, columns_types: Mapping[str, ColumnType] | None = None
) -> LoadedTable:
    """Read a CSV or Parquet file, or every data file under a prefix, with its digest.

    A URI ending in `/`, or naming a directory or object-store prefix, is a prefix data set.

    Declared numeric columns become float64 and categorical ones strings; text in a numeric
    column fails with InvalidData naming the column and the value. An unreadable source
    fails with SourceUnreadable, a corrupt file with InvalidData.
    """
    if fmt not in FORMATS:
        raise RuntimeFailure("InvalidData", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    types = dict(columns_types or {})
    uri, files = dataset_files(uri)
    tables: list[Any] = []
    digests: list[str] = []
    for file_uri in files:
        table, digest = _read_file(file_uri, fmt, types)
        tables.append(table)
        digests.append(digest)
    table = _concat(uri, tables)
    return LoadedTable(
        table=table,
        digest=prefix_digest(uri, files, digests) if uri.endswith("/") else digests[0],
        rows=int(table.num_rows),
        files=files,
    )


def prefix_digest(prefix: str, files: Sequence[str], digests: Sequence[str]) -> str:
    """The digest of a prefix data set: sha256 of `"<relative name>\\t<file sha256>\\n"` lines."""
    lines = "".join(
        f"{file_uri[len(prefix) :]}\t{digest}\n"
        for file_uri, digest in sorted(zip(files, digests, strict=True))
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def dataset_files(uri: str) -> tuple[str, list[str]]:
    """A data set's URI (ending in `/` when it is a prefix) and its data files in name order.

    Hidden files and folders (`.crc`, `_SUCCESS`) under a prefix are not data.
    """
    if not uri.endswith("/") and _unreadable_as_failure(lambda: storage.is_directory(uri)):
        uri += "/"
    return uri, _data_files(uri)


def _data_files(uri: str) -> list[str]:
    if not uri.endswith("/"):
        return [uri]
    files = [
        file_uri
        for file_uri in _unreadable_as_failure(lambda: storage.list_files(uri))
        if not _is_hidden(file_uri[len(uri) :])
    ]
    if not files:
        raise RuntimeFailure("SourceUnreadable", f"{uri}: no data files under the prefix")
    return files


def _is_hidden(relative_name: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative_name.split("/"))


def _unreadable_as_failure(read: Callable[[], T]) -> T:
    try:
        return read()
    except storage.StorageError as error:
        raise RuntimeFailure("SourceUnreadable", str(error), uri=error.uri) from error


def _read_file(uri: str, fmt: str, types: dict[str, ColumnType]) -> tuple[Any, str]:
    """One file's table and sha256, from a single read."""
    return _unreadable_as_failure(lambda: _parse(uri, fmt, types))


def _parse(uri: str, fmt: str, types: dict[str, ColumnType]) -> tuple[Any, str]:
    try:
        if fmt == "csv":
            # pyarrow's reader thread pulls the stream (hashing it) while others parse.
            with storage.open_hashed(uri) as stream:
                table = pacsv.read_csv(
                    pa.PythonFile(stream, mode="r"), convert_options=_csv_options(types)
                )
                return table, stream.hexdigest()
        data, digest = storage.read_verified(uri)
        return _cast(uri, pq.read_table(pa.BufferReader(data)), types), digest
    except pa.ArrowInvalid as error:
        raise _invalid_data(uri, fmt, str(error)) from error
    except (pa.ArrowException, OSError) as error:
        raise RuntimeFailure(
            "InvalidData", f"{uri}: cannot read {fmt}: {error}", uri=uri
        ) from error


def _csv_options(types: dict[str, ColumnType]) -> Any:
    return pacsv.ConvertOptions(
        column_types={name: ARROW_TYPES[kind] for name, kind in types.items()},
        # An empty categorical cell is a missing value, as in a numeric column.
        strings_can_be_null=True,
    )


def _cast(uri: str, table: Any, types: dict[str, ColumnType]) -> Any:
    for index, name in enumerate(table.column_names):
        if name in types and table.schema.field(index).type != ARROW_TYPES[types[name]]:
            column = _cast_column(name, table.column(index), types[name], uri=uri)
            table = table.set_column(index, name, column)
    return table


def _cast_column(name: str, column: Any, kind: ColumnType, **details: str) -> Any:
    try:
        return pc.cast(column, ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise _conversion_failure(name, kind, str(error), **details) from error


def _invalid_data(uri: str, fmt: str, error: str) -> RuntimeFailure:
    match = re.search(r"CSV column #(\d+)", error)
    if fmt == "csv" and match:
        name = _csv_header(uri)[int(match.group(1))]
        return _conversion_failure(name, "numeric", error, uri=uri)
    return RuntimeFailure("InvalidData", f"{uri}: cannot read {fmt}: {error}", uri=uri)


def _conversion_failure(name: str, kind: str, error: str, **details: str) -> RuntimeFailure:
    value = re.search(r"'(.*?)'", error)
    found = f"value {value.group(1)!r}" if value else "a value"
    message = f"column {name!r}: {found} is not {kind} ({error})"
    return RuntimeFailure("InvalidData", message, column=name, **details)


def _csv_header(uri: str) -> list[str]:
    # Only on a conversion error: pyarrow names the column by position.
    with storage.open_input(uri) as stream:
        first_line = stream.readline()
    return next(csv.reader(io.StringIO(first_line.decode(errors="replace"))), [])


def _concat(uri: str, tables: list[Any]) -> Any:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise RuntimeFailure(
            "InvalidData", f"{uri}: the files under the prefix disagree on columns: {error}"
        ) from error


def numeric_column(table: Any, name: str) -> npt.NDArray[np.float64]:
    """A column as a contiguous float64 array, nulls as NaN."""
    column = table.column(name)
    if column.type != pa.float64():
        column = _cast_column(name, column, "numeric")
    return np.ascontiguousarray(column.to_numpy(), dtype=np.float64)


def feature_matrix(
    table: Any, features: Iterable[str], dtype: type[np.floating[Any]] = np.float64
) -> npt.NDArray[Any]:
    """The given numeric columns, in that order, as a C-contiguous (rows, features) matrix."""
    names = list(features)
    matrix = np.empty((table.num_rows, len(names)), dtype=dtype)
    for position, name in enumerate(names):
        matrix[:, position] = numeric_column(table, name)
    return matrix
