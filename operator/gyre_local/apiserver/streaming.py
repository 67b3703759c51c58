"""The streaming subresources of pods, as kubectl 1.32 uses them: log, exec, attach and
portforward.

log follows a process pod's container log until that run of the container ends, and serves
the previous run's log. exec speaks the remote command protocols over WebSockets
(v5.channel.k8s.io, v4.channel.k8s.io) or plain SPDY/3.1 (v4.channel.k8s.io), see channels.py;
the error channel carries the final Status. attach streams a running container's output from
then on and feeds its stdin (spec stdin: true) in the same protocols. portforward speaks
SPDY/3.1, plain (portforward.k8s.io) or tunneled in WebSocket binary messages
(SPDY/3.1+portforward.k8s.io): an error and a data stream per forwarded connection; or the
v4.channel.k8s.io WebSocket channels of the Python client.

Commands and connections reach containers of process pods only, through the PodProcesses
lookup the application is created with (the process kubelet's).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import termios
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from gyre_local.apiserver import spdy
from gyre_local.apiserver.channels import (
    CLOSE,
    RESIZE,
    SPDY,
    STDERR,
    STDIN,
    STDOUT,
    V4_CHANNEL,
    CommandChannels,
    WebSocketBytes,
    WebSocketChannels,
    command_channels,
    switch_to_spdy,
    upgrade_kind,
    websocket,
)
from gyre_local.kubelet.process import ContainerContext, PodFiles, line_times
from gyre_local.kubelet.state import POD_IP
from gyre_local.proxy.services import local_port
from gyre_local.store.store import Store, bad_request

STREAM_PATH = re.compile(
    r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)"
    r"/(?P<subresource>exec|attach|portforward)"
)
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
SPDY_PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
# How often a followed log is read for new output.
_FOLLOW_POLL_SECONDS = 0.1
_CHUNK = 32 * 1024
# How long exec on a terminal waits for the client's terminal size before starting anyway.
_FIRST_SIZE_WAIT = 1.0
_RST_CANCEL = 5


class ContainerProcesses(Protocol):
    """The running processes of one pod's containers, as the node runs them."""

    def run_log(self, container: str, run: int) -> Path:
        """The log file of run n of a container (run n follows n restarts)."""

    def running(self, container: str, run: int) -> bool:
        """Whether run n of a container may still write to its log."""

    def context(self, container: str) -> ContainerContext | None:
        """What a command run in a running container gets; None when it is not running."""

    def stdin(self, container: str) -> asyncio.StreamWriter | None:
        """The stdin pipe of a running container whose spec says stdin: true, else None."""


# The processes of a pod by uid: None for pods that do not run as processes on this node.
PodProcesses = Callable[[str], ContainerProcesses | None]
PROCESSES_KEY: web.AppKey[PodProcesses] = web.AppKey("pod_processes")


def no_processes(_uid: str) -> None:
    """The lookup of a cluster without a process kubelet: no pod runs as processes."""


def _processes(request: web.Request, pod: Mapping[str, Any]) -> ContainerProcesses | None:
    """The processes of a pod, from the lookup the application was created with."""
    return request.app[PROCESSES_KEY]((pod.get("metadata") or {}).get("uid", ""))


# ---- log ----


async def serve_log(
    request: web.Request, store: Store, namespace: str, name: str
) -> web.StreamResponse:
    """The log subresource: container, previous, follow, tailLines, sinceSeconds, sinceTime,
    timestamps and limitBytes (line times are known for process pods only)."""
    pod = store.get("", "pods", namespace, name)
    container = request.query.get("container") or _default_container(pod)
    status = _container_status(pod, container)
    options = _LogOptions.parse(request)
    # Asked first: it answers 400 for a container that is not in the pod.
    text = store.pod_log(namespace, name, container).encode()
    if _flag(request, "previous"):
        if not (status.get("lastState") or {}).get("terminated"):
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        run = int(status["restartCount"]) - 1
    else:
        run = _current_run(status)
    runner = _processes(request, pod)
    if runner is None:
        untimed = [(0, line) for line in _lines(text)]
        return _plain(options.limited(options.render(untimed, timed=False)))
    log = _RunLog(runner.run_log(container, run))
    if _flag(request, "follow") and runner.running(container, run):
        return await _follow(request, log, options, lambda: runner.running(container, run))
    return _plain(options.limited(options.render(log.read(final=True))))


