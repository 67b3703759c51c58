"""How the streaming subresources talk to their client: the protocol upgrade and the channels
of exec and attach over either protocol.

A streaming request switches the connection to WebSockets (kubectl 1.30+, the Python client)
or, as older clients and kubectl's fallback do, to plain SPDY/3.1 (`Upgrade: SPDY/3.1`, the
subprotocol negotiated in `X-Stream-Protocol-Version`). exec and attach see numbered channels
(0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 closes a channel) whichever carries them:
a channel byte before each WebSocket message, or one SPDY stream per channel named by its
streamType header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from gyre_local.apiserver import spdy
from gyre_local.store.store import bad_request

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
WEBSOCKET = "websocket"
SPDY = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_HEADER = "X-Accepted-Stream-Protocol-Versions"
V4_CHANNEL = "v4.channel.k8s.io"
# The remote command subprotocols served, most preferred first (SPDY: v4 only).
WEBSOCKET_CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", V4_CHANNEL)
SPDY_CHANNEL_PROTOCOLS = (V4_CHANNEL,)
_STREAM_TYPES = {
    "stdin": STDIN,
    "stdout": STDOUT,
    "stderr": STDERR,
    "error": ERROR,
    "resize": RESIZE,
}


def upgrade_kind(request: web.Request) -> str:
    """WEBSOCKET or SPDY: what a streaming request asks to switch to; 400 for anything else."""
    connection = request.headers.get("Connection", "").lower()
    upgrade = request.headers.get("Upgrade", "").lower()
    if "upgrade" in connection and upgrade == WEBSOCKET:
        return WEBSOCKET
    if "upgrade" in connection and SPDY.lower() in upgrade:
        return SPDY
    raise bad_request("Upgrade request required")


async def websocket(request: web.Request, protocols: tuple[str, ...]) -> web.WebSocketResponse:
    """The request's connection switched to a WebSocket speaking one of the subprotocols."""
    socket = web.WebSocketResponse(protocols=protocols, max_msg_size=0, autoclose=False)
    if not socket.can_prepare(request).ok:
        raise bad_request(f"not a valid WebSocket upgrade (subprotocols {', '.join(protocols)})")
    await socket.prepare(request)
    return socket


async def switch_to_spdy(request: web.Request, protocols: tuple[str, ...]) -> UpgradedBytes:
    """The request's connection switched to SPDY/3.1 with the first subprotocol the client
    offers that is one of these; 403 (plain text, as the kubelet answers) when none is."""
    offered = [
        protocol.strip()
        for value in request.headers.getall(PROTOCOL_HEADER, [])
        for protocol in value.split(",")
        if protocol.strip()
    ]
    chosen = next((protocol for protocol in offered if protocol in protocols), None)
    if chosen is None:
        # The kubelet's plain-text answer, which kube-apiserver passes through.
        raise web.HTTPForbidden(
            text="unable to upgrade: unable to negotiate protocol: client supports "
            f"[{' '.join(offered)}], server accepts [{' '.join(protocols)}]\n",
            headers={ACCEPTED_HEADER: ", ".join(protocols)},
        )
    headers = {"Connection": "Upgrade", "Upgrade": SPDY, PROTOCOL_HEADER: chosen}
    response = web.StreamResponse(status=101, reason="Switching Protocols", headers=headers)
    response.force_close()
    connection = UpgradedBytes(request, response)
    await response.prepare(request)
    return connection


class UpgradedBytes:
    """The raw bytes of an HTTP connection answered with 101 Switching Protocols."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.response = response
        self._reader = asyncio.StreamReader()
        # Set before the 101 goes out: every byte after the request is the new protocol's.
        # aiohttp's protocol takes any parser with feed_data/feed_eof, not only its WebSocket one.
        request.protocol.set_parser(_Feed(self._reader))  # type: ignore[arg-type]
        request.protocol.keep_alive(False)

    async def received(self) -> AsyncIterator[bytes]:
        """The client's bytes until it closes the connection."""
        while chunk := await self._reader.read(64 * 1024):
            yield chunk

    async def send(self, data: bytes) -> None:
        """Write bytes to the client (nothing happens once it is gone)."""
        with contextlib.suppress(ConnectionError):
            await self.response.write(data)


class _Feed:
    """Hands the bytes aiohttp receives on an upgraded connection to a stream reader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Take received bytes: never the end of a message, nothing left over."""
        self._reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        """The connection closed."""
        self._reader.feed_eof()


class WebSocketBytes:
    """A SPDY connection tunneled in a WebSocket's binary messages."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket

    async def received(self) -> AsyncIterator[bytes]:
        """The payloads of the client's binary messages until it closes the socket."""
        async for message in self._socket:
            if message.type == WSMsgType.BINARY:
                yield message.data

    async def send(self, data: bytes) -> None:
        """Send bytes as one binary message (nothing happens once the client is gone)."""
        with contextlib.suppress(ConnectionError):
            await self._socket.send_bytes(data)


