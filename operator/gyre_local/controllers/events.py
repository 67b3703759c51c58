"""The event recorder of the controllers and the kubelet, as client-go's EventRecorder.

Each event is a core v1 Event created through the Store, named `<object>.<16 hex digits>` (a
nanosecond timestamp, made unique), in the involved object's namespace. As client-go's
EventCorrelator does, an event identical to one already recorded (same source, involved object
and field path, type, reason and message) is not created again: the stored one gets its count
raised and its lastTimestamp moved. The correlator remembers the last `cache_size` distinct
events (least recently used forgotten first).

Recording never raises: an event that cannot be written (its namespace is gone, the store
refuses it) is logged and dropped, so a controller never fails for its events.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gyre_local.clock import now_rfc3339
from gyre_local.store.patching import MERGE_PATCH
from gyre_local.store.store import ApiError, Store

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
CACHE_SIZE = 4096


@dataclass
class _Recorded:
    """Where an earlier identical event is stored, and its count."""

    namespace: str
    name: str
    count: int


class EventRecorder:
    """Records Events for one component (and host), aggregating identical ones."""

    def __init__(
        self, store: Store, component: str, *, host: str = "", cache_size: int = CACHE_SIZE
    ) -> None:
        self.store = store
        self.component = component
        self.host = host
        self._cache_size = cache_size
        self._recorded: OrderedDict[tuple[str, ...], _Recorded] = OrderedDict()
        self._last_stamp = 0

    def normal(
        self, obj: Mapping[str, Any], reason: str, message: str, field_path: str = ""
    ) -> None:
        """Record a Normal event about obj (a container of it when field_path is given)."""
        self.record(obj, NORMAL, reason, message, field_path)

    def warning(
        self, obj: Mapping[str, Any], reason: str, message: str, field_path: str = ""
    ) -> None:
        """Record a Warning event about obj (a container of it when field_path is given)."""
        self.record(obj, WARNING, reason, message, field_path)

    def record(
        self,
        obj: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        field_path: str = "",
    ) -> None:
        """Record one event; never raises (a failure is logged)."""
        try:
            self._record(involved_object(obj, field_path), event_type, reason, message)
        except ApiError as error:
            log.debug("event %s about %s not recorded: %s", reason, _describe(obj), error)
        except Exception:
            log.warning("event %s about %s not recorded", reason, _describe(obj), exc_info=True)

    def _record(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        key = (
            self.component,
            self.host,
            *(str(involved.get(k, "")) for k in ("kind", "namespace", "name", "fieldPath")),
            *(str(involved.get(k, "")) for k in ("uid", "apiVersion")),
            event_type,
            reason,
            message,
        )
        now = now_rfc3339()
        earlier = self._recorded.get(key)
        if earlier is not None:
            self._recorded.move_to_end(key)
            earlier.count += 1
            patch = {"count": earlier.count, "lastTimestamp": now, "message": message}
            try:
                self.store.patch("", "events", earlier.namespace, earlier.name, patch, MERGE_PATCH)
                return
            except ApiError as error:
                if error.code != 404:
                    raise
            # The stored event went (deleted or expired): record it afresh, count kept.
        namespace = involved.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved.get('name', '')}.{self._stamp():016x}",
                "namespace": namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": earlier.count if earlier else 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        created = self.store.create("", "events", namespace, event)
        self._recorded[key] = _Recorded(namespace, created["metadata"]["name"], created["count"])
        self._recorded.move_to_end(key)
        while len(self._recorded) > self._cache_size:
            self._recorded.popitem(last=False)

    def _stamp(self) -> int:
        """A nanosecond timestamp, later than every one this recorder used before."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return self._last_stamp


def pod_created(recorder: EventRecorder, owner: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
    """The event of a controller that created one of its pods."""
    recorder.normal(owner, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")


def pod_deleted(recorder: EventRecorder, owner: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
    """The event of a controller that deleted one of its pods."""
    recorder.normal(owner, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")


def involved_object(obj: Mapping[str, Any], field_path: str = "") -> dict[str, Any]:
    """The ObjectReference of an event's involved object."""
    metadata = obj.get("metadata") or {}
    reference = {
        "kind": obj.get("kind", ""),
        "namespace": metadata.get("namespace", ""),
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }
    if field_path:
        reference["fieldPath"] = field_path
    return {k: v for k, v in reference.items() if v}


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind', '')} {metadata.get('namespace', '')}/{metadata.get('name', '')}"
