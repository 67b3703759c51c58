"""Reading a canary's figures: the serving pods' /metrics, or the Prometheus HTTP API."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Mapping

from kubernetes.client.exceptions import ApiException

from gyre_operator.builders.analysis import (
    PodSample,
    figures_between,
    figures_from_query_results,
    parse_pod_metrics,
    prometheus_queries,
)
from gyre_operator.builders.inferenceservice import Reading
from gyre_operator.builders.serving import SERVICE_LABEL, TRACK_LABEL, Track, pod_ready
from gyre_operator.kube import Kube

log = logging.getLogger(__name__)
PROMETHEUS_TIMEOUT = 5.0


async def read_pod_figures(
    kube: Kube,
    namespace: str,
    service: str,
    model: str,
    port: int,
    versions: Mapping[Track, int | None],
    samples: dict[str, dict[str, PodSample]],
) -> Reading:
    """Both sides' figures since the last reading, from every ready pod's /metrics (through
    the API server's pod proxy, so this works from outside the cluster too). `samples` holds
    the last reading per side and is updated. A canary pod never read before counted from
    zero (it started during the rollout); a stable side never read before has no figures
    for this interval."""
    figures = {}
    for side in Track:
        version = versions.get(side)
        if version is None:
            continue
        pods = await kube.list_objects(
            "v1", "Pod", namespace, f"{SERVICE_LABEL}={service},{TRACK_LABEL}={side.value}"
        )
        current: dict[str, PodSample] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            if not pod_ready(pod):
                continue
            try:
                text = await kube.pod_text(namespace, name, port, "metrics")
                current[name] = parse_pod_metrics(text, model, str(version))
            except (ApiException, OSError, ValueError) as error:
                log.warning("metrics of pod %s/%s unreadable: %s", namespace, name, error)
        previous = samples.get(side.value)
        samples[side.value] = current
        if not current or (previous is None and side is Track.STABLE):
            continue
        figures[side] = figures_between(previous or {}, current)
    return Reading(canary=figures.get(Track.CANARY), stable=figures.get(Track.STABLE))


async def read_prometheus_figures(
    url: str, namespace: str, model: str, versions: Mapping[Track, int | None], window: str
) -> Reading:
    """Both sides' figures over the last window from a Prometheus that scrapes the pods."""
    figures = {}
    for side in Track:
        version = versions.get(side)
        if version is None:
            continue
        queries = prometheus_queries(namespace, model, str(version), window)
        try:
            results = {
                name: await asyncio.to_thread(query_prometheus, url, text)
                for name, text in queries.items()
            }
        except (OSError, ValueError) as error:
            log.warning("Prometheus at %s unreadable: %s", url, error)
            continue
        figures[side] = figures_from_query_results(results)
    return Reading(canary=figures.get(Track.CANARY), stable=figures.get(Track.STABLE))


def query_prometheus(url: str, query: str) -> float | None:
    """The value of an instant query's single result; None when the result is empty.
    OSError when Prometheus cannot be reached, ValueError when it refuses the query."""
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=PROMETHEUS_TIMEOUT) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise ValueError(f"query {query!r}: {body.get('error', 'failed')}")
    result = body["data"]["result"]
    if not result:
        return None
    return float(result[0]["value"][1])
