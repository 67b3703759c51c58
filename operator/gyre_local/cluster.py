"""The local cluster: API server, controllers, kubelet and Service proxy in one event loop."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web
from kubernetes import config
from kubernetes.client import ApiClient

from gyre_local.apiserver.app import create_app
from gyre_local.certificates import Pki, ensure_pki
from gyre_local.controllers.autoscalers import SYNC_PERIOD, HorizontalPodAutoscalerController
from gyre_local.controllers.cronjobs import CronJobController
from gyre_local.controllers.daemonsets import DaemonSetController
from gyre_local.controllers.deployments import DeploymentController, ReplicaSetController
from gyre_local.controllers.disruption import DisruptionController
from gyre_local.controllers.endpoints import EndpointsController
from gyre_local.controllers.jobs import JobController
from gyre_local.controllers.reconciler import Controller
from gyre_local.controllers.statefulsets import StatefulSetController
from gyre_local.controllers.system import (
    API_SERVICE_IP,
    ApiServerServiceController,
    RootCAPublisher,
    ServiceAccountController,
    create_cluster_objects,
    ensure_api_server_service,
)
from gyre_local.controllers.volumes import (
    ClaimProtectionController,
    PersistentVolumeController,
    VolumeProtectionController,
)
from gyre_local.kubeconfig import write_kubeconfig
from gyre_local.kubelet.kubelet import Kubelet, SimulationRules
from gyre_local.kubelet.process import ImageMap
from gyre_local.kubelet.state import Backoff
from gyre_local.proxy.routes import RouteProxy
from gyre_local.proxy.services import ServiceProxy, bind
from gyre_local.store.builtins import CRD_GROUP, CRD_PLURAL
from gyre_local.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT = 1.0
CONTROLLERS: tuple[type[Controller], ...] = (
    JobController,
    CronJobController,
    ReplicaSetController,
    DeploymentController,
    StatefulSetController,
    DaemonSetController,
    DisruptionController,
    EndpointsController,
    ClaimProtectionController,
    VolumeProtectionController,
    ServiceAccountController,
)


class LocalCluster:
    """A single-node Kubernetes control plane on 127.0.0.1 with a local kubelet, its API served
    over HTTPS (`url`) with a CA of the state directory (`ca_path`, `ssl_context()`).

    Run it in the foreground with `await cluster.run()`, or in a background thread with
    `start()` / `stop()` (or as a context manager). `kubelet` is "simulated" or "process";
    `image_map` maps images to local executables for process mode; `crds` are CRD YAML files
    or directories loaded at start.
    """

    def __init__(
        self,
        *,
        kubelet: str = "simulated",
        port: int = 0,
        host: str = HOST,
        image_map: ImageMap | Mapping[str, str | Sequence[str]] | None = None,
        state_dir: str | Path | None = None,
        simulation: SimulationRules | None = None,
        restart_backoff: Backoff | None = None,
        crds: Iterable[str | Path] = (),
    ) -> None:
        self.store = Store()
        self.host = host
        self.port = port
        self._owns_state_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="gyre-local-")).resolve()
        self.kubeconfig_path = self.state_dir / "kubeconfig"
        self.pki = Pki(self.state_dir / "pki")
        self.simulation = simulation or SimulationRules()
        self.kubelet = Kubelet(
            self.store,
            mode=kubelet,
            rules=self.simulation,
            image_map=image_map if isinstance(image_map, ImageMap) else ImageMap(image_map),
            state_dir=self.state_dir,
            backoff=restart_backoff,
        )
        self.proxy = ServiceProxy(self.store, host=host)
        self.routes = RouteProxy(self.store, self.proxy)
        # kube-controller-manager's --horizontal-pod-autoscaler-sync-period.
        self.autoscaler_sync_period = SYNC_PERIOD
        self.url = ""
        self._crds = [Path(p) for p in crds]
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- in the event loop ----

    async def astart(self) -> None:
        """Serve the API over HTTPS and start controllers, kubelet and proxy in the running loop."""
        self._loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(self.pki.directory, [self.host, API_SERVICE_IP])
        create_cluster_objects(self.store)
        for document in _crd_documents(self._crds):
            self.store.create(CRD_GROUP, CRD_PLURAL, None, document)
        # Open watches must not hold up a stop; a dropped client ends its watch handler.
        self._runner = web.AppRunner(
            create_app(self.store, self.kubelet.process_pod, self.kubelet),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await self._runner.setup()
        sock = bind(self.host, self.port)
        await web.SockSite(self._runner, sock, ssl_context=self.pki.server_context()).start()
        self.port = int(sock.getsockname()[1])
        self.url = f"https://{self.host}:{self.port}"
        write_kubeconfig(self.kubeconfig_path, self.url, self.pki)
        ensure_api_server_service(self.store, self.port)
        self.store.set_log_provider(self.kubelet.read_log)
        runnables: list[Callable[[], Any]] = [self.kubelet.run, self.proxy.run, self.routes.run]
        runnables += [controller(self.store).run for controller in CONTROLLERS]
        runnables.append(PersistentVolumeController(self.store, self.kubelet.claim_directory).run)
        runnables.append(
            HorizontalPodAutoscalerController(
                self.store, self.kubelet, sync_period=self.autoscaler_sync_period
            ).run
        )
        runnables += [
            ApiServerServiceController(self.store, self.port).run,
            RootCAPublisher(self.store, self.pki.ca_pem()).run,
        ]
        self._tasks = [asyncio.create_task(self._guard(run)) for run in runnables]

    async def astop(self) -> None:
        """Stop everything started by astart: pods' processes, listeners, the API server."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def run(self) -> None:
        """Run in the foreground until cancelled (Ctrl-C), then stop cleanly."""
        await self.astart()
        try:
            await asyncio.Event().wait()
        finally:
            await self.astop()

    @staticmethod
    async def _guard(run: Callable[[], Any]) -> None:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("local cluster component %s stopped", run)

    # ---- from another thread ----

    def start(self) -> LocalCluster:
        """Start the cluster in a background thread; returns once the API server listens."""
        ready: Future[None] = Future()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as error:
                ready.set_exception(error)
                loop.close()
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=serve, name="gyre-local", daemon=True)
        self._thread.start()
        ready.result()
        return self

    def stop(self) -> None:
        """Stop a cluster started with start() and wait for its thread."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.astop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run function(*args) in the cluster's loop thread (the Store is not thread-safe)."""
        if self._loop is None or self._thread is None:
            return function(*args)

        async def invoke() -> T:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result()

    def service_url(self, namespace: str, name: str, port: int | str | None = None) -> str:
        """The local URL of a Service port (the first port by default)."""
        url = self.call(self.proxy.url, namespace, name, port)
        if url is None:
            raise LookupError(f"service {namespace}/{name} has no local port (yet)")
        return url

    def route_url(self, namespace: str, name: str) -> str:
        """The local URL of an HTTPRoute."""
        url = self.call(self.routes.url, namespace, name)
        if url is None:
            raise LookupError(f"HTTPRoute {namespace}/{name} has no local port (yet)")
        return url

    @property
    def ca_path(self) -> Path:
        """The cluster CA's certificate file, for clients of `url` to trust."""
        return self.pki.ca_cert

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS client context trusting the cluster's CA, for requests to `url`."""
        return self.pki.client_context()

    def api_client(self) -> ApiClient:
        """An official Kubernetes client configured from this cluster's kubeconfig."""
        client: ApiClient = config.new_client_from_config(str(self.kubeconfig_path))  # type: ignore[no-untyped-call]
        return client

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll condition() until it returns a truthy value (returned) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


@contextmanager
def running_cluster(**options: Any) -> Iterator[LocalCluster]:
    """A LocalCluster started in a background thread for the duration of the block."""
    cluster = LocalCluster(**options)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _crd_documents(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            for document in yaml.safe_load_all(file.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    yield document