class CommandChannels(Protocol):
    """The client's side of exec and attach."""

    response: web.StreamResponse

    async def send(self, channel: int, data: bytes) -> None:
        """Send output on a channel (STDOUT or STDERR)."""

    def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        """What the client sends, (channel, payload), until it leaves: (STDIN, data),
        (RESIZE, one JSON size), (CLOSE, bytes([STDIN]))."""

    async def finish(self, status: Mapping[str, Any]) -> None:
        """End the session with the kubelet's Status on the error channel."""


async def command_channels(request: web.Request, wanted: set[int]) -> CommandChannels:
    """Upgrade an exec or attach request: WebSocket channels, or SPDY streams once the client
    opened the wanted ones (and the error stream)."""
    if upgrade_kind(request) == WEBSOCKET:
        return WebSocketChannels(await websocket(request, WEBSOCKET_CHANNEL_PROTOCOLS))
    connection = await switch_to_spdy(request, SPDY_CHANNEL_PROTOCOLS)
    channels = SpdyChannels(connection, wanted | {ERROR})
    await channels.start()
    return channels


class WebSocketChannels:
    """Channels over WebSocket binary messages: a channel byte, then the payload."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.response: web.StreamResponse = socket
        self._socket = socket

    async def send(self, channel: int, data: bytes) -> None:
        """Send one message on a channel."""
        await self._socket.send_bytes(bytes([channel]) + data)

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        """The client's messages, split into channel and payload."""
        async for message in self._socket:
            if message.type == WSMsgType.BINARY and message.data:
                yield message.data[0], message.data[1:]

    async def finish(self, status: Mapping[str, Any]) -> None:
        """The Status on the error channel, then the close."""
        with contextlib.suppress(ConnectionError):
            await self.send(ERROR, json.dumps(status).encode())
            await self._socket.close()


class SpdyChannels:
    """Channels over SPDY streams, one per channel, named by their streamType header."""

    def __init__(self, connection: UpgradedBytes, wanted: set[int]) -> None:
        self.response: web.StreamResponse = connection.response
        self._session = spdy.Session(connection)
        self._wanted = wanted
        self._streams: dict[int, int] = {}
        self._channels: dict[int, int] = {}
        self._all_open = asyncio.Event()
        self._incoming: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._resize_buffer = b""
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve the connection; return once every wanted stream is open (or the client left)."""
        self._serving = asyncio.create_task(self._serve())
        opened = asyncio.create_task(self._all_open.wait())
        await asyncio.wait({self._serving, opened}, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()

    async def _serve(self) -> None:
        try:
            await self._session.serve(self)
        finally:
            self._incoming.put_nowait(None)

    async def opened(self, stream_id: int, headers: Mapping[str, str]) -> None:
        """Name the stream after its streamType."""
        channel = _STREAM_TYPES.get(headers.get("streamtype", ""))
        if channel is None:
            return
        self._streams[channel], self._channels[stream_id] = stream_id, channel
        if self._wanted <= self._streams.keys():
            self._all_open.set()

    async def received(self, stream_id: int, payload: bytes, fin: bool) -> None:
        """stdin data and its end; resize stream data, one JSON size per line."""
        channel = self._channels.get(stream_id)
        if channel == STDIN:
            if payload:
                self._incoming.put_nowait((STDIN, payload))
            if fin:
                self._incoming.put_nowait((CLOSE, bytes([STDIN])))
        elif channel == RESIZE:
            *sizes, self._resize_buffer = (self._resize_buffer + payload).split(b"\n")
            for size in sizes:
                self._incoming.put_nowait((RESIZE, size))

    def reset(self, stream_id: int) -> None:
        """A reset stream just stops carrying anything."""

    async def send(self, channel: int, data: bytes) -> None:
        """Send data on the channel's stream, if the client opened it."""
        if (stream := self._streams.get(channel)) is not None:
            await self._session.send(spdy.data(stream, data))

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        """What the client sends until the connection ends."""
        while (item := await self._incoming.get()) is not None:
            yield item

    async def finish(self, status: Mapping[str, Any]) -> None:
        """End the output streams, write the Status on the error stream, stop serving."""
        for channel in (STDOUT, STDERR):
            if (stream := self._streams.get(channel)) is not None:
                await self._session.send(spdy.data(stream, b"", fin=True))
        if (stream := self._streams.get(ERROR)) is not None:
            await self._session.send(spdy.data(stream, json.dumps(status).encode(), fin=True))
        if self._serving is not None:
            self._serving.cancel()
