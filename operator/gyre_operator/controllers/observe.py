"""What every controller does on each event before its own reconcile: parse and account."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from gyre_operator.api import GyreResource
from gyre_operator.metrics import RECONCILE_DURATION, RECONCILE_ERRORS


def parse(resource: type[GyreResource], body: Mapping[str, Any]) -> GyreResource:
    """The typed object of an event body; ValueError with a one-line reason when it is invalid."""
    try:
        return resource.model_validate(dict(body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from error


@contextmanager
def reconciling(kind: str, logger: logging.Logger | logging.LoggerAdapter[Any]) -> Iterator[None]:
    """Time one reconcile of a kind and count it as an error if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        RECONCILE_ERRORS.labels(kind=kind, reason=type(error).__name__).inc()
        logger.error("reconcile of %s failed: %s", kind, error)
        raise
    finally:
        RECONCILE_DURATION.labels(kind=kind).observe(time.perf_counter() - started)
