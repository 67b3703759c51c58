"""The only module that talks to the Kubernetes API server.

Requests are built by small pure functions (paths, bodies) and sent with the official client
in worker threads, so the operator's event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import socket
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from gyre_operator.builders.jobs import ContainerTermination
from gyre_operator.builders.plan import EventRecord

T = TypeVar("T")
FIELD_MANAGER = "gyre-operator"
REPORTING_COMPONENT = "gyre.dev/operator"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
API_THREADS = 16
# Where a pod's service account token, CA and namespace are mounted.
SERVICE_ACCOUNT_DIRECTORY = "/var/run/secrets/kubernetes.io/serviceaccount"
# The local cluster's process kubelet's table of a container's mounts.
MOUNTS_VARIABLE = "GYRE_MOUNTS"
PROXY_TIMEOUT = 5.0  # seconds for a pod's answer through the API server
# The plural of each kind Gyre creates or reads, for building request paths.
PLURALS = {
    "Job": "jobs",
    "Pod": "pods",
    "Deployment": "deployments",
    "Service": "services",
    "HTTPRoute": "httproutes",
    "Event": "events",
    "Dataset": "datasets",
    "TrainingRun": "trainingruns",
    "ModelVersion": "modelversions",
    "InferenceService": "inferenceservices",
    "DriftMonitor": "driftmonitors",
}


class Conflict(Exception):
    """The object changed since it was read (409 Conflict on a write that named its version)."""


class Refused(Exception):
    """The API server refused an object as invalid (422): its schema or a CEL rule."""

    def __init__(self, manifest: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.manifest = manifest
        self.message = message


def refusal_message(error: ApiException) -> str:
    """The API server's own account of why it refused a request (its Status message)."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return str(error.reason)


def mounted_path(path: str, environ: Mapping[str, str]) -> str:
    """Where a container path is: under the local directory that the local cluster's process
    kubelet, which cannot mount, put behind the path's mount (its GYRE_MOUNTS table,
    {mountPath: directory}); elsewhere the path itself."""
    mounts: dict[str, str] = json.loads(environ.get(MOUNTS_VARIABLE) or "{}")
    for mount_path in sorted(mounts, key=len, reverse=True):
        relative = posixpath.relpath(path, mount_path)
        if relative != ".." and not relative.startswith("../"):
            return posixpath.normpath(posixpath.join(mounts[mount_path], relative))
    return path


def client_configuration(kubeconfig: str | None) -> client.Configuration:
    """The client settings for a kubeconfig file or KUBECONFIG, else in-cluster (the pod's
    service account) when in a pod, else ~/.kube/config: kubectl's order."""
    configuration = client.Configuration()
    # Read here, not at the client's import, so the environment of the call decides.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        directory = mounted_path(SERVICE_ACCOUNT_DIRECTORY, os.environ)
        config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=posixpath.join(directory, "token"),
            cert_filename=posixpath.join(directory, "ca.crt"),
        ).load_and_set(configuration)
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return configuration


def connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    """kopf's connection settings for a kubeconfig file, else as `client_configuration`."""
    configuration = client_configuration(kubeconfig)
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    token = (header or "").split(" ", 1)[-1].strip()
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection, an object or an object's subresource."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [root]
    if namespace:
        parts += ["namespaces", namespace]
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def object_path(obj: dict[str, Any], subresource: str | None = None) -> str:
    """The REST path of an object given its manifest."""
    metadata = obj["metadata"]
    return resource_path(
        obj["apiVersion"], PLURALS[obj["kind"]], metadata.get("namespace"), metadata["name"],
        subresource,
    )  # fmt: skip


def status_patch(
    old: dict[str, Any], new: dict[str, Any], resource_version: str | None = None
) -> dict[str, Any]:
    """A merge patch turning status `old` into `new`: removed fields become null.

    With resource_version, the API server refuses it (409) once the object has changed
    since: the whole new status was built from that version, so applying it over a newer
    one would undo whatever else was written in between.
    """
    patch: dict[str, Any] = {"status": {**{k: None for k in old if k not in new}, **new}}
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch


