"""gyre_runtime.storage and tables against real files, a real PVC directory and moto's S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gyre_runtime import storage
from gyre_runtime.result import RuntimeFailure
from gyre_runtime.tables import feature_matrix, load_table

PAYLOAD = os.urandom(3 * storage.CHUNK_SIZE // 2 + 17)  # more than one chunk, not a multiple


@pytest.fixture
def pvc_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The claim `training-data.v1` mounted at a temporary directory."""
    mount = tmp_path / "claim"
    mount.mkdir()
    monkeypatch.setenv("GYRE_PVC_TRAINING_DATA_V1", str(mount))
    return mount


@pytest.fixture(params=["file", "pvc", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An artifact root URI on each writable scheme."""
    if request.param == "file":
        return (tmp_path / "root").as_uri() + "/"
    if request.param == "pvc":
        request.getfixturevalue("pvc_mount")
        return "pvc://training-data.v1/artifacts/"
    return str(request.getfixturevalue("s3_bucket")) + "/artifacts/"


def test_round_trip_on_every_scheme(root: str) -> None:
    uri = storage.join(root, "models", "m", "1", "model.onnx")
    expected = hashlib.sha256(PAYLOAD).hexdigest()

    assert storage.write_bytes(uri, PAYLOAD) == expected
    assert storage.read_bytes(uri) == PAYLOAD
    assert storage.read_verified(uri) == (PAYLOAD, expected)
    assert storage.sha256_of(uri) == expected
    assert storage.exists(uri)
    with storage.open_input(uri) as stream:
        assert stream.read(5) == PAYLOAD[:5]


def test_put_and_get_file_stream_and_hash(root: str, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    uri = storage.join(root, "put", "source.bin")
    expected = hashlib.sha256(PAYLOAD).hexdigest()

    assert storage.put_file(source, uri) == expected
    assert storage.get_file(uri, tmp_path / "copy" / "back.bin") == expected
    assert (tmp_path / "copy" / "back.bin").read_bytes() == PAYLOAD


def test_listing_is_recursive_and_sorted_by_name(root: str) -> None:
    prefix = storage.join(root, "listing/")
    for name in ["b.csv", "a/z.csv", "a.csv", "c/d/e.csv"]:
        storage.write_bytes(storage.join(prefix, name), name.encode())
    storage.write_bytes(storage.join(root, "listing-sibling.csv"), b"not under the prefix")

    assert storage.list_files(prefix) == [
        storage.join(prefix, name) for name in ["a.csv", "a/z.csv", "b.csv", "c/d/e.csv"]
    ]


def test_pvc_resolves_to_the_claim_mount(pvc_mount: Path) -> None:
    storage.write_bytes("pvc://training-data.v1/x/y.txt", b"hello")

    assert (pvc_mount / "x" / "y.txt").read_bytes() == b"hello"
    assert storage.local_path("pvc://training-data.v1/x/../y.txt") == pvc_mount / "y.txt"


def test_pvc_defaults_to_the_standard_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GYRE_PVC_MY_CLAIM", raising=False)

    assert storage.local_path("pvc://my-claim/data.csv") == Path("/mnt/gyre/pvc/my-claim/data.csv")


@pytest.mark.parametrize(
    "uri", ["pvc://training-data.v1/../secret", "pvc://training-data.v1/a/../../b", "pvc:///x"]
)
def test_pvc_paths_outside_a_claim_are_refused(pvc_mount: Path, uri: str) -> None:
    with pytest.raises(storage.StorageError, match="claim"):
        storage.write_bytes(uri, b"x")
    assert not (pvc_mount.parent / "secret").exists()


def test_a_failing_writer_leaves_neither_target_nor_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "profile.json"

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("disk full")

    with pytest.raises(storage.StorageError, match="disk full"):
        storage._write_chunks(target.as_uri(), chunks())
    assert list(target.parent.iterdir()) == []


def test_a_failing_writer_keeps_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "profile.json"
    storage.write_bytes(target.as_uri(), b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new but "
        raise OSError("interrupted")

    with pytest.raises(storage.StorageError):
        storage._write_chunks(target.as_uri(), chunks())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]


def test_a_failing_upload_leaves_no_object(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/models/m/1/model.onnx"

    def chunks() -> Iterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)  # past s3fs's first part: a multipart upload
        raise OSError("interrupted")

    with pytest.raises(storage.StorageError, match="interrupted"):
        storage._write_chunks(uri, chunks())
    assert not storage.exists(uri)
    assert storage.list_files(f"{s3_bucket}/") == []


def test_https_is_read_only(http_root: tuple[Path, str]) -> None:
    directory, base = http_root
    (directory / "data.csv").write_bytes(PAYLOAD)

    assert storage.read_verified(base + "data.csv") == (
        PAYLOAD,
        hashlib.sha256(PAYLOAD).hexdigest(),
    )
    for scheme_uri in (base + "new.csv", "https://example.com/new.csv"):
        with pytest.raises(storage.StorageError, match="read only"):
            storage.write_bytes(scheme_uri, b"x")


@pytest.mark.parametrize(
    "uri",
    ["file:///nonexistent/gyre/data.csv", "pvc://missing-claim-gyre/data.csv"],
)
def test_unreadable_uris_raise_one_line_errors_naming_the_uri(uri: str) -> None:
    for read in (storage.read_bytes, storage.sha256_of, storage.read_verified):
        with pytest.raises(storage.StorageError) as caught:
            read(uri)
        assert str(caught.value).startswith(uri)
        assert "\n" not in str(caught.value)


def test_missing_s3_object_and_missing_http_file_name_the_uri(
    s3_bucket: str, http_root: tuple[Path, str]
) -> None:
    for uri in (f"{s3_bucket}/nothing.csv", http_root[1] + "nothing.csv"):
        with pytest.raises(storage.StorageError) as caught:
            storage.read_bytes(uri)
        assert str(caught.value).startswith(uri)


def test_unwritable_uri_names_the_uri(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    uri = (blocker / "child.json").as_uri()

    with pytest.raises(storage.StorageError) as caught:
        storage.write_bytes(uri, b"{}")
    assert str(caught.value).startswith(uri)


@pytest.mark.parametrize(
    ("root_uri", "parts", "expected"),
    [
        ("s3://b", ("datasets", "d"), "s3://b/datasets/d"),
        ("s3://b/", ("/datasets/", "d/"), "s3://b/datasets/d/"),
        ("file:///tmp/x//", ("a",), "file:///tmp/x/a"),
        ("pvc://c/root", ("", "f.json"), "pvc://c/root/f.json"),
    ],
)
def test_join(root_uri: str, parts: tuple[str, ...], expected: str) -> None:
    assert storage.join(root_uri, *parts) == expected


def test_single_file_digest_is_the_files_sha256(wine_csv: object) -> None:
    uri = wine_csv.uri  # type: ignore[attr-defined]
    loaded = load_table(uri, "csv")

    assert (
        loaded.digest == hashlib.sha256(Path(uri.removeprefix("file://")).read_bytes()).hexdigest()
    )
    assert loaded.rows == 178
    assert loaded.files == [uri]


def test_prefix_digest_follows_its_definition(tmp_path: Path) -> None:
    prefix = tmp_path / "parts"
    parts = {
        "part-1.csv": b"a,b\n1,2\n",
        "sub/part-0.csv": b"a,b\n3,4\n",
        "part-0.csv": b"a,b\n5,6\n",
    }
    for name, data in parts.items():
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        (prefix / name).write_bytes(data)
    (prefix / "_SUCCESS").write_bytes(b"")
    (prefix / ".part-0.csv.crc").write_bytes(b"crc")

    loaded = load_table(prefix.as_uri() + "/", "csv")
    assert load_table(prefix.as_uri(), "csv").digest == loaded.digest

    lines = "".join(
        f"{name}\t{hashlib.sha256(parts[name]).hexdigest()}\n" for name in sorted(parts)
    )
    assert loaded.digest == hashlib.sha256(lines.encode()).hexdigest()
    assert loaded.table.column("a").to_pylist() == [5, 1, 3]
    assert [uri.rsplit("/parts/", 1)[1] for uri in loaded.files] == sorted(parts)


def test_declared_types_and_feature_matrix(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,color,y\n1,red,2.5\n,blue,\n3,,4\n")

    loaded = load_table(
        path.as_uri(), "csv", columns_types={"x": "numeric", "color": "categorical"}
    )

    assert loaded.table.column("color").to_pylist() == ["red", "blue", None]
    matrix = feature_matrix(loaded.table, ["y", "x"], np.float32)
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix, [[2.5, 1], [np.nan, np.nan], [4, 3]])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_text_in_a_numeric_column_names_column_and_value(tmp_path: Path, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table({"a": ["1", "2"], "ash": ["2.5", "lots"]})
    path = tmp_path / f"bad.{fmt}"
    pacsv.write_csv(table, path) if fmt == "csv" else pq.write_table(table, path)

    with pytest.raises(RuntimeFailure) as caught:
        load_table(path.as_uri(), fmt, columns_types={"ash": "numeric"})
    assert caught.value.reason == "InvalidData"
    assert "'ash'" in caught.value.message and "'lots'" in caught.value.message


def test_corrupt_parquet_is_invalid_data(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")

    with pytest.raises(RuntimeFailure) as caught:
        load_table(path.as_uri(), "parquet")
    assert caught.value.reason == "InvalidData"
    assert str(path) in caught.value.message


def test_unreadable_source_and_empty_prefix(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for uri in ((tmp_path / "none.csv").as_uri(), (tmp_path / "empty").as_uri() + "/"):
        with pytest.raises(RuntimeFailure) as caught:
            load_table(uri, "csv")
        assert caught.value.reason == "SourceUnreadable"
        assert uri in caught.value.message


def test_s3_prefix_data_set_with_or_without_the_slash(s3_bucket: str) -> None:
    for name, data in {"b.csv": b"a\n2\n", "a.csv": b"a\n1\n", "_SUCCESS": b""}.items():
        storage.write_bytes(f"{s3_bucket}/data/{name}", data)

    loaded = load_table(f"{s3_bucket}/data/", "csv")

    assert loaded.table.column("a").to_pylist() == [1, 2]
    assert load_table(f"{s3_bucket}/data", "csv").digest == loaded.digest
    assert loaded.files == [f"{s3_bucket}/data/a.csv", f"{s3_bucket}/data/b.csv"]