def _current_run(status: Mapping[str, Any]) -> int:
    """The run `kubectl logs` shows: the current one, or while a restart waits the last one."""
    count = int(status.get("restartCount", 0))
    waiting = "waiting" in (status.get("state") or {})
    if waiting and (status.get("lastState") or {}).get("terminated"):
        return count - 1
    return count


def _plain(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/plain")


@dataclass(frozen=True)
class _LogOptions:
    """The log query's selection and formatting of lines."""

    tail: int | None
    since_ns: int | None
    timestamps: bool
    limit: int | None

    @classmethod
    def parse(cls, request: web.Request) -> _LogOptions:
        """The options of a log request; 400 for malformed values."""
        query = request.query
        since_ns = None
        if (seconds := _optional_int(query.get("sinceSeconds"), "sinceSeconds")) is not None:
            since_ns = time.time_ns() - seconds * 1_000_000_000
        elif since_time := query.get("sinceTime"):
            try:
                since_ns = int(datetime.fromisoformat(since_time).timestamp() * 1e9)
            except ValueError:
                raise bad_request(
                    f"sinceTime must be an RFC 3339 time, got {since_time!r}"
                ) from None
        return cls(
            _optional_int(query.get("tailLines"), "tailLines"),
            since_ns,
            _flag(request, "timestamps"),
            _optional_int(query.get("limitBytes"), "limitBytes"),
        )

    def render(
        self, lines: list[tuple[int, bytes]], *, first: bool = True, timed: bool = True
    ) -> bytes:
        """Lines (time in ns, text) as served: the last tailLines of the first read, those
        since the since time, with their times when asked (untimed lines are all kept, bare)."""
        if first and self.tail is not None:
            lines = lines[-self.tail :] if self.tail > 0 else []
        if timed and self.since_ns is not None:
            lines = [line for line in lines if line[0] >= self.since_ns]
        if timed and self.timestamps:
            return b"".join(f"{_rfc3339_nano(ns)} ".encode() + text for ns, text in lines)
        return b"".join(text for _, text in lines)

    def limited(self, body: bytes) -> bytes:
        """The first limitBytes of a body."""
        return body if self.limit is None else body[: self.limit]


def _rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: nanoseconds without trailing zeros."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def _lines(data: bytes) -> list[bytes]:
    """Lines split at newlines only, each keeping its newline (the last may have none)."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


class _RunLog:
    """One run's log read as it grows, as lines with the time each was written."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._times_path = PodFiles.times_path(path)
        self._offset = 0
        self._pending = b""
        self._times: dict[int, int] = {}
        self._times_offset = 0
        self._last_ns = 0

    def read(self, *, final: bool) -> list[tuple[int, bytes]]:
        """The lines written since the last read; an incomplete last line waits for the next
        read unless final."""
        start = self._offset - len(self._pending)
        data = self._pending + _read_from(self._path, self._offset)
        self._offset = start + len(data)
        # Times are written before their lines, so every line read has its time by now.
        times, self._times_offset = line_times(self._times_path, self._times_offset)
        self._times.update(times)
        lines = _lines(data)
        keep = not final and lines and not lines[-1].endswith(b"\n")
        self._pending = lines.pop() if keep else b""
        timed = []
        for line in lines:
            self._last_ns = self._times.pop(start, self._last_ns)
            timed.append((self._last_ns, line))
            start += len(line)
        return timed


async def _follow(
    request: web.Request, log: _RunLog, options: _LogOptions, live: Callable[[], bool]
) -> web.StreamResponse:
    """Stream one run's log until that run ends or the client leaves."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    first, budget = True, options.limit
    with contextlib.suppress(ConnectionResetError):
        async for final in _polls(live):
            if request.transport is None or request.transport.is_closing():
                break
            chunk = options.render(log.read(final=final), first=first)
            first = False
            if budget is not None:
                chunk, budget = chunk[:budget], budget - len(chunk[:budget])
            if chunk:
                await response.write(chunk)
            if budget == 0:
                break
        await response.write_eof()
    return response


async def _polls(live: Callable[[], bool]) -> AsyncIterator[bool]:
    """The polls of a run's output while it is written: each says whether it is the last."""
    while True:
        # Whether the run goes on is asked before its output is read, so the last poll reads
        # all of it.
        going = live()
        yield not going
        if not going:
            return
        await asyncio.sleep(_FOLLOW_POLL_SECONDS)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return bytes(log.read())
    except FileNotFoundError:
        return b""


def _optional_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {value!r}") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) in ("true", "1")


def _default_container(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))


