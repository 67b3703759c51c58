"""The process kubelet runtime: a pod's containers run as local subprocesses.

Images map to local executables (ImageMap); volumes map to directories under the pod's
directory, and since a process cannot mount, container paths under a mountPath are rewritten
in command, args and env values (see EMULATION.md).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gyre_local.apiserver.reviews import API_AUDIENCE, DEFAULT_TOKEN_EXPIRATION, issue_token
from gyre_local.controllers.system import API_SERVICE_NAME, API_SERVICE_NAMESPACE
from gyre_local.kubelet.probes import ProbeContext, ProbeEvents, run_probe
from gyre_local.kubelet.state import (
    NODE_NAME,
    POD_IP,
    Backoff,
    ContainerRecord,
    PodRecord,
    restarts,
)
from gyre_local.store.admission import service_account_name
from gyre_local.store.store import ApiError, Store

T = TypeVar("T")
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# {mountPath: local directory} of a container's mounts, for programs that compute paths.
MOUNTS_VARIABLE = "GYRE_MOUNTS"
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
_OUTPUT_CHUNK = 64 * 1024
# How long a container's end waits for the rest of its output.
_OUTPUT_DRAIN_SECONDS = 1.0
_VENV_BIN = Path(sys.executable).parent
_EXPANSION = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
# Process groups still running, killed at interpreter exit should a cluster never be stopped.
_LIVE_GROUPS: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for group in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


@dataclass(frozen=True)
class ContainerContext:
    """What a command run inside a running container gets: its environment, working directory
    and mount path rewriting."""

    env: Mapping[str, str]
    cwd: str
    rewrite: PathRewriter

    def argv(self, command: Sequence[str]) -> list[str]:
        """The local argv of a command given as the container would see it."""
        return [resolve_executable(self.rewrite(command[0])), *map(self.rewrite, command[1:])]


class ContainerConfigError(Exception):
    """A container cannot be configured yet (missing ConfigMap, Secret or key)."""


def venv_executable(name: str) -> str:
    """The path of a console script installed next to the running interpreter, else name."""
    candidate = _VENV_BIN / name
    return str(candidate) if candidate.exists() else name


class ImageMap:
    """Which images run as local processes, and the local argv of each image's entrypoint.

    Keys are image references, with or without tag ("local/python" matches
    "local/python:3.11"); values are an executable or an argv prefix. By default any image
    whose name contains "gyre-runtime" runs the gyre-runtime console script and any image
    containing "gyre-operator" runs the gyre console script of the current environment.
    """

    def __init__(
        self, mapping: Mapping[str, str | Sequence[str]] | None = None, *, defaults: bool = True
    ) -> None:
        self._mapping = {
            k: [v] if isinstance(v, str) else list(v) for k, v in (mapping or {}).items()
        }
        self._defaults = defaults

    def entrypoint(self, image: str) -> list[str] | None:
        """The argv prefix an image's entrypoint maps to, or None when the image is not mapped."""
        for key in (image, _without_tag(image)):
            if key in self._mapping:
                return list(self._mapping[key])
        if self._defaults:
            if "gyre-runtime" in image:
                return [venv_executable("gyre-runtime")]
            if "gyre-operator" in image:
                return [venv_executable("gyre")]
        return None

    def covers(self, pod: Mapping[str, Any]) -> bool:
        """Whether every container and init container of a pod uses a mapped image."""
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        return bool(containers) and all(
            self.entrypoint(c.get("image", "")) is not None for c in containers
        )


