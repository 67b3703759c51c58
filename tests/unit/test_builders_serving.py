"""Serving children of an InferenceService: replica split, Deployment, Services, HTTPRoute,
what counts as already applied, and why serving pods are not ready."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from builders_fixtures import (
    CONFIG,
    CREATED,
    NAMESPACE,
    env_of,
    inferenceservice_obj,
    servable_version,
    with_server_defaults,
)

from gyre_operator.api import InferenceService, ModelVersion
from gyre_operator.api.inference import RoutingType
from gyre_operator.builders.serving import (
    Side,
    Track,
    build_deployment,
    build_route,
    build_services,
    covers,
    deployment_version,
    effective_weight,
    pod_problem,
    pod_ready,
    ready_pods,
    rolled_out,
    split_replicas,
)
from gyre_operator.config import OperatorConfig

REPLICAS, GATEWAY = RoutingType.REPLICAS, RoutingType.GATEWAY_API
FEATURES = ["sepal_length", "species_group"]
GATEWAY_ROUTING = {
    "type": "gatewayAPI",
    "gatewayAPI": {"parentRefs": [{"name": "edge", "namespace": "infra"}]},
}
OWNER_REF = {
    "apiVersion": "gyre.dev/v1alpha1",
    "kind": "InferenceService",
    "name": "iris-svc",
    "uid": "uid-iris-svc",
    "controller": True,
    "blockOwnerDeletion": True,
}
CHILD_LABELS = {
    "app.kubernetes.io/managed-by": "gyre",
    "app.kubernetes.io/component": "predictor",
    "gyre.dev/owner-kind": "InferenceService",
    "gyre.dev/inferenceservice": "iris-svc",
}


# ---- replica split ----


@pytest.mark.parametrize(
    ("total", "weight", "routing", "pods", "effective"),
    [
        # Replica routing: the pods are the weight; each side keeps at least one pod.
        (1, 1, REPLICAS, (1, 1), 50),
        (1, 50, REPLICAS, (1, 1), 50),
        (1, 99, REPLICAS, (1, 1), 50),
        (2, 1, REPLICAS, (1, 1), 50),
        (2, 50, REPLICAS, (1, 1), 50),
        (2, 99, REPLICAS, (1, 1), 50),
        (4, 1, REPLICAS, (3, 1), 25),
        (4, 10, REPLICAS, (3, 1), 25),
        (4, 25, REPLICAS, (3, 1), 25),
        (4, 50, REPLICAS, (2, 2), 50),
        (4, 60, REPLICAS, (2, 2), 50),
        (4, 75, REPLICAS, (1, 3), 75),
        (4, 99, REPLICAS, (1, 3), 75),
        (10, 1, REPLICAS, (9, 1), 10),
        (10, 10, REPLICAS, (9, 1), 10),
        (10, 33, REPLICAS, (7, 3), 30),
        (10, 50, REPLICAS, (5, 5), 50),
        (10, 67, REPLICAS, (3, 7), 70),
        (10, 90, REPLICAS, (1, 9), 90),
        (10, 99, REPLICAS, (1, 9), 90),
        # Gateway API: the route has the exact weight; stable keeps its pods, the canary
        # gets enough pods for its share.
        (1, 1, GATEWAY, (1, 1), 1),
        (1, 99, GATEWAY, (1, 1), 99),
        (2, 10, GATEWAY, (2, 1), 10),
        (2, 50, GATEWAY, (2, 1), 50),
        (2, 51, GATEWAY, (2, 2), 51),
        (4, 1, GATEWAY, (4, 1), 1),
        (4, 10, GATEWAY, (4, 1), 10),
        (4, 50, GATEWAY, (4, 2), 50),
        (4, 99, GATEWAY, (4, 4), 99),
        (10, 1, GATEWAY, (10, 1), 1),
        (10, 33, GATEWAY, (10, 4), 33),
        (10, 50, GATEWAY, (10, 5), 50),
        (10, 99, GATEWAY, (10, 10), 99),
    ],
)
def test_split_replicas_and_effective_weight(
    total: int, weight: int, routing: RoutingType, pods: tuple[int, int], effective: int
) -> None:
    assert split_replicas(total, weight, routing) == pods
    assert effective_weight(*pods, weight, routing) == effective


@pytest.mark.parametrize("total", [1, 2, 4, 10])
@pytest.mark.parametrize("routing", [REPLICAS, GATEWAY])
def test_split_replicas_for_every_weight(total: int, routing: RoutingType) -> None:
    for weight in range(1, 100):
        stable, canary = split_replicas(total, weight, routing)
        assert stable >= 1 and canary >= 1
        share = total * weight / 100
        if routing is GATEWAY:
            assert stable == total
            assert canary - 1 < share <= canary  # just enough pods for the share
            assert effective_weight(stable, canary, weight, routing) == weight
        elif total >= 2:
            assert stable + canary == total
            # The nearest split that keeps one pod on each side.
            nearest = min(max(share, 1), total - 1)
            assert abs(canary - nearest) <= 0.5
            expected = round(100 * canary / total)
            assert effective_weight(stable, canary, weight, routing) == expected


@pytest.mark.parametrize(
    ("stable", "canary", "weight", "routing", "expected"),
    [
        (4, 0, 50, REPLICAS, 0),
        (3, 1, 50, REPLICAS, 25),
        (1, 2, 10, REPLICAS, 67),
        (4, 0, 50, GATEWAY, 50),
    ],
)
def test_effective_weight(
    stable: int, canary: int, weight: int, routing: RoutingType, expected: int
) -> None:
    assert effective_weight(stable, canary, weight, routing) == expected


# ---- the Deployment ----


def owner(**spec_fields: Any) -> dict[str, Any]:
    return inferenceservice_obj(**spec_fields)


def deployment(
    track: Track = Track.STABLE,
    replicas: int = 3,
    version: dict[str, Any] | None = None,
    config: OperatorConfig = CONFIG,
    **spec_fields: Any,
) -> dict[str, Any]:
    obj = owner(**spec_fields)
    side = Side(track, ModelVersion.model_validate(version or servable_version(3)), replicas)
    return build_deployment(obj, InferenceService.model_validate(obj), side, config)


def container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    pod = manifest["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = [
        c for c in (*pod.get("initContainers", []), *pod["containers"]) if c["name"] == name
    ]
    assert len(found) == 1
    return found[0]


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


@pytest.mark.parametrize("track", list(Track))
def test_deployment_metadata_labels_and_selector(track: Track) -> None:
    manifest = deployment(track, replicas=3)
    assert manifest["apiVersion"] == "apps/v1"
    assert manifest["kind"] == "Deployment"
    assert manifest["metadata"] == {
        "name": f"iris-svc-{track.value}",
        "namespace": NAMESPACE,
        "labels": {**CHILD_LABELS, "gyre.dev/track": track.value},
        "ownerReferences": [OWNER_REF],
    }
    spec = manifest["spec"]
    assert spec["replicas"] == 3
    selector = {"gyre.dev/inferenceservice": "iris-svc", "gyre.dev/track": track.value}
    assert spec["selector"] == {"matchLabels": selector}
    assert spec["template"]["metadata"]["labels"] == {
        **CHILD_LABELS,
        **selector,
        "gyre.dev/model": "iris",
        "gyre.dev/model-version": "3",
    }
    assert deployment_version(manifest) == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["volumes"] == [{"name": "shared-0", "emptyDir": {}}]


def test_deployment_fetches_the_artifact_then_serves_it() -> None:
    manifest = deployment()
    sha = f"{3:064x}"
    uri = "s3://gyre/artifacts/models/iris/run-3/model.onnx"
    pod = manifest["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model"]
    assert [c["name"] for c in pod["containers"]] == ["server"]
    fetch = container(manifest, "fetch-model")
    assert fetch["image"] == "gyre-runtime:test"
    assert fetch["args"] == [
        "fetch", "--uri", uri, "--sha256", sha, "--output", "/gyre/model/model.onnx",
    ]  # fmt: skip
    server = container(manifest, "server")
    assert server["image"] == "gyre-runtime:test"
    assert server["args"] == [
        "serve",
        "--model", "/gyre/model/model.onnx",
        "--sha256", sha,
        "--name", "iris",
        "--version", "3",
        "--port", "8080",
        "--service", "iris-svc",
        "--shutdown-delay", "2",
        "--parameters", '{"modelVersion":"iris-v3"}',
        "--request-log-root", "s3://gyre/artifacts",
        "--request-log-sample-rate", "1",
    ]  # fmt: skip
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    shared = {"name": "shared-0", "mountPath": "/gyre/model"}
    assert fetch["volumeMounts"] == [shared]
    assert server["volumeMounts"] == [shared]
    for c in (fetch, server):
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert "envFrom" not in c  # no artifact Secret configured


def test_server_probes() -> None:
    server = container(deployment(), "server")

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 1,
            "failureThreshold": failures,
        }

    assert server["startupProbe"] == probe("/v2/health/live", 1, 300)
    assert server["readinessProbe"] == probe("/v2/health/ready", 2, 1)
    assert server["livenessProbe"] == probe("/v2/health/live", 10, 3)


def test_server_gets_lineage_parameters_and_features() -> None:
    manifest = deployment(
        version=servable_version(3, features=FEATURES), requestLogging={"sampleRate": 0.25}
    )
    args = container(manifest, "server")["args"]
    assert json.loads(option(args, "--parameters") or "") == {
        "modelVersion": "iris-v3",
        "trainingRun": "iris-run-3",
        "features": FEATURES,
    }
    assert option(args, "--features") == "sepal_length,species_group"
    assert option(args, "--request-log-root") == "s3://gyre/artifacts"
    assert option(args, "--request-log-sample-rate") == "0.25"


@pytest.mark.parametrize("logging", [{"enabled": False}, {"sampleRate": 0}])
def test_server_without_request_logging(logging: dict[str, Any]) -> None:
    manifest = deployment(version=servable_version(3, features=FEATURES), requestLogging=logging)
    args = container(manifest, "server")["args"]
    for flag in ("--request-log-root", "--request-log-sample-rate", "--features"):
        assert flag not in args
    # The lineage still reaches the server's model metadata.
    assert json.loads(option(args, "--parameters") or "")["features"] == FEATURES


@pytest.mark.parametrize(
    ("logging", "server_secrets"),
    [({"enabled": True}, [{"secretRef": {"name": "s3-creds"}}]), ({"enabled": False}, None)],
)
def test_artifact_secret(logging: dict[str, Any], server_secrets: list[Any] | None) -> None:
    config = OperatorConfig(
        artifact_root="s3://gyre/artifacts",
        runtime_image="gyre-runtime:test",
        artifact_secret="s3-creds",
    )
    manifest = deployment(config=config, requestLogging=logging)
    assert container(manifest, "fetch-model")["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert container(manifest, "server").get("envFrom") == server_secrets


def test_runtime_image_env_resources_and_port() -> None:
    resources = {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    manifest = deployment(
        runtime={
            "image": "me/server:1",
            "port": 9000,
            "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            "resources": resources,
        }
    )
    server = container(manifest, "server")
    assert server["image"] == "me/server:1"
    assert container(manifest, "fetch-model")["image"] == "gyre-runtime:test"
    assert env_of(server) == {"OMP_NUM_THREADS": "1"}
    assert server["resources"] == resources
    assert server["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert option(server["args"], "--port") == "9000"


def test_artifact_on_a_pvc_is_mounted() -> None:
    version = servable_version(3, uri="pvc://models/iris/3/model.onnx")
    manifest = deployment(version=version, requestLogging={"enabled": False})
    pod = manifest["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "models"}},
        {"name": "shared-0", "emptyDir": {}},
    ]
    mounts = [
        {"name": "pvc-0", "mountPath": "/mnt/gyre/pvc/models"},
        {"name": "shared-0", "mountPath": "/gyre/model"},
    ]
    for name in ("fetch-model", "server"):
        assert container(manifest, name)["volumeMounts"] == mounts
        assert env_of(container(manifest, name)) == {"GYRE_PVC_MODELS": "/mnt/gyre/pvc/models"}
    assert option(container(manifest, "fetch-model")["args"], "--uri") == (
        "pvc://models/iris/3/model.onnx"
    )


def test_request_logs_to_an_artifact_root_on_a_pvc_mount_the_claim() -> None:
    config = OperatorConfig(artifact_root="pvc://artifacts/gyre", runtime_image="gyre-runtime:test")
    manifest = deployment(config=config)
    pod = manifest["spec"]["template"]["spec"]
    assert {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "artifacts"}} in pod["volumes"]
    server = container(manifest, "server")
    assert {"name": "pvc-0", "mountPath": "/mnt/gyre/pvc/artifacts"} in server["volumeMounts"]
    assert env_of(server)["GYRE_PVC_ARTIFACTS"] == "/mnt/gyre/pvc/artifacts"
    assert option(server["args"], "--request-log-root") == "pvc://artifacts/gyre"


# ---- Services and the HTTPRoute ----


def _service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": CHILD_LABELS,
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def test_services_with_replica_routing() -> None:
    obj = owner()
    services = build_services(obj, InferenceService.model_validate(obj))
    assert services == [_service("iris-svc", {"gyre.dev/inferenceservice": "iris-svc"})]


def test_services_with_gateway_routing() -> None:
    obj = owner(trafficRouting=GATEWAY_ROUTING)
    services = build_services(obj, InferenceService.model_validate(obj))
    service = {"gyre.dev/inferenceservice": "iris-svc"}
    assert services == [
        _service("iris-svc", service),
        _service("iris-svc-stable-svc", {**service, "gyre.dev/track": "stable"}),
        _service("iris-svc-canary-svc", {**service, "gyre.dev/track": "canary"}),
    ]


@pytest.mark.parametrize("weight", [0, 1, 25, 50, 99, 100])
def test_route_weights(weight: int) -> None:
    obj = owner(trafficRouting=GATEWAY_ROUTING)
    route = build_route(obj, InferenceService.model_validate(obj), weight)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    assert route["metadata"] == {
        "name": "iris-svc",
        "namespace": NAMESPACE,
        "labels": CHILD_LABELS,
        "ownerReferences": [OWNER_REF],
    }
    assert route["spec"] == {
        "parentRefs": [{"name": "edge", "namespace": "infra"}],
        "rules": [
            {
                "backendRefs": [
                    {"name": "iris-svc-stable-svc", "port": 80, "weight": 100 - weight},
                    {"name": "iris-svc-canary-svc", "port": 80, "weight": weight},
                ]
            }
        ],
    }


def test_route_hostnames_and_section_name() -> None:
    routing = {
        "type": "gatewayAPI",
        "gatewayAPI": {
            "parentRefs": [{"name": "edge", "sectionName": "https"}],
            "hostnames": ["iris.example.com"],
        },
    }
    obj = owner(trafficRouting=routing)
    spec = build_route(obj, InferenceService.model_validate(obj), 10)["spec"]
    assert spec["parentRefs"] == [{"name": "edge", "sectionName": "https"}]
    assert spec["hostnames"] == ["iris.example.com"]


# ---- covers: already applied? ----


def _desired() -> dict[str, Any]:
    return deployment(version=servable_version(3, features=FEATURES))


def _edit(path: str, value: Any) -> dict[str, Any]:
    """The desired Deployment as stored by the API server, with one field set at a
    dotted path (list indices as numbers; value DELETE removes the field)."""
    obj = with_server_defaults(_desired())
    *parents, last = path.split(".")
    target: Any = obj
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return obj


DELETE = object()


def _server_args() -> list[str]:
    return list(_desired()["spec"]["template"]["spec"]["containers"][0]["args"])


SERVER = "spec.template.spec.containers.0"


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        (None, False),
        (_desired(), True),
        # Defaults and bookkeeping of the API server are not differences.
        (with_server_defaults(_desired()), True),
        (with_server_defaults(_desired(), generation=7), True),
        (_edit("status", {"readyReplicas": 3, "replicas": 3}), True),
        (_edit(f"{SERVER}.env", []), True),  # equal lists
        # Changed values are.
        (_edit("spec.replicas", 4), False),
        (_edit("spec.replicas", "3"), False),
        (_edit(f"{SERVER}.image", "gyre-runtime:old"), False),
        (_edit(f"{SERVER}.readinessProbe.periodSeconds", 5), False),
        (_edit("spec.strategy.rollingUpdate.maxUnavailable", 1), False),
        (_edit("metadata.labels", {"app.kubernetes.io/managed-by": "gyre"}), False),
        # Missing fields and list lengths are.
        (_edit("spec.template.spec.initContainers", DELETE), False),
        (_edit(f"{SERVER}.args", [*_server_args(), "--verbose"]), False),
        (_edit(f"{SERVER}.args", ["serve"]), False),
        (_edit(f"{SERVER}.env", [{"name": "EXTRA", "value": "1"}]), False),
        (_edit("spec.template.spec.volumes", []), False),
        (_edit("spec.template.spec.containers", "server"), False),
    ],
)
def test_covers(observed: Any, expected: bool) -> None:
    assert covers(observed, _desired()) is expected


def test_covers_sees_a_changed_label_value() -> None:
    observed = with_server_defaults(_desired())
    observed["spec"]["template"]["metadata"]["labels"]["gyre.dev/model-version"] = "2"
    assert not covers(observed, _desired())


@pytest.mark.parametrize(
    ("observed", "desired", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]}, True),
        ({"a": [{"x": 1}, {"x": 2}]}, {"a": [{"x": 1}]}, False),
        ({"a": [{"x": 2}]}, {"a": [{"x": 1}]}, False),
        ({"a": {}}, {"a": []}, False),
        ({"a": []}, {"a": {}}, False),
        ({"a": None}, {"a": {}}, False),
        ({"a": 0}, {"a": False}, True),  # the wire never mixes them; Python equality
        ({}, {}, True),
        (None, {}, False),
    ],
)
def test_covers_values(observed: Any, desired: Any, expected: bool) -> None:
    assert covers(observed, desired) is expected


def test_covers_services_and_routes_as_stored() -> None:
    obj = owner(trafficRouting=GATEWAY_ROUTING)
    isvc = InferenceService.model_validate(obj)
    for service in build_services(obj, isvc):
        assert covers(with_server_defaults(service), service)
    route = build_route(obj, isvc, 10)
    assert covers(with_server_defaults(route), route)
    assert not covers(with_server_defaults(build_route(obj, isvc, 50)), route)


# ---- Deployment status ----


def _running(replicas: int = 3, **status: Any) -> dict[str, Any]:
    manifest = with_server_defaults(deployment(replicas=replicas), generation=2)
    manifest["status"] = {
        "observedGeneration": 2,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        **status,
    }
    return manifest


@pytest.mark.parametrize(
    ("observed", "replicas", "expected"),
    [
        (None, 3, False),
        (_running(), 3, True),
        (_running(), 2, False),  # another replica count asked for
        (_running(observedGeneration=1), 3, False),  # the controller has not seen the change
        (_running(updatedReplicas=2), 3, False),  # old pods still run
        (_running(replicas=4), 3, False),  # a surge pod still there
        (_running(availableReplicas=2), 3, False),
        (_running(availableReplicas=0, readyReplicas=0), 3, False),
    ],
)
def test_rolled_out(observed: dict[str, Any] | None, replicas: int, expected: bool) -> None:
    assert rolled_out(observed, replicas) is expected


def test_ready_pods_and_version() -> None:
    assert ready_pods(None) == 0
    assert ready_pods(_running(readyReplicas=2)) == 2
    no_status = _running()
    del no_status["status"]
    assert ready_pods(no_status) == 0
    assert deployment_version(None) is None
    assert deployment_version(_running()) == 3
    unlabelled = _running()
    del unlabelled["spec"]["template"]["metadata"]["labels"]["gyre.dev/model-version"]
    assert deployment_version(unlabelled) is None


# ---- pod_problem ----

DIGEST_REPORT = json.dumps(
    {"reason": "DigestMismatch", "message": f"sha256 of model.onnx is {'e' * 64}, not {'3' * 8}"}
)


def pod(
    name: str, *statuses: dict[str, Any], init: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "containerStatuses": list(statuses)}
    if init:
        status["initContainerStatuses"] = list(init)
    return {"metadata": {"name": name, "namespace": NAMESPACE}, "status": status}


def crash_looping(name: str, message: str, exit_code: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
        "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}},
    }


def running(name: str, ready: bool = True) -> dict[str, Any]:
    return {"name": name, "ready": ready, "state": {"running": {"startedAt": CREATED}}}


def waiting(name: str, reason: str) -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"waiting": {"reason": reason}}}


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], None),
        ([{"metadata": {"name": "p"}}], None),  # not scheduled yet: no statuses
        ([pod("p", running("server"))], None),
        ([pod("p", running("server", ready=False))], None),  # starting, nothing wrong
        # The server refused the artifact: its runtime's JSON report says why.
        (
            [pod("iris-svc-stable-7d9f-x2", crash_looping("server", DIGEST_REPORT))],
            "pod iris-svc-stable-7d9f-x2 container server: CrashLoopBackOff: DigestMismatch: "
            f"sha256 of model.onnx is {'e' * 64}, not 33333333",
        ),
        # Free text: its last line.
        (
            [pod("p", crash_looping("server", "Traceback ...\nOSError: no space left\n"))],
            "pod p container server: CrashLoopBackOff: OSError: no space left",
        ),
        # Nothing reported: the exit code.
        (
            [pod("p", crash_looping("server", "", exit_code=137))],
            "pod p container server: CrashLoopBackOff: exit code 137",
        ),
        # A crash looping init container, with the server still waiting for it.
        (
            [
                pod(
                    "p",
                    waiting("server", "PodInitializing"),
                    init=(crash_looping("fetch-model", DIGEST_REPORT),),
                )
            ],
            "pod p container fetch-model: CrashLoopBackOff: DigestMismatch: "
            f"sha256 of model.onnx is {'e' * 64}, not 33333333",
        ),
        (
            [pod("p", waiting("server", "CreateContainerConfigError"))],
            "pod p container server: CreateContainerConfigError",
        ),
        (
            [pod("p", waiting("server", "ImagePullBackOff"))],
            "pod p container server: ImagePullBackOff",
        ),
        # A container that ended in error, not yet restarted.
        (
            [
                pod(
                    "p",
                    {
                        "name": "server",
                        "ready": False,
                        "state": {"terminated": {"exitCode": 2, "message": DIGEST_REPORT}},
                    },
                )
            ],
            f"pod p container server: DigestMismatch: sha256 of model.onnx is {'e' * 64}, "
            "not 33333333",
        ),
        # The first pod that says why decides; ready containers say nothing.
        (
            [
                pod("a", running("server")),
                pod("b", running("server", ready=False)),
                pod("c", crash_looping("server", DIGEST_REPORT)),
                pod("d", waiting("server", "CreateContainerConfigError")),
            ],
            "pod c container server: CrashLoopBackOff: DigestMismatch: "
            f"sha256 of model.onnx is {'e' * 64}, not 33333333",
        ),
    ],
)
def test_pod_problem(pods: list[dict[str, Any]], expected: str | None) -> None:
    assert pod_problem(copy.deepcopy(pods)) == expected


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing"])
def test_pods_starting_normally_have_no_problem(reason: str) -> None:
    # Every new serving pod passes through these; they are no reason to call it Failed.
    pods = [pod("p", waiting("server", reason), init=(running("fetch-model", ready=False),))]
    assert pod_problem(pods) is None


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        ({"conditions": [{"type": "Ready", "status": "True"}]}, True),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False),
        ({"conditions": [{"type": "Initialized", "status": "True"}]}, False),
        (None, False),
    ],
)
def test_pod_ready(status: dict[str, Any] | None, ready: bool) -> None:
    assert pod_ready({"metadata": {"name": "p"}, "status": status}) is ready
