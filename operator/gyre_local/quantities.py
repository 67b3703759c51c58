"""Kubernetes resource quantities: read ("1Gi", "250m") and written in the canonical forms the
API server and metrics-server write."""

from __future__ import annotations

from typing import Any

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_quantity(quantity: Any) -> float:
    """A resource quantity ("1Gi", "500M", "250m", "1e3", 1024) as a number (bytes, cores)."""
    text = str(quantity or "0").strip()
    for suffixes in (_BINARY_SUFFIXES, _DECIMAL_SUFFIXES):
        for suffix, factor in suffixes.items():
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * factor
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def decimal_quantity(nanos: int) -> str:
    """A count of billionths (CPU nanocores) as the canonical decimal quantity Kubernetes
    writes ("2", "12m", "1500n", "50M")."""
    for suffix, power in zip("EPTGMk mun", range(27, -1, -3), strict=True):
        scale = 10**power
        if nanos and nanos % scale == 0:
            return f"{nanos // scale}{suffix.strip()}"
    return "0"


def memory_quantity(size: int) -> str:
    """Bytes as the canonical binary quantity metrics-server writes ("1024Ki" is "1Mi")."""
    for suffix, power in (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)):
        scale = 1 << (10 * power)
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)