def _without_tag(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def resolve_executable(command: str) -> str:
    """Map a container command to a local executable (python -> this interpreter)."""
    base = os.path.basename(command)
    if re.fullmatch(r"python[0-9.]*", base):
        return sys.executable
    local = venv_executable(base)
    if local != base:
        return local
    return shutil.which(base) or command


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined variables are replaced, $$ escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return variables.get(name, match.group(0))

    return _EXPANSION.sub(replace, text)


class PathRewriter:
    """Rewrites container paths under mount paths (also in file:// URIs) into local directories."""

    def __init__(self, mounts: Mapping[str, str]) -> None:
        self._mounts = {p.rstrip("/"): local for p, local in mounts.items() if p.rstrip("/")}
        paths = sorted(self._mounts, key=len, reverse=True)
        self._pattern = (
            re.compile(
                r"(?:(?<=file://)|(?<![\w.\-/]))("
                + "|".join(map(re.escape, paths))
                + r")(?=/|$|[^\w.\-])"
            )
            if paths
            else None
        )

    def __call__(self, text: str) -> str:
        """The text with every mount path occurrence replaced by its local directory."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._mounts[m.group(1)], text)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((POD_IP, 0))
        return int(sock.getsockname()[1])


def env_name(name: str) -> str:
    """A name turned into an environment variable suffix (upper case, non-alphanumerics _)."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def field_ref(pod: Mapping[str, Any], path: str) -> str:
    """The value of a downward API fieldRef path for a pod."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": NODE_NAME,
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = metadata.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
    raise ContainerConfigError(f"unsupported fieldRef {path!r}")


def claim_directory(shared_volumes: Path, namespace: str, claim: str) -> Path:
    """The directory standing in for a PersistentVolumeClaim, shared by every pod using it."""
    return shared_volumes / namespace / claim


class PodFiles:
    """The pod's directory: volumes, logs, termination message files."""

    def __init__(self, root: Path, shared_volumes: Path) -> None:
        self.root = root
        self.shared_volumes = shared_volumes
        for sub in ("volumes", "logs", "termination", "work"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def log_path(self, container: str, restart_count: int) -> Path:
        """The log file of one run of a container."""
        return self.root / "logs" / f"{container}.{restart_count}.log"

    def current_log(self, container: str) -> Path | None:
        """The log file of the latest run of a container, if it ever ran."""
        runs = sorted(
            (self.root / "logs").glob(f"{container}.*.log"),
            key=lambda p: int(p.suffixes[-2].lstrip(".")),
        )
        return runs[-1] if runs else None

    @staticmethod
    def times_path(log_path: Path) -> Path:
        """The file of a run's line times: "offset nanoseconds" for each line of its log."""
        return log_path.with_suffix(".times")

    def termination_path(self, container: str) -> Path:
        """The local file standing in for a container's terminationMessagePath."""
        return self.root / "termination" / container


async def copy_output(stream: asyncio.StreamReader, log_path: Path, times_path: Path) -> None:
    """Append a process's output to its log file and, first, the time each line started to its
    times file, as a container runtime stamps each log line."""
    with log_path.open("ab") as log, times_path.open("a") as times:
        offset, line_start = log.tell(), True
        while chunk := await stream.read(_OUTPUT_CHUNK):
            now = time.time_ns()
            starts = [0] if line_start else []
            starts += [m.end() for m in re.finditer(b"\n", chunk[:-1])]
            times.write("".join(f"{offset + start} {now}\n" for start in starts))
            times.flush()
            log.write(chunk)
            log.flush()
            offset, line_start = offset + len(chunk), chunk.endswith(b"\n")


def line_times(times_path: Path, offset: int = 0) -> tuple[dict[int, int], int]:
    """The line times recorded in a times file from a byte offset on ({log offset: ns}), and
    the offset the next read starts at (complete lines only)."""
    try:
        with times_path.open("rb") as times:
            times.seek(offset)
            data = times.read()
    except FileNotFoundError:
        return {}, offset
    complete = data[: data.rfind(b"\n") + 1]
    entries = (line.split() for line in complete.splitlines())
    return {int(start): int(ns) for start, ns in entries}, offset + len(complete)


class VolumeBuilder:
    """Materialises a pod's volumes as local directories."""

    def __init__(self, store: Store, pod: Mapping[str, Any], files: PodFiles) -> None:
        self._store = store
        self._pod = pod
        self._files = files
        self._namespace = (pod.get("metadata") or {}).get("namespace", "default")

    def build(self) -> dict[str, Path]:
        """Volume name -> local directory, for every volume of the pod."""
        return {
            v["name"]: self._volume(v) for v in (self._pod.get("spec") or {}).get("volumes") or []
        }

    def _volume(self, volume: Mapping[str, Any]) -> Path:
        if host_path := volume.get("hostPath"):
            path: Path = Path(host_path["path"])
            if host_path.get("type") in ("DirectoryOrCreate", None, ""):
                path.mkdir(parents=True, exist_ok=True)
            return path
        if claim := volume.get("persistentVolumeClaim"):
            path = claim_directory(
                self._files.shared_volumes, self._namespace, str(claim["claimName"])
            )
            path.mkdir(parents=True, exist_ok=True)
            return path
        path = self._files.root / "volumes" / str(volume["name"])
        path.mkdir(parents=True, exist_ok=True)
        if source := volume.get("configMap"):
            self._write(path, self._configmap_data(source), source.get("items"))
        elif source := volume.get("secret"):
            self._write(path, self._secret_data(source, "secretName"), source.get("items"))
        elif source := volume.get("downwardAPI"):
            self._write(path, self._downward_data(source), None)
        elif source := volume.get("projected"):
            for projection in source.get("sources") or []:
                if sub := projection.get("configMap"):
                    self._write(path, self._configmap_data(sub), sub.get("items"))
                elif sub := projection.get("secret"):
                    self._write(path, self._secret_data(sub, "name"), sub.get("items"))
                elif sub := projection.get("downwardAPI"):
                    self._write(path, self._downward_data(sub), None)
                elif sub := projection.get("serviceAccountToken"):
                    self._write(path, {sub["path"]: self._token(sub)}, None)
        return path

    def _token(self, projection: Mapping[str, Any]) -> bytes:
        """A token of the pod's service account bound to the pod, as the kubelet requests it
        (written once: the local API server's pod-bound tokens outlive any local run)."""
        audience = projection.get("audience")
        try:
            token, _ = issue_token(
                self._store,
                self._namespace,
                service_account_name(self._pod),
                audiences=[audience] if audience else (API_AUDIENCE,),
                expiration=int(projection.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION),
                pod=self._pod,
            )
        except ApiError as error:
            raise ContainerConfigError(error.message) from error
        return token.encode()

    def _lookup(self, plural: str, name: str, optional: bool) -> dict[str, Any] | None:
        try:
            return self._store.get("", plural, self._namespace, name)
        except ApiError as error:
            if error.code == 404 and optional:
                return None
            raise ContainerConfigError(f'{plural[:-1]} "{name}" not found') from error

    def _configmap_data(self, source: Mapping[str, Any]) -> dict[str, bytes]:
        configmap = self._lookup("configmaps", source["name"], bool(source.get("optional")))
        if configmap is None:
            return {}
        data = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
        data.update(
            {k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()}
        )
        return data

    def _secret_data(self, source: Mapping[str, Any], name_key: str) -> dict[str, bytes]:
        secret = self._lookup("secrets", source[name_key], bool(source.get("optional")))
        return secret_bytes(secret) if secret else {}

    def _downward_data(self, source: Mapping[str, Any]) -> dict[str, bytes]:
        return {
            item["path"]: field_ref(self._pod, item["fieldRef"]["fieldPath"]).encode()
            for item in source.get("items") or []
            if item.get("fieldRef")
        }

    @staticmethod
    def _write(directory: Path, data: Mapping[str, bytes], items: Sequence[Any] | None) -> None:
        paths = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
        for key, relative in paths.items():
            if key not in data:
                raise ContainerConfigError(f'couldn\'t find key "{key}"')
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])


