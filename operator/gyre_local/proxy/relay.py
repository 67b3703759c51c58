"""HTTP forwarding to local backends, shared by the Service proxy and the API server's proxy.

Requests go over kept-alive connections, and two failures are retried. A connection that
cannot be made means the request reached no server: the next backend is tried, each at most
once, for every method, like Envoy's connect-failure retry. A kept-alive connection the
backend closes before the response arrives is most likely one it closed while idle (servers
may do so at any time, RFC 9112 section 9.3.1, and nobody reads a request sent into that
race): the request goes once more, on a new connection to the same backend. Such a close looks
the same as a backend that read the request and stopped without answering, which then gets the
request twice. Any other failure is the caller's to report.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from yarl import URL

HOST = "127.0.0.1"
# Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded; lengths are recomputed.
_HOP_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Proxy-Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
_CLOSED_BY_PEER = frozenset({errno.ECONNRESET, errno.EPIPE})


class BackendError(Exception):
    """A request no backend answered; the message names the last backend tried and why."""

    def __init__(self, backend: int, failure: aiohttp.ClientError) -> None:
        super().__init__(_describe(backend, failure))
        self.backend = backend


class Relay:
    """Forwards requests to 127.0.0.1 ports; open() before use, close() after."""

    def __init__(self) -> None:
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the HTTP client sessions (inside the event loop that will use them)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        reuse = aiohttp.TraceConfig()
        reuse.on_connection_reuseconn.append(_mark_reused)
        self._pooled = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, trace_configs=[reuse]
        )
        # Retries after an idle close must not pick another pooled connection the backend
        # closed as well.
        self._fresh = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=timeout,
            auto_decompress=False,
        )
        for session in (self._pooled, self._fresh):
            # aiohttp retries idempotent requests once after any disconnect, on a new connection
            # too, which would repeat a request a backend received and failed on: the retries
            # are decided here alone.
            session._retry_connection = False

    async def close(self) -> None:
        """Close the sessions and their connections."""
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()
        self._pooled = self._fresh = None

    async def forward(
        self, request: web.Request, backends: Sequence[int], target: str
    ) -> web.Response:
        """The response of the first backend that takes the request.

        target is the percent-encoded path and query to request. Backends refusing the
        connection are skipped; BackendError when none answers or one fails after the request
        reached it.
        """
        body = await request.read()
        headers = _forwarded_headers(request)
        failure: BackendError | None = None
        for backend in backends:
            url = URL(f"http://{HOST}:{backend}{target}", encoded=True)
            try:
                return await self._exchange(request.method, url, headers, body)
            except aiohttp.ClientConnectorError as error:
                failure = BackendError(backend, error)
            except aiohttp.ClientError as error:
                raise BackendError(backend, error) from error
        if failure is None:
            raise ValueError("no backend to forward to")
        raise failure

    async def _exchange(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes
    ) -> web.Response:
        assert self._pooled is not None and self._fresh is not None
        options: dict[str, Any] = {
            "headers": headers,
            "data": body or None,
            "allow_redirects": False,
        }
        attempt = {"reused": False}
        try:
            upstream = await self._pooled.request(method, url, trace_request_ctx=attempt, **options)
        except aiohttp.ClientError as error:
            if not (attempt["reused"] and _closed_by_peer(error)):
                raise
            upstream = await self._fresh.request(method, url, **options)
        async with upstream:
            payload = await upstream.read()
        return web.Response(
            status=upstream.status, headers=_end_to_end(upstream.headers), body=payload
        )


async def _mark_reused(
    _session: aiohttp.ClientSession, context: Any, _params: aiohttp.TraceConnectionReuseconnParams
) -> None:
    context.trace_request_ctx["reused"] = True


def _closed_by_peer(error: aiohttp.ClientError) -> bool:
    """Whether a connection failed because the backend closed it before any response."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return False
    if isinstance(error, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return True
    return isinstance(error, OSError) and error.errno in _CLOSED_BY_PEER


def _end_to_end(headers: MultiMapping[str]) -> CIMultiDict[str]:
    """The headers a proxy passes on: all but the hop-by-hop ones and those Connection names."""
    listed = {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
    }
    dropped = _HOP_HEADERS | listed
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


def _forwarded_headers(request: web.Request) -> CIMultiDict[str]:
    headers = _end_to_end(request.headers)
    client = request.remote or HOST
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
    return headers


def _describe(backend: int, failure: aiohttp.ClientError) -> str:
    """A failure worded as Go's dialer words it, as clients of kube-apiserver match on that."""
    if isinstance(failure, aiohttp.ClientConnectorError) and failure.errno:
        return f"dial tcp {HOST}:{backend}: connect: {os.strerror(failure.errno).lower()}"
    return f"{HOST}:{backend}: {failure}"
