"""HTTP/1.1 for the inference server: an asyncio.Protocol parsed by httptools.

One `HttpConnection` per client. Requests may be pipelined: each complete request takes a
slot in its connection's queue, in arrival order, and goes to the `Handler`, which answers
it (`Request.respond`) at once or later (after a batched inference); responses leave in
request order however they finish.

What this layer guarantees whatever the handler does:
- bodies by Content-Length or chunked encoding, at most `max_body_bytes`, else 413 (before
  the body is read when Content-Length says so); `Expect: 100-continue` gets `100 Continue`
  or that 413;
- the request line and headers take at most `max_header_bytes`, else 431;
- a malformed request (refused by llhttp, or of an HTTP version other than 1.0 and 1.1) gets
  400 and the connection closes; so does a request cut short by the end of the stream;
- keep-alive as HTTP/1.1 and 1.0 define it, `Connection: close` honoured, HEAD answered
  without a body;
- while the server drains (`HttpServer.draining`), the last response queued on a
  connection carries `Connection: close`, so clients stop reusing it;
- the server closes gracefully: it shuts its side down after the last response and drops
  what the client still sends for a moment, so the kernel does not reset the connection
  before the client has read that response;
- reading pauses while a client has too many responses pending or does not read them.
"""

from __future__ import annotations

import asyncio
import email.utils
import sys
import time
import traceback
from collections import deque
from http import HTTPStatus
from typing import Protocol, cast

import httptools
import orjson

JSON = b"application/json"
# Responses one client may have pending before its connection's reads pause.
MAX_PIPELINED = 64
# How long a closing connection keeps dropping what the client still sends.
LINGER_SECONDS = 2.0
# A client that started a request has this long to send all of it (slow clients hold
# memory and a connection); one with no request in progress may stay this long (longer
# than the idle timeout of common load balancers, so they close first).
REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 75.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}


class Handler(Protocol):
    """What the server does with requests; the HTTP layer knows nothing else of it."""

    def handle(self, request: Request) -> None:
        """Answer a complete request, now or later, with `request.respond`."""

    def rejected(self, request: Request, status: int) -> None:
        """Note a request that this layer refused itself (its body too large)."""


class HttpServer:
    """What the connections of one listening socket share: handler, limits and state.

    `request_timeout`: seconds a client has to send a whole request once it started (408
    after that); `idle_timeout`: seconds a connection may stay open with no request.
    """

    def __init__(
        self,
        handler: Handler,
        max_body_bytes: int,
        max_header_bytes: int,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.connections: set[HttpConnection] = set()
        self.draining = False
        # The Date header line, refreshed every second by start_clock.
        self.date = b""
        self._timer: asyncio.TimerHandle | None = None

    def protocol(self) -> HttpConnection:
        """A protocol for a new connection: the factory for `loop.create_server`."""
        return HttpConnection(self)

    def start_clock(self) -> None:
        """Every second: refresh the Date header, time out slow requests and idle clients."""
        self.date = b"date: %s\r\n" % email.utils.formatdate(usegmt=True).encode()
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(now)
        self._timer = asyncio.get_running_loop().call_later(1.0, self.start_clock)

    def stop_clock(self) -> None:
        """Stop the clock of start_clock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def busy(self) -> bool:
        """Whether a connection has a request in progress or a response not yet sent."""
        return any(connection.busy() for connection in self.connections)

    def close_idle(self) -> None:
        """Close every connection that has no request in progress and nothing to send."""
        for connection in list(self.connections):
            if not connection.busy():
                connection.close()

    def abort_all(self) -> None:
        """Close every connection at once, whatever it was doing."""
        for connection in list(self.connections):
            connection.abort()


class Request:
    """One HTTP request, and the slot of its response in its connection's order."""

    __slots__ = (
        "body",
        "connection",
        "echo_keep_alive",
        "headers",
        "keep_alive",
        "method",
        "response",
        "started",
        "url",
    )

    def __init__(
        self,
        connection: HttpConnection,
        method: bytes,
        url: bytes,
        headers: dict[bytes, bytes],
        keep_alive: bool,
    ) -> None:
        self.connection = connection
        self.method = method
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.echo_keep_alive = False
        self.body = b""
        self.started = 0.0
        self.response: bytes | None = None

    def respond(
        self, status: int, body: bytes, content_type: bytes = JSON, headers: bytes = b""
    ) -> None:
        """Send the response, after the responses to earlier requests on the connection.

        `headers` are extra header lines, each ending in CRLF.
        """
        connection = self.connection
        server = connection.server
        if not self.keep_alive or (server.draining and connection.is_last(self)):
            headers += b"connection: close\r\n"
            self.keep_alive = False
            connection.read_no_more()
        elif self.echo_keep_alive:
            # An HTTP/1.0 client keeps the connection only when the response says so.
            headers += b"connection: keep-alive\r\n"
        if self.method == b"HEAD":
            body, length = b"", len(body)
        else:
            length = len(body)
        self.response = b"%s%scontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (
            _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
            server.date,
            content_type,
            length,
            headers,
            body,
        )
        connection.completed(self)

    def error(self, status: int, message: str) -> None:
        """Respond with the protocol's error body, {"error": message}."""
        self.respond(status, orjson.dumps({"error": message}))


