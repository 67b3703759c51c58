"""SPDY/3.1, as moby/spdystream (the library of kubectl's SPDY streams) speaks it.

Frames are parsed from a byte stream fed in pieces and built as bytes; name/value header
blocks are compressed with zlib and the SPDY/3 dictionary, one zlib context per direction for
the whole connection. A Session serves the server side of a connection over whatever carries
its bytes. Flow control is not enforced: spdystream does not enforce it either.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9
FLAG_FIN = 0x01
VERSION = 3
_CONTROL_BIT = 0x8000
_HEADER = struct.Struct(">II")

# The SPDY/3 header dictionary: the draft's length-prefixed names and values, then raw text.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, "
    "Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)


class ProtocolError(Exception):
    """The peer sent bytes that are not SPDY/3."""


@dataclass(frozen=True)
class Control:
    """A control frame: its type, flags and undecoded payload."""

    kind: int
    flags: int
    payload: bytes

    @property
    def stream_id(self) -> int:
        """The stream a stream-level frame (SYN_STREAM, SYN_REPLY, RST_STREAM, ...) is about."""
        return int(struct.unpack_from(">I", self.payload)[0]) & 0x7FFFFFFF


@dataclass(frozen=True)
class Data:
    """A data frame of one stream."""

    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        """Whether the sender is done with the stream."""
        return bool(self.flags & FLAG_FIN)


class Framer:
    """Both directions of one connection: feed() parses received bytes, the builders encode."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Control | Data]:
        """The frames completed by these received bytes."""
        self._buffer += data
        frames: list[Control | Data] = []
        while len(self._buffer) >= _HEADER.size:
            first, second = _HEADER.unpack_from(self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < _HEADER.size + length:
                break
            payload = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            flags = second >> 24
            if first & 0x80000000:
                if (first >> 16) & 0x7FFF != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {(first >> 16) & 0x7FFF}")
                frames.append(Control(first & 0xFFFF, flags, payload))
            else:
                frames.append(Data(first, flags, payload))
        return frames

    def headers(self, frame: Control) -> dict[str, str]:
        """The name/value block of a SYN_STREAM (values joined by NUL stay joined)."""
        offset = 10 if frame.kind == SYN_STREAM else 4
        try:
            block = self._inflate.decompress(frame.payload[offset:])
        except zlib.error as error:
            raise ProtocolError(f"bad header block: {error}") from error
        (count,) = struct.unpack_from(">I", block)
        position, headers = 4, {}
        for _ in range(count):
            name, position = _string(block, position)
            value, position = _string(block, position)
            headers[name] = value
        return headers

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None) -> bytes:
        """A SYN_REPLY accepting a stream."""
        block = struct.pack(">I", len(headers or {}))
        for name, value in (headers or {}).items():
            block += _pack_string(name) + _pack_string(value)
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return control(SYN_REPLY, 0, struct.pack(">I", stream_id) + compressed)


def _string(block: bytes, position: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">I", block, position)
    start = position + 4
    return block[start : start + length].decode(), start + length


def _pack_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


def control(kind: int, flags: int, payload: bytes) -> bytes:
    """A control frame."""
    return _HEADER.pack(_CONTROL_BIT << 16 | VERSION << 16 | kind, flags << 24 | len(payload)) + (
        payload
    )


def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
    """A data frame (fin: the last one of the stream from this side)."""
    flags = FLAG_FIN if fin else 0
    return _HEADER.pack(stream_id & 0x7FFFFFFF, flags << 24 | len(payload)) + payload


def ping(frame: Control) -> bytes:
    """The answer to a PING: the same frame back."""
    return control(PING, 0, frame.payload)


def rst_stream(stream_id: int, status: int) -> bytes:
    """A RST_STREAM ending a stream with a status code (5: CANCEL)."""
    return control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


class Connection(Protocol):
    """What carries a SPDY connection's bytes (WebSocket messages, or an upgraded HTTP
    connection)."""

    def received(self) -> AsyncIterator[bytes]:
        """The bytes from the client as they arrive, until it closes the connection."""

    async def send(self, data: bytes) -> None:
        """Send bytes to the client (nothing happens once it is gone)."""


class StreamHandler(Protocol):
    """What a server does with the streams a client opens."""

    async def opened(self, stream_id: int, headers: Mapping[str, str]) -> None:
        """The client opened a stream with these (lower-case) headers."""

    async def received(self, stream_id: int, payload: bytes, fin: bool) -> None:
        """Data of a stream; fin: the client is done sending on it."""

    def reset(self, stream_id: int) -> None:
        """The client reset a stream."""


class Session:
    """The server side of one SPDY connection: accepts every stream the client opens, answers
    pings, and hands streams, their data and resets to a handler."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._framer = Framer()

    async def serve(self, handler: StreamHandler) -> None:
        """Serve until the client closes the connection or sends bytes that are not SPDY/3."""
        with contextlib.suppress(ProtocolError):
            async for chunk in self._connection.received():
                for frame in self._framer.feed(chunk):
                    await self._dispatch(frame, handler)

    async def send(self, frame: bytes) -> None:
        """Send a frame to the client."""
        await self._connection.send(frame)

    async def _dispatch(self, frame: Control | Data, handler: StreamHandler) -> None:
        if isinstance(frame, Data):
            await handler.received(frame.stream_id, frame.data, frame.fin)
        elif frame.kind == SYN_STREAM:
            headers = self._framer.headers(frame)
            await self.send(self._framer.syn_reply(frame.stream_id))
            await handler.opened(frame.stream_id, headers)
        elif frame.kind == PING:
            await self.send(ping(frame))
        elif frame.kind == RST_STREAM:
            handler.reset(frame.stream_id)
