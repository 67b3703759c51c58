"""The kopf handlers of the Gyre operator: thin registrations that hand off to controllers/.

Run with `gyre operator` (or `kopf run -m gyre_operator.main`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from gyre_operator.api import GROUP, RESOURCES, VERSION, GyreResource
from gyre_operator.config import OperatorConfig
from gyre_operator.controllers.observe import parse, reconciling
from gyre_operator.kube import connection_from_kubeconfig

Handler = Callable[..., Awaitable[None]]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping under the gyre.dev prefix and post events as the operator."""
    memo.setdefault("config", OperatorConfig())  # defaults under a plain `kopf run`
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO


@kopf.on.login()
def login(memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Connect with --kubeconfig when given, else as kubectl would (KUBECONFIG or in-cluster)."""
    config: OperatorConfig = memo.config
    if config.kubeconfig is None:
        info: kopf.ConnectionInfo | None = kopf.login_via_client(logger=logger, **kwargs)
        return info
    return connection_from_kubeconfig(config.kubeconfig)


def observe_handler(resource: type[GyreResource]) -> Handler:
    """A handler that parses and logs each version of an object of one kind."""
    kind = resource.info.kind

    async def observe(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        with reconciling(kind, logger):
            try:
                parse(resource, body)
            except ValueError as error:
                raise kopf.PermanentError(f"invalid {kind}: {error}") from error
            logger.info(
                "observed %s %s/%s generation %s",
                kind,
                body.metadata.namespace,
                body.metadata.name,
                body.metadata.get("generation"),
            )

    return observe


for _resource in RESOURCES:
    _handler = observe_handler(_resource)
    _id = f"observe-{_resource.info.singular}"
    kopf.on.resume(GROUP, VERSION, _resource.info.plural, id=_id)(_handler)
    kopf.on.create(GROUP, VERSION, _resource.info.plural, id=_id)(_handler)
    kopf.on.update(GROUP, VERSION, _resource.info.plural, field="spec", id=_id)(_handler)