class _Reject(Exception):
    """Raised in a parser callback: answer with this status and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests, sends responses in order, closes cleanly."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self._max_head = server.max_header_bytes
        self._max_body = server.max_body_bytes
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        # Requests begun, and when the clock last saw that count change (for timeouts).
        self._begun = 0
        self._seen_begun = 0
        self._seen_at = time.monotonic()
        self._queue: deque[Request] = deque()
        # The request being received.
        self._receiving = False
        self._in_head = False
        self._head_bytes = 0
        self._head_raw = 0
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._request: Request | None = None
        self._body: list[bytes] = []
        self._body_bytes = 0
        # Set when no more requests are read: the connection closes once its queue is sent.
        self._finishing = False
        self._closing = False
        self._peer_eof = False
        self._queue_paused = False
        self._write_paused = False
        self._reading = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection with its server."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection: answers that finish later are dropped."""
        self._transport = None
        self._closing = True
        self._queue.clear()
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; complete requests go to the handler in order."""
        if self._finishing:
            return
        was_in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # What follows is another protocol: answer the request, then close.
            self.read_no_more()
            return
        except httptools.HttpParserCallbackError as error:
            if not self._finishing:
                self._callback_failed(error.__context__)
            return
        except httptools.HttpParserError as error:
            # After a request that closes the connection, anything more is ignored.
            if not self._finishing:
                self._fail(400, f"malformed HTTP request: {error}")
            return
        if self._in_head and was_in_head:
            # A head still incomplete after a whole read: httptools buffers it all.
            self._head_raw += len(data)
            if self._head_raw > self._max_head:
                self._fail(431, self._head_message())

    def eof_received(self) -> bool:
        """The client sends no more: answer what is pending, then close."""
        self._peer_eof = True
        if self._closing:
            return False
        if self._receiving:
            self._fail(400, "incomplete request: the stream ended before the request did")
        else:
            self.read_no_more()
        # Keep the write side open while responses are pending.
        return bool(self._queue)

    def pause_writing(self) -> None:
        """The client does not read: stop reading its requests."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The client reads again."""
        self._write_paused = False
        self._update_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A request starts."""
        self._receiving = True
        self._begun += 1
        self._in_head = True
        self._head_bytes = 0
        self._head_raw = 0
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        """A piece of the request target."""
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise _Reject(431, self._head_message())

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header; repeated names are joined with commas."""
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_head:
            raise _Reject(431, self._head_message())
        key = name.lower()
        known = self._headers.get(key)
        self._headers[key] = value if known is None else known + b"," + value

    def on_headers_complete(self) -> None:
        """The head is complete: check version, size and expectation before the body."""
        self._in_head = False
        parser = self._parser
        headers = self._headers
        keep_alive = parser.should_keep_alive()
        request = Request(self, parser.get_method(), self._url, headers, keep_alive)
        self._request = request
        # llhttp knows versions 0.9, 1.0, 1.1 and 2.0, and keeps only 1.x connections
        # alive: the version needs a look only for a closing or HTTP/1.0 connection.
        version = "1.1"
        if not keep_alive or b"connection" in headers:
            version = parser.get_http_version()
            if version != "1.1" and version != "1.0":
                raise _Reject(400, f"unsupported HTTP version {version}: this server speaks 1.1")
            request.echo_keep_alive = keep_alive and version == "1.0"
        length = headers.get(b"content-length")
        # llhttp has checked that Content-Length is one decimal number.
        if length is not None and int(length) > self._max_body:
            self.server.handler.rejected(request, 413)
            raise _Reject(413, self._body_message())
        expect = headers.get(b"expect")
        if expect is not None and version == "1.1":
            if expect.lower() != b"100-continue":
                raise _Reject(417, f"unsupported expectation {expect.decode('latin-1')!r}")
            interim = Request(self, b"", b"", {}, True)
            interim.response = _CONTINUE
            self._queue.append(interim)
            self.completed(interim)

    def on_body(self, body: bytes) -> None:
        """A piece of the body (chunked encoding already removed)."""
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            if self._request is not None:
                self.server.handler.rejected(self._request, 413)
            raise _Reject(413, self._body_message())
        self._body.append(body)

    def on_message_complete(self) -> None:
        """The request is complete: queue its response slot and hand it to the handler."""
        request = self._request
        self._receiving = False
        self._request = None
        if request is None or self._finishing:
            return
        body = self._body
        if body:
            request.body = body[0] if len(body) == 1 else b"".join(body)
        request.started = time.perf_counter()
        self._queue.append(request)
        if not request.keep_alive:
            self._finishing = True
        try:
            self.server.handler.handle(request)
        except Exception as error:
            _report("request handling failed", error)
            if request.response is None:
                request.keep_alive = False
                request.error(500, "the server failed to handle the request")
        if len(self._queue) >= MAX_PIPELINED and not self._queue_paused:
            self._queue_paused = True
            self._update_reading()

    # Responses and closing

    def completed(self, request: Request) -> None:
        """A response is ready: send it and the ready ones behind it, in order."""
        queue = self._queue
        transport = self._transport
        if transport is None or not queue or queue[0] is not request:
            return  # the connection is gone, or an earlier response is still due
        response = request.response
        if response is not None and len(queue) == 1 and request.keep_alive and not self._finishing:
            # The usual case: one request at a time on a connection that stays open.
            queue.clear()
            transport.write(response)
            return
        while queue:
            first = queue[0]
            if first.response is None:
                break
            queue.popleft()
            transport.write(first.response)
            if not first.keep_alive:
                queue.clear()
                self._finishing = True
                break
        if self._queue_paused and len(queue) < MAX_PIPELINED // 2:
            self._queue_paused = False
            self._update_reading()
        if not queue and self._finishing:
            self._close_gracefully()

    def check_timeouts(self, now: float) -> None:
        """408 to a request that takes too long to arrive; close a connection idle too long.

        Called every second: a request counts from the first check that saw it begun, and
        time spent waiting for a response is never the client's.
        """
        if self._closing:
            return
        if self._begun != self._seen_begun or self._queue:
            self._seen_begun = self._begun
            self._seen_at = now
            return
        waited = now - self._seen_at
        if self._receiving:
            if waited > self.server.request_timeout:
                self._fail(408, f"the request took over {self.server.request_timeout:g}s to arrive")
        elif waited > self.server.idle_timeout:
            self.close()

    def is_last(self, request: Request) -> bool:
        """Whether the request is the last one queued and no other is being received."""
        return not self._receiving and bool(self._queue) and self._queue[-1] is request

    def busy(self) -> bool:
        """Whether a request is in progress or a response waits to be sent."""
        return (self._receiving or bool(self._queue)) and not self._closing

    def read_no_more(self) -> None:
        """Read no more requests: the connection closes once its queue is sent."""
        self._finishing = True
        if not self._queue:
            self._close_gracefully()

    def close(self) -> None:
        """Close gracefully once the pending responses are sent (a request being received
        is dropped)."""
        self._receiving = False
        self.read_no_more()

    def abort(self) -> None:
        """Close at once."""
        if self._transport is not None:
            self._transport.abort()

    def _callback_failed(self, cause: BaseException | None) -> None:
        if isinstance(cause, _Reject):
            self._fail(cause.status, cause.message)
        else:
            _report("request parsing failed", cause)
            self._fail(500, "the server failed to read the request")

    def _fail(self, status: int, message: str) -> None:
        """Answer a request that cannot be read with an error, after earlier ones, and close."""
        self._receiving = False
        self._in_head = False
        self._request = None
        self._finishing = True
        slot = Request(self, b"", b"", {}, False)
        self._queue.append(slot)
        slot.error(status, message)

    def _close_gracefully(self) -> None:
        """Shut our side down, then drop what the client still sends until it closes."""
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        self.server.connections.discard(self)
        if self._peer_eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._queue_paused = self._write_paused = False
        self._update_reading()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        reading = not (self._queue_paused or self._write_paused)
        if reading != self._reading:
            self._reading = reading
            if reading:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _head_message(self) -> str:
        return f"request line and headers exceed {self._max_head} bytes"

    def _body_message(self) -> str:
        return f"request body exceeds {self._max_body} bytes"


def _report(message: str, error: BaseException | None) -> None:
    """A failure of the server itself, on stderr with its traceback (never sent to clients)."""
    print(f"{message}: {error!r}", file=sys.stderr, flush=True)
    if error is not None:
        traceback.print_exception(error, file=sys.stderr)