def api_server_variables(service: Mapping[str, Any] | None) -> dict[str, str]:
    """The variables a kubelet gives every container for the `kubernetes` Service (none
    without it), pointing at the API server's local listener, 127.0.0.1 and the Service's
    target port, rather than at its cluster IP and port 443 (which the names keep)."""
    ports = ((service or {}).get("spec") or {}).get("ports") or []
    if not ports:
        return {}
    host = POD_IP
    variables = {"KUBERNETES_SERVICE_HOST": host}
    for index, port in enumerate(ports):
        local = str(port["targetPort"])
        protocol = str(port.get("protocol", "TCP"))
        address = f"{protocol.lower()}://{host}:{local}"
        prefix = f"KUBERNETES_PORT_{port['port']}_{protocol}"
        if index == 0:
            variables |= {"KUBERNETES_SERVICE_PORT": local, "KUBERNETES_PORT": address}
        if port.get("name"):
            variables[f"KUBERNETES_SERVICE_PORT_{env_name(port['name'])}"] = local
        variables |= {
            prefix: address,
            f"{prefix}_PROTO": protocol.lower(),
            f"{prefix}_PORT": local,
            f"{prefix}_ADDR": host,
        }
    return variables


def _host_environment() -> dict[str, str]:
    """The kubelet's own environment, which containers start from, without KUBECONFIG: a pod
    has no kubeconfig unless it sets the variable itself."""
    return {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}


