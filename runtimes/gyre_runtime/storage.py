"""Artifact and data I/O for Gyre's pods: the one module that touches storage.

URIs:
- `file:///abs/path` (or a bare path): the local file system.
- `pvc://<claim>/<path>`: a PersistentVolumeClaim mounted in the pod, at the directory in
  `GYRE_PVC_<CLAIM>` (the claim upper-cased, every non-alphanumeric character `_`), by
  default `/mnt/gyre/pvc/<claim>`. A path escaping the claim with `..` is refused.
- `s3://bucket/key`: S3 or any S3 API (MinIO, moto) through s3fs, configured by the usual
  `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
  `AWS_DEFAULT_REGION` / `AWS_REGION`).
- `https://` and `http://`: read only.
- Any other fsspec scheme (`gs://`, `az://`, ...) whose implementation is installed.

Writes are atomic: a reader sees the old object or the whole new one, never a part. Local
writes go to a temporary file in the target's directory, fsync'ed, then renamed over it;
object stores commit an object only when its (multipart) upload completes. Every write and
verified read returns the sha256 of the bytes, computed while they stream.

Every failure is a StorageError whose one-line message names the URI.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

CHUNK_SIZE = 8 * 1024 * 1024
PVC_ROOT = "/mnt/gyre/pvc"
LOCAL_SCHEMES = frozenset({"", "file", "pvc"})
READ_ONLY_SCHEMES = frozenset({"http", "https"})
# An unreachable endpoint must fail a Job within seconds, not after botocore's minutes.
S3_CONNECT_TIMEOUT_SECONDS = 5
S3_READ_TIMEOUT_SECONDS = 60
S3_ATTEMPTS = 2

T = TypeVar("T")


class StorageError(Exception):
    """A URI that cannot be read, written or is refused; the message names the URI."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri = uri
        super().__init__(" ".join(f"{uri}: {problem}".split()))


@dataclass(frozen=True)
class _Remote:
    """A URI on an fsspec file system: the file system and the path it understands."""

    fs: Any
    path: str


def join(root_uri: str, *parts: str) -> str:
    """Join path parts to a URI with exactly one `/` between them (a trailing `/` stays)."""
    uri = root_uri
    for part in parts:
        if not part:
            continue
        uri = uri.rstrip("/") + "/" + part.lstrip("/")
    return uri


