"""The HTTP layer on its own, in this process, on asyncio's own loop (the server's fallback
when uvloop is missing): timeouts for slow and idle clients, answers in request order."""

from __future__ import annotations

import asyncio

from gyre_runtime.serving.http import HttpServer, Request


class Echo:
    """Answers each request with its body; requests to /later wait for `release`."""

    def __init__(self) -> None:
        self.held: list[Request] = []

    def handle(self, request: Request) -> None:
        if request.url == b"/later":
            self.held.append(request)
        else:
            request.respond(200, request.body or request.url)

    def rejected(self, request: Request, status: int) -> None:
        pass

    def release(self) -> None:
        for request in self.held:
            request.respond(200, b"later")
        self.held.clear()


async def serve(handler: Echo, **timeouts: float) -> tuple[HttpServer, asyncio.Server, int]:
    http = HttpServer(handler, 1024, 1024, **timeouts)
    listener = await asyncio.get_running_loop().create_server(http.protocol, "127.0.0.1", 0)
    http.start_clock()
    return http, listener, listener.sockets[0].getsockname()[1]


async def test_slow_requests_get_408_and_idle_connections_close() -> None:
    http, listener, port = await serve(Echo(), request_timeout=0.5, idle_timeout=0.5)
    try:
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        idle_reader, _ = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(slow_reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"the request took over 0.5s to arrive" in answer
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    finally:
        http.stop_clock()
        listener.close()


async def test_answers_finishing_out_of_order_leave_in_request_order() -> None:
    handler = Echo()
    http, listener, port = await serve(handler)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /later HTTP/1.1\r\n\r\n"
            b"POST /now HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnow\r\n0\r\n\r\n"
        )
        await asyncio.sleep(0.1)
        assert handler.held and not await _ready(reader)
        handler.release()
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"now"):
            data += await asyncio.wait_for(reader.read(1024), 5)
        assert data.index(b"later") < data.index(b"now")
        writer.close()
    finally:
        http.stop_clock()
        listener.close()


async def _ready(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), 0.1)
    except TimeoutError:
        return False
    return True