def secret_bytes(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's decoded data (stringData included, should the store keep it)."""
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


class ProcessPod:
    """Runs one pod's init containers then containers as local subprocesses."""

    def __init__(
        self,
        pod: dict[str, Any],
        record: PodRecord,
        *,
        store: Store,
        image_map: ImageMap,
        files: PodFiles,
        backoff: Backoff,
        publish: Callable[[], None],
        announce_ports: Callable[[dict[str, int]], None],
        probe_events: ProbeEvents,
    ) -> None:
        self.pod = pod
        self.record = record
        self._store = store
        self._image_map = image_map
        self._files = files
        self._backoff = backoff
        self._publish = publish
        self._announce_ports = announce_ports
        self._probe_events = probe_events
        self._spec = pod.get("spec") or {}
        self._policy = self._spec.get("restartPolicy", "Always")
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._helpers: set[asyncio.Task[None]] = set()
        self._copiers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._local_ports: dict[int, int] = {}
        self._port_names: dict[str, int] = {}
        self._contexts: dict[str, ContainerContext] = {}

    async def run(self) -> None:
        """Run the pod until every container is done for good (forever for restartPolicy Always)."""
        self._assign_ports()
        volumes = await self._until_configured(
            VolumeBuilder(self._store, self.pod, self._files).build, self.record.containers
        )
        for spec, record in zip(
            self._spec.get("initContainers") or [], self.record.init_containers, strict=True
        ):
            if not await self._run_init(spec, record, volumes):
                self.record.phase = "Failed"
                self._publish()
                return
        self.record.initialized = True
        self._publish()
        await asyncio.gather(
            *(
                self._run_container(spec, record, volumes)
                for spec, record in zip(
                    self._spec.get("containers") or [], self.record.containers, strict=True
                )
            )
        )
        if not self._stopping:
            self.record.finish()
            self._publish()

    async def stop(self, grace: float) -> None:
        """Terminate every process: SIGTERM, then SIGKILL after the grace period."""
        self._stopping = True
        await asyncio.gather(*(_terminate(p, grace) for p in list(self._processes.values())))
        for task in list(self._helpers):
            task.cancel()

    def logs(self, container: str) -> str:
        """The log of the latest run of a container ("" before it ever ran)."""
        path = self._files.current_log(container)
        return path.read_text(errors="replace") if path else ""

    def run_log(self, container: str, run: int) -> Path:
        """The log file of one run of a container (run n follows n restarts)."""
        return self._files.log_path(container, run)

    def running(self, container: str, run: int) -> bool:
        """Whether run n of a container may still write to its log (it is running or starting)."""
        record = self._record(container)
        return (
            record is not None
            and record.restart_count == run
            and record.exit_code is None
            and not self._stopping
        )

    def context(self, container: str) -> ContainerContext | None:
        """The context of a running container's process, None when it is not running."""
        record = self._record(container)
        if record is None or not record.running or self._stopping:
            return None
        return self._contexts.get(container)

    def stdin(self, container: str) -> asyncio.StreamWriter | None:
        """The stdin pipe of a running container whose spec says stdin: true, else None."""
        process = self._processes.get(container)
        return process.stdin if process is not None and self.context(container) else None

    def container_pids(self) -> dict[str, int]:
        """{container: pid} of the containers whose process is running (the session leader of
        each container's processes)."""
        return {name: process.pid for name, process in self._processes.items()}

    def _record(self, container: str) -> ContainerRecord | None:
        records = [*self.record.containers, *self.record.init_containers]
        return next((r for r in records if r.name == container), None)

    def _assign_ports(self) -> None:
        for container in self._spec.get("containers") or []:
            for port in container.get("ports") or []:
                number = int(port["containerPort"])
                self._local_ports.setdefault(number, free_port())
                if port.get("name"):
                    self._port_names[port["name"]] = number
        if self._local_ports:
            self._announce_ports({str(k): v for k, v in self._local_ports.items()})

    async def _until_configured(self, build: Callable[[], T], records: list[ContainerRecord]) -> T:
        """Retry a configuration step while it fails for a missing ConfigMap or Secret."""
        attempt = 0
        while True:
            try:
                return build()
            except ContainerConfigError as error:
                for record in records:
                    record.wait("CreateContainerConfigError", str(error))
                self._publish()
                attempt += 1
                await asyncio.sleep(self._backoff.delay(attempt))

    async def _run_init(
        self, spec: dict[str, Any], record: ContainerRecord, volumes: Mapping[str, Path]
    ) -> bool:
        while not self._stopping:
            exit_code = await self._run_once(spec, record, volumes)
            if exit_code == 0:
                return True
            if self._policy == "Never" or self._stopping:
                return False
            record.restart_pending("Init:CrashLoopBackOff")
            self._publish()
            await asyncio.sleep(self._backoff.delay(record.restart_count))
        return False

    async def _run_container(
        self, spec: dict[str, Any], record: ContainerRecord, volumes: Mapping[str, Path]
    ) -> None:
        while not self._stopping:
            exit_code = await self._run_once(spec, record, volumes)
            if self._stopping or not restarts(self._policy, exit_code):
                return
            record.restart_pending()
            self._publish()
            await asyncio.sleep(self._backoff.delay(record.restart_count))

    async def _run_once(
        self, spec: dict[str, Any], record: ContainerRecord, volumes: Mapping[str, Path]
    ) -> int:
        """Start a container's process, supervise it with its probes, and record its exit."""
        argv, context, termination = await self._until_configured(
            lambda: self._launch_spec(spec, volumes), [record]
        )
        env, cwd = dict(context.env), context.cwd
        termination.write_text("")
        log_path = self._files.log_path(spec["name"], record.restart_count)
        log_path.touch()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=cwd,
                # stdin: true keeps a pipe open for attach, as the runtime keeps the stream.
                stdin=asyncio.subprocess.PIPE if spec.get("stdin") else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            record.terminate(128, str(error), reason="StartError")
            self._publish()
            return 128
        assert process.stdout is not None  # stdout=PIPE
        copier = asyncio.create_task(
            copy_output(process.stdout, log_path, self._files.times_path(log_path))
        )
        # Children left behind may hold the output open: it is copied on until they close it.
        self._copiers.add(copier)
        copier.add_done_callback(self._copiers.discard)
        self._processes[spec["name"]] = process
        self._contexts[spec["name"]] = context
        _LIVE_GROUPS.add(process.pid)
        probes = self._start_probes(spec, record, process, env, cwd)
        if self.record.initialized and self.record.phase == "Pending":
            self.record.phase = "Running"
        self._publish()
        try:
            returncode = await process.wait()
        finally:
            for task in probes:
                task.cancel()
            self._processes.pop(spec["name"], None)
            _LIVE_GROUPS.discard(process.pid)
        await asyncio.wait({copier}, timeout=_OUTPUT_DRAIN_SECONDS)
        exit_code = 128 - returncode if returncode < 0 else returncode
        record.terminate(
            exit_code, self._termination_message(spec, termination, log_path, exit_code)
        )
        self._publish()
        return exit_code

    def _launch_spec(
        self, spec: Mapping[str, Any], volumes: Mapping[str, Path]
    ) -> tuple[list[str], ContainerContext, Path]:
        """argv, context (environment, working directory) and termination file of a container."""
        termination = self._files.termination_path(spec["name"])
        mounts = {
            m["mountPath"]: str(volumes[m["name"]] / m.get("subPath", ""))
            for m in spec.get("volumeMounts") or []
            if m["name"] in volumes
        }
        mounts[spec.get("terminationMessagePath", DEFAULT_TERMINATION_PATH)] = str(termination)
        # Spec values are rewritten before $(VAR) expansion so local paths are never rewritten.
        rewrite = PathRewriter(mounts)
        local = self._local_env(spec, volumes, termination)
        defined = self._container_env(spec, local, rewrite) | local
        env = {**_host_environment(), **defined}
        argv = [expand(rewrite(a), defined) for a in self._argv(spec)]
        working_dir = spec.get("workingDir")
        cwd = rewrite(working_dir) if working_dir else str(self._files.root / "work")
        if not Path(cwd).is_dir():
            cwd = str(self._files.root / "work")
        context = ContainerContext(env, cwd, rewrite)
        return self._rewrite_port_flags(argv, spec), context, termination

    def _argv(self, spec: Mapping[str, Any]) -> list[str]:
        entrypoint = self._image_map.entrypoint(spec.get("image", "")) or []
        command = list(spec.get("command") or [])
        args = list(spec.get("args") or [])
        if command:
            return [resolve_executable(command[0]), *command[1:], *args]
        return [*entrypoint, *args]

    def _rewrite_port_flags(self, argv: list[str], spec: Mapping[str, Any]) -> list[str]:
        """Point `--port N` / `--port=N` at the local port when N is a declared containerPort."""
        declared = {str(p["containerPort"]) for p in spec.get("ports") or []}
        result = list(argv)
        for index, arg in enumerate(result):
            if arg.startswith("--port=") and arg[7:] in declared:
                result[index] = f"--port={self._local_ports[int(arg[7:])]}"
            elif index > 0 and result[index - 1] == "--port" and arg in declared:
                result[index] = str(self._local_ports[int(arg)])
        return result

    def _local_env(
        self, spec: Mapping[str, Any], volumes: Mapping[str, Path], termination: Path
    ) -> dict[str, str]:
        """The variables of the local contract: root, ports, mounts, termination file."""
        local = {
            # Logs are files, not a terminal: unbuffered output keeps `kubectl logs` current.
            "PYTHONUNBUFFERED": "1",
            "GYRE_LOCAL_ROOT": str(self._files.root),
            "GYRE_TERMINATION_MESSAGE_PATH": str(termination),
            "HOSTNAME": (self.pod.get("metadata") or {}).get("name", ""),
        }
        ports = spec.get("ports") or []
        if ports:
            local["PORT"] = str(self._local_ports[int(ports[0]["containerPort"])])
        for port in ports:
            label = port.get("name") or str(port["containerPort"])
            local[f"GYRE_PORT_{env_name(label)}"] = str(
                self._local_ports[int(port["containerPort"])]
            )
        mounts: dict[str, str] = {}
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] in volumes:
                path = volumes[mount["name"]] / mount.get("subPath", "")
                local[f"GYRE_MOUNT_{env_name(mount['name'])}"] = str(path)
                mounts[mount["mountPath"]] = str(path)
        local[MOUNTS_VARIABLE] = json.dumps(mounts, sort_keys=True)
        return local

    def _container_env(
        self, spec: Mapping[str, Any], local: Mapping[str, str], rewrite: PathRewriter
    ) -> dict[str, str]:
        """The `kubernetes` Service's variables, then the container's own (envFrom then env),
        expanded like Kubernetes does."""
        defined: dict[str, str] = {**api_server_variables(self._api_server_service()), **local}
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if ref := source.get("configMapRef"):
                obj = self._get("configmaps", ref["name"], bool(ref.get("optional")))
                values = (obj or {}).get("data") or {}
            elif ref := source.get("secretRef"):
                obj = self._get("secrets", ref["name"], bool(ref.get("optional")))
                values = {k: v.decode(errors="replace") for k, v in secret_bytes(obj or {}).items()}
            else:
                continue
            defined.update({prefix + k: rewrite(v) for k, v in values.items()})
        for variable in spec.get("env") or []:
            value = self._env_value(variable, spec, defined, rewrite)
            if value is not None:
                defined[variable["name"]] = value
        return defined

    def _env_value(
        self,
        variable: Mapping[str, Any],
        spec: Mapping[str, Any],
        defined: Mapping[str, str],
        rewrite: PathRewriter,
    ) -> str | None:
        if "valueFrom" not in variable:
            return expand(rewrite(str(variable.get("value", ""))), defined)
        source = variable["valueFrom"]
        if ref := source.get("fieldRef"):
            return field_ref(self.pod, ref["fieldPath"])
        if ref := source.get("configMapKeyRef"):
            obj = self._get("configmaps", ref["name"], bool(ref.get("optional")))
            data = (obj or {}).get("data") or {}
        elif ref := source.get("secretKeyRef"):
            obj = self._get("secrets", ref["name"], bool(ref.get("optional")))
            data = {k: v.decode(errors="replace") for k, v in secret_bytes(obj or {}).items()}
        elif ref := source.get("resourceFieldRef"):
            resources = spec.get("resources") or {}
            resource = ref["resource"].split(".", 1)[-1]
            kind = "limits" if ref["resource"].startswith("limits") else "requests"
            return str((resources.get(kind) or {}).get(resource, "0"))
        else:
            return None
        if ref["key"] in data:
            return rewrite(str(data[ref["key"]]))
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {ref['key']} in {ref['name']}")

    def _api_server_service(self) -> dict[str, Any] | None:
        try:
            return self._store.get("", "services", API_SERVICE_NAMESPACE, API_SERVICE_NAME)
        except ApiError:
            return None

    def _get(self, plural: str, name: str, optional: bool) -> dict[str, Any] | None:
        namespace = (self.pod.get("metadata") or {}).get("namespace", "default")
        try:
            return self._store.get("", plural, namespace, name)
        except ApiError as error:
            if error.code == 404 and optional:
                return None
            raise ContainerConfigError(f'{plural[:-1]} "{name}" not found') from error

    def _start_probes(
        self,
        spec: Mapping[str, Any],
        record: ContainerRecord,
        process: asyncio.subprocess.Process,
        env: Mapping[str, str],
        cwd: str,
    ) -> list[asyncio.Task[None]]:
        """Start the container's probes; without probes it is started and ready at once."""
        argv = self._contexts[spec["name"]].argv
        context = ProbeContext(self._local_ports, self._port_names, env, cwd, argv)
        startup, readiness, liveness = (
            spec.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        grace = float(self._spec.get("terminationGracePeriodSeconds", 30))
        tasks: list[asyncio.Task[None]] = []
        name = spec["name"]

        def start(probe: Mapping[str, Any], kind: str, on_change: Callable[[bool], None]) -> None:
            def unhealthy(output: str) -> None:
                self._probe_events.unhealthy(name, kind, output)

            tasks.append(asyncio.create_task(run_probe(probe, context, on_change, unhealthy)))

        def kill(kind: str) -> None:
            self._probe_events.failed_probe(name, kind)
            self._spawn(_terminate(process, grace))

        def after_startup() -> None:
            record.started = True
            record.ready = readiness is None
            if readiness:
                start(readiness, "Readiness", set_ready)
            if liveness:
                start(liveness, "Liveness", on_liveness)

        def set_ready(ok: bool) -> None:
            if record.running:
                record.ready = ok
                self._publish()

        def on_liveness(ok: bool) -> None:
            if not ok:
                kill("Liveness")

        def on_startup(ok: bool) -> None:
            if not ok:
                kill("Startup")
                return
            after_startup()
            self._publish()
            tasks[0].cancel()

        record.run(started=False)
        if startup:
            start(startup, "Startup", on_startup)
        else:
            after_startup()
        return tasks

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    @staticmethod
    def _termination_message(
        spec: Mapping[str, Any], termination: Path, log_path: Path, exit_code: int
    ) -> str:
        message = (
            termination.read_bytes()[:4096].decode(errors="replace") if termination.exists() else ""
        )
        if (
            not message
            and exit_code != 0
            and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            lines = log_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
            message = b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")
        return message


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM a process group, then SIGKILL it if it outlives the grace period."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