def _container_status(pod: Mapping[str, Any], container: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    entries = [
        *(status.get("containerStatuses") or []),
        *(status.get("initContainerStatuses") or []),
    ]
    return next((dict(e) for e in entries if e.get("name") == container), {})


# ---- exec and port-forward ----


async def serve(request: web.Request, store: Store, match: re.Match[str]) -> web.StreamResponse:
    """The exec, attach or portforward subresource of the pod a STREAM_PATH match names."""
    pod = store.get("", "pods", match["namespace"], match["name"])
    if match["subresource"] == "portforward":
        return await _port_forward(request, pod)
    if match["subresource"] == "attach":
        return await _attach(request, pod)
    return await _exec(request, pod)


def _running(
    request: web.Request, pod: Mapping[str, Any], container: str
) -> tuple[ContainerProcesses, ContainerContext]:
    """The pod's processes and the context of a running container; 400 when it is not
    running."""
    metadata = pod.get("metadata") or {}
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if container not in containers:
        raise bad_request(f"container {container} is not valid for pod {metadata.get('name')}")
    runner = _processes(request, pod)
    context = runner.context(container) if runner is not None else None
    if runner is None or context is None:
        raise bad_request(
            f'container "{container}" in pod "{metadata.get("name")}" is not running as a local '
            "process: exec and attach need a running container of a process pod"
        )
    return runner, context


def _wanted_channels(request: web.Request) -> set[int]:
    """The channels an exec or attach request asks for (a terminal merges stderr into stdout
    and is resized)."""
    tty = _flag(request, "tty")
    asked = {
        STDIN: _flag(request, "stdin"),
        STDOUT: _flag(request, "stdout"),
        STDERR: _flag(request, "stderr") and not tty,
        RESIZE: tty,
    }
    return {channel for channel, wanted in asked.items() if wanted}


async def _exec(request: web.Request, pod: Mapping[str, Any]) -> web.StreamResponse:
    command = request.query.getall("command", [])
    if not command:
        raise bad_request("you must specify at least 1 command")
    container = request.query.get("container") or _default_container(pod)
    _, context = _running(request, pod, container)
    wanted = _wanted_channels(request)
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    channels = await command_channels(request, wanted)
    terminal = _Terminal() if RESIZE in wanted else None
    messages = channels.incoming()
    if terminal is not None:
        messages = await _after_first_size(messages, terminal)
    try:
        process = await asyncio.create_subprocess_exec(
            *context.argv(command),
            env=dict(context.env),
            cwd=context.cwd,
            stdin=terminal.child if terminal else pipe if STDIN in wanted else devnull,
            stdout=terminal.child if terminal else pipe if STDOUT in wanted else devnull,
            stderr=terminal.child if terminal else pipe if STDERR in wanted else devnull,
            start_new_session=True,
        )
    except OSError as error:
        await channels.finish(_internal_error(f"error executing command in container: {error}"))
        return channels.response
    finally:
        if terminal is not None:
            os.close(terminal.child)
    outputs: list[tuple[asyncio.StreamReader | None, int]]
    stdin: asyncio.StreamWriter | None
    try:
        if terminal is not None:
            stdin, resize = await terminal.writer(), terminal.resize
            outputs = [(await terminal.reader(), STDOUT)]
        else:
            stdin, resize = process.stdin, None
            outputs = [(process.stdout, STDOUT), (process.stderr, STDERR)]
        feeder = asyncio.create_task(_exec_stdin(messages, process, stdin, resize))
        try:
            await asyncio.gather(*(_relay_output(o, channels, c) for o, c in outputs))
            code = await process.wait()
        finally:
            feeder.cancel()
            _kill(process)
            await process.wait()
    finally:
        if terminal is not None:
            terminal.close()
    await channels.finish(_exit_status(command, code))
    return channels.response


async def _after_first_size(
    messages: AsyncIterator[tuple[int, bytes]], terminal: _Terminal
) -> AsyncIterator[tuple[int, bytes]]:
    """Wait (briefly) for the client's first terminal size and apply it, so that a command
    asking its terminal's size at once gets the client's: kubectl sends it as the stream opens,
    but the command must not start before it arrives. The client's messages, those read while
    waiting included, are read on from what this returns."""
    inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for message in messages:
                inbox.put_nowait(message)
        finally:
            inbox.put_nowait(None)

    pumping = asyncio.create_task(pump())
    early: list[tuple[int, bytes] | None] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_FIRST_SIZE_WAIT):
            while (message := await inbox.get()) is not None and message[0] != RESIZE:
                early.append(message)
            if message is None:
                early.append(None)
            else:
                with contextlib.suppress(ValueError, KeyError, OSError):
                    terminal.resize(message[1])

    async def rest() -> AsyncIterator[tuple[int, bytes]]:
        try:
            for message in early:
                if message is None:
                    return
                yield message
            while (message := await inbox.get()) is not None:
                yield message
        finally:
            pumping.cancel()

    return rest()


