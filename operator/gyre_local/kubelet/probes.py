"""Container probes (httpGet, tcpSocket, exec) run against local processes; each failed
attempt is described as the kubelet describes it in its Unhealthy events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

HOST = "127.0.0.1"
# The kubelet keeps the first 10 KiB of an exec probe's output.
_EXEC_OUTPUT_LIMIT = 10 * 1024


class ProbeEvents(Protocol):
    """Where a container's probe failures are told (the kubelet's events)."""

    def unhealthy(self, container: str, probe: str, output: str) -> None:
        """A Readiness, Liveness or Startup probe attempt failed with this output."""

    def failed_probe(self, container: str, probe: str) -> None:
        """A container is stopped for failing its liveness or startup probe."""


@dataclass(frozen=True)
class ProbeContext:
    """What a probe needs to reach its container: port mapping, environment, working dir,
    command mapping."""

    local_ports: Mapping[int, int]  # containerPort -> local port
    port_names: Mapping[str, int]  # port name -> containerPort
    env: Mapping[str, str]
    cwd: str
    # The local argv of a command given as the container sees it (executables, mount paths).
    argv: Callable[[Sequence[str]], list[str]]

    def container_port(self, port: int | str) -> int:
        """The container port a probe's port (a number or a container port name) names."""
        if isinstance(port, str) and not port.isdigit():
            if port not in self.port_names:
                raise LookupError(f"container has no port named {port!r}")
            return self.port_names[port]
        return int(port)

    def local_port(self, port: int | str) -> int:
        """The local port behind a probe's port."""
        number = self.container_port(port)
        return self.local_ports.get(number, number)


async def check(probe: Mapping[str, Any], context: ProbeContext) -> str | None:
    """Run one probe attempt: None when it succeeds within its timeout, else the kubelet's
    description of the failure."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        return await asyncio.wait_for(_attempt(probe, context), timeout)
    except TimeoutError:
        return _failure(probe, context, None)
    except (OSError, LookupError, aiohttp.ClientError) as error:
        return _failure(probe, context, error)


async def _attempt(probe: Mapping[str, Any], context: ProbeContext) -> str | None:
    if http := probe.get("httpGet"):
        port = context.local_port(http["port"])
        headers = {h["name"]: h["value"] for h in http.get("httpHeaders") or []}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{HOST}:{port}{_path(http)}", headers=headers) as response,
        ):
            if 200 <= response.status < 400:
                return None
            return f"HTTP probe failed with statuscode: {response.status}"
    if tcp := probe.get("tcpSocket"):
        _, writer = await asyncio.open_connection(HOST, context.local_port(tcp["port"]))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    if command := (probe.get("exec") or {}).get("command"):
        process = await asyncio.create_subprocess_exec(
            *context.argv(command),
            env=dict(context.env),
            cwd=context.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
        return None if process.returncode == 0 else _text(output[:_EXEC_OUTPUT_LIMIT])
    # gRPC probes are not run locally; they count as passing.
    return None


def _failure(probe: Mapping[str, Any], context: ProbeContext, error: BaseException | None) -> str:
    """The kubelet's words for an attempt that failed with an error (None: it timed out),
    addressed to the container's port on the pod IP as the kubelet dials it."""
    if isinstance(error, LookupError):
        return str(error)
    if http := probe.get("httpGet"):
        address = f"{HOST}:{context.container_port(http['port'])}"
        if error is None:
            reason = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        else:
            reason = _dial_failure(address, error)
        return f'Get "http://{address}{_path(http)}": {reason}'
    if tcp := probe.get("tcpSocket"):
        address = f"{HOST}:{context.container_port(tcp['port'])}"
        if error is None:
            return f"dial tcp {address}: i/o timeout"
        return _dial_failure(address, error)
    if error is None:
        command = " ".join((probe.get("exec") or {}).get("command") or [])
        return f"command {json.dumps(command)} timed out"
    return str(error)


def _dial_failure(address: str, error: BaseException) -> str:
    """A failed connection as Go's dialer words it."""
    number = getattr(error, "errno", None)
    if number:
        return f"dial tcp {address}: connect: {os.strerror(number).lower()}"
    return str(error)


def _path(http: Mapping[str, Any]) -> str:
    path = str(http.get("path", "/"))
    return path if path.startswith("/") else "/" + path


def _text(output: bytes) -> str:
    return output.decode(errors="replace")


async def run_probe(
    probe: Mapping[str, Any],
    context: ProbeContext,
    on_change: Callable[[bool], Awaitable[None] | None],
    on_failure: Callable[[str], None],
) -> None:
    """Probe forever at the probe's period, calling on_failure with each failed attempt's
    description and on_change when the verdict changes.

    A verdict is reached after successThreshold successes or failureThreshold failures in a
    row; on_change sees the first verdict and every later flip.
    """
    await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
    period = float(probe.get("periodSeconds", 10))
    success_threshold = int(probe.get("successThreshold", 1))
    failure_threshold = int(probe.get("failureThreshold", 3))
    verdict: bool | None = None
    successes = failures = 0
    while True:
        failure = await check(probe, context)
        if failure is None:
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
            on_failure(failure)
        reached = verdict
        if successes >= success_threshold:
            reached = True
        elif failures >= failure_threshold:
            reached = False
        if reached is not None and reached != verdict:
            verdict = reached
            result = on_change(verdict)
            if result is not None:
                await result
        await asyncio.sleep(period)
