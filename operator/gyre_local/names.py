"""Generated names as Kubernetes makes them: its safe alphabet (no vowels, no look-alike
characters), for generateName suffixes, controllers' pod names and encoded hashes."""

from __future__ import annotations

import secrets

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    """A random name suffix like the ones Kubernetes generates."""
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))
