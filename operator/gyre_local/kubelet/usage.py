"""Resource usage of process containers and of the node, read from /proc as cAdvisor reads
cgroups: cumulative CPU time sampled periodically, CPU usage the rate between the last two
samples, memory the resident set (working set) of the latest one.

A container is its process's session: the kubelet starts each container in a new session, so
every process it forks (and does not move to a session of its own) counts towards it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gyre_local.clock import now_rfc3339

PROC = Path("/proc")
NANOS = 1_000_000_000
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Fields of /proc/<pid>/stat after the command, counted from 0 at the state field.
_SESSION, _UTIME, _STIME, _CUTIME, _CSTIME, _RSS = 3, 11, 12, 13, 14, 21
# /proc/stat's cpu line fields that are busy time: user nice system (idle iowait) irq softirq steal.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU seconds and current memory bytes of something, at a monotonic time."""

    monotonic: float
    timestamp: str
    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class Usage:
    """Usage over a window: CPU in nanocores, memory in bytes, as metrics-server reports it."""

    timestamp: str
    window_seconds: float
    cpu_nanocores: int
    memory_bytes: int


def usage_between(previous: Sample, latest: Sample) -> Usage:
    """The usage between two samples (CPU time never runs backwards: a drop counts as none)."""
    window = latest.monotonic - previous.monotonic
    cpu = max(latest.cpu_seconds - previous.cpu_seconds, 0.0)
    return Usage(
        timestamp=latest.timestamp,
        window_seconds=window,
        cpu_nanocores=round(cpu / window * NANOS) if window > 0 else 0,
        memory_bytes=latest.memory_bytes,
    )


def session_totals(proc: Path = PROC) -> dict[int, tuple[float, int]]:
    """{session id: (CPU seconds, resident bytes)} summed over the live processes of each
    session; CPU time includes the reaped children of those processes."""
    totals: dict[int, tuple[float, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = sum(int(fields[i]) for i in (_UTIME, _STIME, _CUTIME, _CSTIME))
        session = int(fields[_SESSION])
        cpu, memory = totals.get(session, (0.0, 0))
        totals[session] = (cpu + ticks / _TICKS_PER_SECOND, memory + int(fields[_RSS]) * _PAGE_SIZE)
    return totals


def node_sample(proc: Path = PROC) -> Sample:
    """The whole machine: busy CPU seconds of every CPU, and memory in use (total less
    available)."""
    cpu_line = (proc / "stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(cpu_line[i]) for i in _BUSY_FIELDS if i < len(cpu_line))
    meminfo = _meminfo(proc / "meminfo")
    used = meminfo.get("MemTotal", 0) - meminfo.get("MemAvailable", 0)
    return Sample(time.monotonic(), now_rfc3339(), busy / _TICKS_PER_SECOND, used)


def _meminfo(path: Path) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


class UsageHistory:
    """The last two samples of each tracked thing (a container run, the node)."""

    def __init__(self) -> None:
        self._samples: dict[object, tuple[Sample | None, Sample]] = {}

    def record(self, key: object, sample: Sample) -> None:
        """Add a sample, the previous latest becoming the one rates are measured from."""
        previous = self._samples.get(key)
        self._samples[key] = (previous[1] if previous else None, sample)

    def keep_only(self, keys: Iterable[object]) -> None:
        """Forget every key not given (containers that stopped or restarted)."""
        kept = set(keys)
        self._samples = {k: v for k, v in self._samples.items() if k in kept}

    def usage(self, key: object) -> Usage | None:
        """The usage over the last window, None until two samples were taken."""
        previous, latest = self._samples.get(key, (None, None))
        if previous is None or latest is None:
            return None
        return usage_between(previous, latest)


def sample_sessions(
    history: UsageHistory, leaders: Mapping[object, int], totals: Mapping[int, tuple[float, int]]
) -> None:
    """Record a sample for each key's session leader (a key whose session is gone is
    forgotten), and forget keys no longer given."""
    timestamp, moment = now_rfc3339(), time.monotonic()
    for key, leader in leaders.items():
        if leader in totals:
            cpu, memory = totals[leader]
            history.record(key, Sample(moment, timestamp, cpu, memory))
    history.keep_only(key for key, leader in leaders.items() if leader in totals)