def event_body(obj: dict[str, Any], record: EventRecord, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about obj, as `kubectl describe` shows them."""
    metadata = obj["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    micro = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata['name'][:200]}.{uuid.uuid4().hex[:16]}",
            "namespace": metadata["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata.get("resourceVersion", ""),
        },
        "reason": record.reason,
        "message": record.message[:1024],
        "type": record.type,
        "source": {"component": "gyre-operator"},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": micro,
        "action": record.reason,
        "count": 1,
    }


def pod_termination(pods: list[dict[str, Any]]) -> ContainerTermination | None:
    """How the newest finished pod of a Job ended: a failed init container, else the main one."""
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    finished.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    for pod in finished:
        status = pod.get("status") or {}
        for key in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(key) or []:
                ended = (container.get("state") or {}).get("terminated")
                if ended is None:
                    continue
                code = int(ended.get("exitCode", 0))
                if code != 0 or key == "containerStatuses":
                    return ContainerTermination(code, ended.get("message") or "")
    return None


class Kube:
    """The operator's API client: get, list, create, patch status, finalizers, events, pods."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._threads = ThreadPoolExecutor(API_THREADS, thread_name_prefix="gyre-api")

    @classmethod
    def connect(cls, kubeconfig: str | None) -> Kube:
        """A client for --kubeconfig, else in-cluster in a pod, else KUBECONFIG."""
        configuration = client_configuration(kubeconfig)
        configuration.connection_pool_maxsize = API_THREADS
        return cls(client.ApiClient(configuration))

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        try:
            return await self._call(path, "GET")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """The objects of a kind in a namespace, optionally filtered by labels."""
        path = resource_path(api_version, PLURALS[kind], namespace)
        query = [("labelSelector", label_selector)] if label_selector else []
        body = await self._call(path, "GET", query=query)
        items: list[dict[str, Any]] = body.get("items") or []
        return items

    async def create(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create an object; if it exists already, the existing one. True when created here.

        Refused when the API server finds the object invalid."""
        metadata = manifest["metadata"]
        collection = resource_path(
            manifest["apiVersion"], PLURALS[manifest["kind"]], metadata.get("namespace")
        )
        try:
            created = await self._call(
                collection, "POST", body=manifest, query=[("fieldManager", FIELD_MANAGER)]
            )
            return created, True
        except ApiException as error:
            if error.status == 422:
                raise Refused(manifest, refusal_message(error)) from error
            if error.status != 409:
                raise
        existing = await self._call(object_path(manifest), "GET")
        return existing, False

    async def patch_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Write an object's status through the status subresource (a merge patch).

        Raises Conflict when obj is no longer the current version of the object.
        """
        body = status_patch(obj.get("status") or {}, status, obj["metadata"].get("resourceVersion"))
        return await self._write(object_path(obj, "status"), body)

    async def patch_served_by(
        self, version: dict[str, Any], served_by: list[str]
    ) -> dict[str, Any]:
        """Set a ModelVersion's status.servedBy alone (its other status fields are the
        ModelVersion controller's; a merge patch of this one field leaves them as they are)."""
        body = {"status": {"servedBy": served_by}}
        return await self._call(
            object_path(version, "status"), "PATCH", body=body, content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )  # fmt: skip

    async def set_finalizers(
        self, obj: dict[str, Any], finalizers: tuple[str, ...]
    ) -> dict[str, Any]:
        """Replace an object's finalizers; Conflict if it changed since it was read."""
        body = {
            "metadata": {
                "finalizers": list(finalizers),
                "resourceVersion": obj["metadata"]["resourceVersion"],
            }
        }
        return await self._write(object_path(obj), body)

    async def _write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch that names the version it was built from."""
        try:
            return await self._call(
                path, "PATCH", body=body, content_type=MERGE_PATCH,
                query=[("fieldManager", FIELD_MANAGER)],
            )  # fmt: skip
        except ApiException as error:
            if error.status == 409:
                raise Conflict(f"{path}: {error.reason}") from error
            raise

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of an object Gyre owns (fields it stops setting are removed)."""
        return await self._call(
            object_path(manifest), "PATCH", body=manifest, content_type=APPLY_PATCH,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        )  # fmt: skip

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete an object and, in the background, what it owns; gone already is no error."""
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        body = {"propagationPolicy": "Background"}
        try:
            await self._call(path, "DELETE", body=body)
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_annotations(
        self, obj: dict[str, Any], annotations: dict[str, str | None]
    ) -> dict[str, Any]:
        """Set annotations of an object (None removes one). The merge patch names no version:
        a one-off request, or its removal once handled, is right whatever else changed."""
        body = {"metadata": {"annotations": annotations}}
        return await self._call(
            object_path(obj), "PATCH", body=body, content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )  # fmt: skip

    async def pod_text(self, namespace: str, pod: str, port: int | str, path: str) -> str:
        """GET a path of a pod's port through the API server's pod proxy, as text."""
        proxy = f"{resource_path('v1', 'pods', namespace, f'{pod}:{port}')}/proxy/{path}"

        def send() -> str:
            request = self._api.param_serialize(
                "GET", proxy, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
            )
            response = self._api.call_api(*request[:4], _request_timeout=PROXY_TIMEOUT)
            data = response.read()  # type: ignore[no-untyped-call]
            if response.status >= 400:
                raise ApiException(http_resp=response)
            return bytes(data).decode("utf-8", errors="replace")

        return await self._run(send)

    async def post_event(self, obj: dict[str, Any], record: EventRecord) -> None:
        """Post a Kubernetes Event about obj."""
        body = event_body(obj, record, datetime.now(UTC))
        await self._call(
            resource_path("v1", "events", obj["metadata"]["namespace"]), "POST", body=body
        )

    async def job_termination(self, namespace: str, job: str) -> ContainerTermination | None:
        """The termination (exit code, message) of a finished Job's newest pod, if any."""
        pods = await self.list_objects("v1", "Pod", namespace, f"job-name={job}")
        return pod_termination(pods)

    async def _call(
        self,
        path: str,
        method: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            request = self._api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request[:4])
            data = response.read()  # type: ignore[no-untyped-call]
            if response.status >= 400:
                raise ApiException(http_resp=response)
            result: dict[str, Any] = json.loads(data) if data else {}
            return result

        return await self._run(send)

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, function)