class _Terminal:
    """A pseudo-terminal for exec with tty=true: the command's stdin, stdout and stderr."""

    def __init__(self) -> None:
        self.parent, self.child = pty.openpty()
        self._transports: list[asyncio.BaseTransport] = []

    async def reader(self) -> asyncio.StreamReader:
        """What the command writes to the terminal."""
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader),
            os.fdopen(os.dup(self.parent), "rb", buffering=0),
        )
        self._transports.append(transport)
        return reader

    async def writer(self) -> asyncio.StreamWriter:
        """What the command reads from the terminal."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(os.dup(self.parent), "wb", buffering=0),
        )
        self._transports.append(transport)
        return asyncio.StreamWriter(transport, protocol, None, loop)

    def resize(self, payload: bytes) -> None:
        """Apply a resize message ({"Width": columns, "Height": rows})."""
        size = json.loads(payload)
        winsize = struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0)
        fcntl.ioctl(self.parent, termios.TIOCSWINSZ, winsize)

    def close(self) -> None:
        """Close the terminal's parent side."""
        for transport in self._transports:
            transport.close()
        os.close(self.parent)


async def _attach(request: web.Request, pod: Mapping[str, Any]) -> web.StreamResponse:
    """Stream a running container's output from now on, and its stdin when its spec has one
    (stdinOnce: closed when the client detaches), until the container's run ends."""
    container = request.query.get("container") or _default_container(pod)
    runner, _ = _running(request, pod, container)
    spec = next(c for c in pod["spec"]["containers"] if c.get("name") == container)
    run = int(_container_status(pod, container).get("restartCount", 0))
    path = runner.run_log(container, run)
    offset = path.stat().st_size
    wanted = _wanted_channels(request)
    stdin = runner.stdin(container) if STDIN in wanted else None
    once = bool(spec.get("stdinOnce"))
    channels = await command_channels(request, wanted)
    feeder = asyncio.create_task(_feed_stdin(channels.incoming(), stdin, closable=once))
    try:
        async for _ in _polls(lambda: runner.running(container, run)):
            if feeder.done():
                break
            chunk = _read_from(path, offset)
            offset += len(chunk)
            if chunk:
                await channels.send(STDOUT, chunk)
    finally:
        feeder.cancel()
        if once and stdin is not None:
            stdin.close()
    await channels.finish({"metadata": {}, "status": "Success"})
    return channels.response


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


async def _relay_output(
    stream: asyncio.StreamReader | None, channels: CommandChannels, channel: int
) -> None:
    if stream is None:
        return
    # A terminal's parent side fails with EIO once the command and its children are gone.
    with contextlib.suppress(OSError):
        while chunk := await stream.read(_CHUNK):
            await channels.send(channel, chunk)