def local_path(uri: str) -> Path | None:
    """The local file system path of a file://, pvc:// or bare-path URI; None for others."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in LOCAL_SCHEMES or _looks_like_windows_drive(uri):
        return None
    if scheme == "pvc":
        return _pvc_path(uri, parts.netloc, parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(uri, "file:// URIs name no host (use file:///path)")
        return Path(parts.path)
    return Path(uri)


def _looks_like_windows_drive(uri: str) -> bool:
    return re.match(r"^[A-Za-z]:[\\/]", uri) is not None


def _pvc_path(uri: str, claim: str, path: str) -> Path:
    if not claim:
        raise StorageError(uri, "pvc:// URIs need a claim name: pvc://<claim>/<path>")
    relative = posixpath.normpath(path.lstrip("/")) if path.strip("/") else "."
    if relative == ".." or relative.startswith("../"):
        raise StorageError(uri, f"path escapes the claim {claim!r}")
    variable = "GYRE_PVC_" + re.sub(r"[^A-Z0-9]", "_", claim.upper())
    mount = Path(os.environ.get(variable) or posixpath.join(PVC_ROOT, claim))
    return mount if relative == "." else mount / relative


def _remote(uri: str) -> _Remote:
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "s3":
        return _Remote(_s3_filesystem(), uri.split("://", 1)[1])
    try:
        import fsspec  # type: ignore[import-untyped]

        return _Remote(fsspec.filesystem(scheme), uri)
    except (ImportError, ValueError) as error:
        raise StorageError(uri, f"unsupported scheme {scheme!r}: {error}") from error


def _s3_filesystem() -> Any:
    import s3fs  # type: ignore[import-untyped]

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    fs = s3fs.S3FileSystem(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        client_kwargs={"region_name": region} if region else None,
        config_kwargs={
            "connect_timeout": S3_CONNECT_TIMEOUT_SECONDS,
            "read_timeout": S3_READ_TIMEOUT_SECONDS,
            "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"},
        },
        # Other processes write the same prefixes: listings must never come from a cache.
        use_listings_cache=False,
    )
    fs.retries = S3_ATTEMPTS
    return fs


def _guard(uri: str, action: str, work: Callable[[], T]) -> T:
    """Run work, turning any back-end failure into a StorageError naming the URI."""
    try:
        return work()
    except StorageError:
        raise
    # Each back end (os, botocore, aiohttp, ...) raises its own error types.
    except Exception as error:
        raise StorageError(uri, f"cannot {action}: {_describe(error)}") from error


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, OSError) else f"{type(error).__name__}: {text}"


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """Open a URI for a streaming binary read; failures raise StorageError."""
    path = local_path(uri)
    if path is not None:
        stream: IO[bytes] = _guard(uri, "read", lambda: path.open("rb"))
    else:
        remote = _remote(uri)
        stream = _guard(uri, "read", lambda: _open_remote_input(uri, remote))
    with stream:
        try:
            yield stream  # type: ignore[misc]
        except StorageError:
            raise
        except OSError as error:
            raise StorageError(uri, f"cannot read: {_describe(error)}") from error


def _open_remote_input(uri: str, remote: _Remote) -> IO[bytes]:
    if urlsplit(uri).scheme.lower() in READ_ONLY_SCHEMES:
        # block_size=0 streams the body instead of issuing ranged requests.
        return remote.fs.open(remote.path, "rb", block_size=0)  # type: ignore[no-any-return]
    return remote.fs.open(remote.path, "rb")  # type: ignore[no-any-return]


def _chunks(uri: str, stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := _guard(uri, "read", lambda: stream.read(CHUNK_SIZE)):
        yield chunk


class HashingReader(io.RawIOBase):
    """A read-only stream over a URI that computes the sha256 of what passes through it."""

    def __init__(self, uri: str, raw: IO[bytes]) -> None:
        super().__init__()
        self.uri = uri
        self._raw = raw
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        """Always true: the stream is for reading."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to size bytes (all when negative), hashing them."""
        chunk = _guard(self.uri, "read", lambda: self._raw.read(-1 if size is None else size))
        self._digest.update(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer, hashing what was read."""
        chunk = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        return len(chunk)

    def hexdigest(self) -> str:
        """The sha256 (hex) of the whole content: what is left unread is read first."""
        while self.read(CHUNK_SIZE):
            pass
        return self._digest.hexdigest()


@contextlib.contextmanager
def open_hashed(uri: str) -> Iterator[HashingReader]:
    """Open a URI for a streaming read that hashes the bytes as they are read."""
    with open_input(uri) as raw:
        yield HashingReader(uri, raw)


def read_bytes(uri: str) -> bytes:
    """The whole content of a URI."""
    path = local_path(uri)
    if path is not None:
        return _guard(uri, "read", path.read_bytes)
    with open_input(uri) as stream:
        return _guard(uri, "read", stream.read)


def read_verified(uri: str) -> tuple[bytes, str]:
    """The content of a URI and its sha256 (hex), hashed as it streams: one read."""
    with open_hashed(uri) as stream:
        return b"".join(iter(lambda: stream.read(CHUNK_SIZE), b"")), stream.hexdigest()


def sha256_of(uri: str) -> str:
    """The sha256 (hex) of a URI's content, streamed in chunks."""
    with open_hashed(uri) as stream:
        return stream.hexdigest()


def list_files(uri: str) -> list[str]:
    """Full URIs of every file under a prefix (recursive), sorted by name."""
    path = local_path(uri)
    if path is not None:
        return _guard(uri, "list", lambda: _list_local(uri, path))
    remote = _remote(uri)
    return _guard(uri, "list", lambda: _list_remote(uri, remote))


def _list_local(uri: str, root: Path) -> list[str]:
    if not root.is_dir():
        raise StorageError(uri, "no such directory")
    names = [
        (Path(dirpath) / name).relative_to(root).as_posix()
        for dirpath, _, filenames in os.walk(root)
        for name in filenames
    ]
    return [join(uri, name) for name in sorted(names)]


def _list_remote(uri: str, remote: _Remote) -> list[str]:
    base = remote.path.rstrip("/")
    names = [
        found[len(base) :].lstrip("/")
        for found in remote.fs.find(base)
        if found.startswith(base + "/")
    ]
    return [join(uri, name) for name in sorted(names)]


def exists(uri: str) -> bool:
    """Whether a file exists at the URI."""
    path = local_path(uri)
    if path is not None:
        return path.is_file()
    remote = _remote(uri)
    return _guard(uri, "check", lambda: bool(remote.fs.isfile(remote.path)))


def is_directory(uri: str) -> bool:
    """Whether the URI names a directory or an object-store prefix (never for http)."""
    path = local_path(uri)
    if path is not None:
        return path.is_dir()
    if urlsplit(uri).scheme.lower() in READ_ONLY_SCHEMES:
        return False
    remote = _remote(uri)
    return _guard(uri, "check", lambda: bool(remote.fs.isdir(remote.path)))


def write_bytes(uri: str, data: bytes) -> str:
    """Write bytes to a URI atomically; return their sha256 (hex)."""
    return _write_chunks(uri, [memoryview(data)[i : i + CHUNK_SIZE] for i in _offsets(data)])


def _offsets(data: bytes) -> range:
    return range(0, max(len(data), 1), CHUNK_SIZE)


def put_file(local_file: str | Path, uri: str) -> str:
    """Upload a local file to a URI atomically, streaming it; return its sha256 (hex)."""
    source = str(local_file)
    with open_input(source) as stream:
        return _write_chunks(uri, _chunks(source, stream))


def get_file(uri: str, local_file: str | Path) -> str:
    """Download a URI to a local file atomically, streaming it; return its sha256 (hex)."""
    with open_input(uri) as stream:
        return _write_chunks(str(local_file), _chunks(uri, stream))


def _write_chunks(uri: str, chunks: Iterable[bytes | memoryview]) -> str:
    scheme = urlsplit(uri).scheme.lower()
    if scheme in READ_ONLY_SCHEMES:
        raise StorageError(uri, f"{scheme}:// is read only")
    path = local_path(uri)
    if path is not None:
        return _guard(uri, "write", lambda: _write_local(path, chunks))
    remote = _remote(uri)
    return _guard(uri, "write", lambda: _write_remote(remote, chunks))


def _write_local(target: Path, chunks: Iterable[bytes | memoryview]) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_remote(remote: _Remote, chunks: Iterable[bytes | memoryview]) -> str:
    digest = hashlib.sha256()
    out = remote.fs.open(remote.path, "wb")
    try:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    except BaseException:
        # Closing would commit what was written so far; discarding aborts the upload, and
        # marking the file closed keeps its finalizer from flushing the discarded buffer.
        out.discard()
        out.closed = True
        raise
    out.close()
    return digest.hexdigest()
