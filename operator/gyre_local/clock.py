"""Timestamps in the RFC 3339 form Kubernetes writes (second precision, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """The current time as Kubernetes formats metav1.Time."""
    return format_rfc3339(datetime.now(UTC))


def format_rfc3339(moment: datetime) -> str:
    """A datetime as Kubernetes formats metav1.Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro_time() -> str:
    """The current time as Kubernetes formats metav1.MicroTime (microseconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse a metav1.Time or metav1.MicroTime string."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since(text: str) -> float:
    """Seconds elapsed since a metav1.Time string."""
    return (datetime.now(UTC) - parse_rfc3339(text)).total_seconds()