async def _exec_stdin(
    messages: AsyncIterator[tuple[int, bytes]],
    process: asyncio.subprocess.Process,
    stdin: asyncio.StreamWriter | None,
    resize: Callable[[bytes], None] | None,
) -> None:
    await _feed_stdin(messages, stdin, closable=True, resize=resize)
    # The client went away: its command goes with it.
    _kill(process)


async def _feed_stdin(
    messages: AsyncIterator[tuple[int, bytes]],
    stdin: asyncio.StreamWriter | None,
    *,
    closable: bool,
    resize: Callable[[bytes], None] | None = None,
) -> None:
    """Write stdin to a pipe until the client leaves; the client closing stdin closes the pipe
    when closable; resize messages go to resize."""
    async for channel, payload in messages:
        with contextlib.suppress(ConnectionError, OSError, ValueError, KeyError):
            if channel == RESIZE and resize is not None:
                resize(payload)
            elif stdin is None:
                continue
            elif channel == STDIN:
                stdin.write(payload)
                await stdin.drain()
            elif channel == CLOSE and payload[:1] == bytes([STDIN]) and closable:
                stdin.close()


def _exit_status(command: list[str], code: int) -> dict[str, Any]:
    """The Status the kubelet ends an exec with: Success, or NonZeroExitCode with ExitCode."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    exit_code = 128 - code if code < 0 else code
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {exit_code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def _internal_error(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


# ---- port-forward ----


class _Forward:
    """One forwarded connection: its error and data streams and the pod-side socket."""

    def __init__(self, request_id: str, port: int) -> None:
        self.request_id = request_id
        self.port = port
        self.error_stream: int | None = None
        self.data_stream: int | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        self.task: asyncio.Task[None] | None = None


class _PortForward:
    """Serves the SPDY streams of one port-forward connection: an error and a data stream per
    forwarded connection, paired by their requestID header."""

    def __init__(self, session: spdy.Session, pod: Mapping[str, Any]) -> None:
        self._session = session
        self._pod = pod
        self._forwards: dict[str, _Forward] = {}
        self._by_stream: dict[int, _Forward] = {}

    async def run(self) -> None:
        """Serve until the client closes the connection."""
        try:
            await self._session.serve(self)
        finally:
            for forward in list(self._forwards.values()):
                if forward.task is not None:
                    forward.task.cancel()

    def reset(self, stream_id: int) -> None:
        """A reset stream ends its forwarded connection."""
        forward = self._by_stream.get(stream_id)
        if forward is not None and forward.task is not None:
            forward.task.cancel()

    async def opened(self, stream_id: int, headers: Mapping[str, str]) -> None:
        """Pair the stream with its connection's other stream; dial once both are open."""
        port, request_id = int(headers.get("port", "0") or 0), headers.get("requestid", "")
        forward = self._forwards.setdefault(request_id, _Forward(request_id, port))
        self._by_stream[stream_id] = forward
        if headers.get("streamtype") == "error":
            forward.error_stream = stream_id
        elif headers.get("streamtype") == "data":
            forward.data_stream = stream_id
        if forward.error_stream is not None and forward.data_stream is not None:
            forward.task = asyncio.create_task(
                self._relay(forward, forward.error_stream, forward.data_stream)
            )
            forward.task.add_done_callback(lambda _task: self._forget(forward))

    def _forget(self, forward: _Forward) -> None:
        """Drop a finished connection's streams."""
        self._forwards.pop(forward.request_id, None)
        for stream_id in (forward.error_stream, forward.data_stream):
            self._by_stream.pop(stream_id or 0, None)

    async def received(self, stream_id: int, payload: bytes, fin: bool) -> None:
        """Data stream bytes go to the pod's port (held until it is connected)."""
        forward = self._by_stream.get(stream_id)
        if forward is None or stream_id != forward.data_stream:
            return
        if forward.writer is None:
            forward.pending.append(payload)
            if fin:
                forward.pending.append(b"")
            return
        await _write(forward.writer, payload, fin)

    async def _relay(self, forward: _Forward, error_stream: int, data_stream: int) -> None:
        """Connect to the pod's port and copy its bytes to the data stream until it closes."""
        connection = await _dial(self._pod, forward.port)
        if isinstance(connection, str):
            await self._session.send(spdy.data(error_stream, connection.encode(), fin=True))
            await self._session.send(spdy.data(data_stream, b"", fin=True))
            return
        reader, writer = connection
        forward.writer = writer
        for chunk in forward.pending:
            await _write(writer, chunk, not chunk)
        try:
            while chunk := await reader.read(_CHUNK):
                await self._session.send(spdy.data(data_stream, chunk))
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            await self._session.send(spdy.rst_stream(data_stream, _RST_CANCEL))
            raise
        finally:
            writer.close()
        await self._session.send(spdy.data(data_stream, b"", fin=True))
        await self._session.send(spdy.data(error_stream, b"", fin=True))


