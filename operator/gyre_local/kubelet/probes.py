"""Container probes (httpGet, tcpSocket, exec) run against local processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ProbeContext:
    """What a probe needs to reach its container: port mapping, environment, working dir."""

    local_ports: Mapping[int, int]  # containerPort -> local port
    port_names: Mapping[str, int]  # port name -> containerPort
    env: Mapping[str, str]
    cwd: str

    def local_port(self, port: int | str) -> int:
        """The local port behind a probe's port (a number or a container port name)."""
        if isinstance(port, str) and not port.isdigit():
            if port not in self.port_names:
                raise LookupError(f"container has no port named {port!r}")
            port = self.port_names[port]
        return self.local_ports.get(int(port), int(port))


async def check(probe: Mapping[str, Any], context: ProbeContext) -> bool:
    """Run one probe attempt; True when it succeeds within its timeout."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        return await asyncio.wait_for(_attempt(probe, context), timeout)
    except (TimeoutError, OSError, LookupError, aiohttp.ClientError):
        return False


async def _attempt(probe: Mapping[str, Any], context: ProbeContext) -> bool:
    if http := probe.get("httpGet"):
        port = context.local_port(http["port"])
        path = http.get("path", "/")
        if not path.startswith("/"):
            path = "/" + path
        headers = {h["name"]: h["value"] for h in http.get("httpHeaders") or []}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{HOST}:{port}{path}", headers=headers) as response,
        ):
            return 200 <= response.status < 400
    if tcp := probe.get("tcpSocket"):
        _, writer = await asyncio.open_connection(HOST, context.local_port(tcp["port"]))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    if command := (probe.get("exec") or {}).get("command"):
        process = await asyncio.create_subprocess_exec(
            *command,
            env=dict(context.env),
            cwd=context.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            return await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
    # gRPC probes are not run locally; they count as passing.
    return True


async def run_probe(
    probe: Mapping[str, Any],
    context: ProbeContext,
    on_change: Callable[[bool], Awaitable[None] | None],
) -> None:
    """Probe forever at the probe's period, calling on_change when the verdict changes.

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
        if await check(probe, context):
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
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