async def _write(writer: asyncio.StreamWriter, payload: bytes, fin: bool) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        if payload:
            writer.write(payload)
            await writer.drain()
        if fin and writer.can_write_eof():
            writer.write_eof()


async def _port_forward(request: web.Request, pod: Mapping[str, Any]) -> web.StreamResponse:
    """kubectl's SPDY streams, plain or tunneled in a WebSocket, or the channels of the v4
    WebSocket protocol (the Python client) for the ports of the `ports` query."""
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise bad_request(f"pod {(pod.get('metadata') or {}).get('name')} is not running")
    ports = [int(p) for value in request.query.getall("ports", []) for p in value.split(",") if p]
    if upgrade_kind(request) == SPDY:
        connection = await switch_to_spdy(request, (SPDY_PORT_FORWARD_PROTOCOL,))
        await _PortForward(spdy.Session(connection), pod).run()
        return connection.response
    socket = await websocket(request, (PORT_FORWARD_PROTOCOL, V4_CHANNEL))
    if socket.ws_protocol == PORT_FORWARD_PROTOCOL:
        await _PortForward(spdy.Session(WebSocketBytes(socket)), pod).run()
    else:
        await _channel_port_forward(WebSocketChannels(socket), pod, ports)
    await socket.close()
    return socket


async def _channel_port_forward(
    channels: WebSocketChannels, pod: Mapping[str, Any], ports: list[int]
) -> None:
    """Forward one connection per port: channel 2i carries port i's data, 2i+1 its errors, and
    each channel's first message is the port number (2 bytes, little-endian)."""
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await channels.send(channel, struct.pack("<H", port))
    connections = await asyncio.gather(*(_dial(pod, port) for port in ports))
    writers: dict[int, asyncio.StreamWriter] = {}
    relays: list[asyncio.Task[None]] = []
    for index, connection in enumerate(connections):
        if isinstance(connection, str):
            await channels.send(2 * index + 1, connection.encode())
        else:
            writers[2 * index] = connection[1]
            relays.append(asyncio.create_task(_relay_output(connection[0], channels, 2 * index)))
    feeder = asyncio.create_task(_feed_channels(channels, writers))
    try:
        await asyncio.wait([*relays, feeder], return_when=asyncio.FIRST_COMPLETED)
        if not feeder.done():
            await asyncio.gather(*relays)
    finally:
        feeder.cancel()
        for task in relays:
            task.cancel()
        for writer in writers.values():
            writer.close()


async def _feed_channels(
    channels: WebSocketChannels, writers: Mapping[int, asyncio.StreamWriter]
) -> None:
    """Write each data channel's messages to its connection until the client closes."""
    async for channel, payload in channels.incoming():
        writer = writers.get(channel)
        if writer is not None:
            await _write(writer, payload, False)


async def _dial(
    pod: Mapping[str, Any], port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
    """A connection to a pod's port on 127.0.0.1, or the kubelet's error message."""
    try:
        return await asyncio.open_connection(POD_IP, local_port(pod, port) or port)
    except OSError as error:
        metadata = pod.get("metadata") or {}
        return (
            f"error forwarding port {port} to pod {metadata.get('name')}, uid "
            f"{metadata.get('uid')}: dial tcp4 {POD_IP}:{port}: connect: "
            f"{os.strerror(error.errno).lower() if error.errno else error}"
        )
