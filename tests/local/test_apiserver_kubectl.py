"""The real kubectl binary against the local API server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubectl_runner import KUBECTL, Kubectl, kubectl_runner

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed"),
]


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}]}
                ]
            },
        },
    },
}
WIDGET = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w1", "labels": {"tier": "back"}},
    "spec": {"size": 3},
}


@pytest.fixture
def crd(widget_crd_manifest: dict[str, Any]) -> dict[str, Any]:
    """The Widget CRD manifest."""
    return widget_crd_manifest


@pytest.fixture
def kubectl(apiserver: Any, tmp_path: Path) -> Kubectl:
    """Run kubectl against the local API server; fails the test on a non-zero exit by default."""
    return kubectl_runner(apiserver.kubeconfig, tmp_path / "kubecache")


def _apply(kubectl: Kubectl, *documents: dict[str, Any], server_side: bool = False) -> str:
    flags = ["--server-side"] if server_side else []
    stdin = yaml.safe_dump_all(documents)
    output: str = kubectl("apply", *flags, "-f", "-", stdin=stdin).stdout
    return output


def test_apply_crd_custom_resource_and_deployment(crd: dict[str, Any], kubectl: Kubectl) -> None:
    assert "created" in _apply(kubectl, crd)
    kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
    assert _apply(kubectl, WIDGET, DEPLOYMENT).splitlines() == [
        "widget.example.com/w1 created",
        "deployment.apps/web created",
    ]
    assert _apply(kubectl, WIDGET, DEPLOYMENT).splitlines() == [
        "widget.example.com/w1 unchanged",
        "deployment.apps/web unchanged",
    ]
    widget = json.loads(kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert widget["spec"] == {"size": 3, "color": "red"}
    table = kubectl("get", "wd").stdout.splitlines()
    # Declared printer columns replace the default Age column, as in kube-apiserver.
    assert table[0].split() == ["NAME", "SIZE"]
    assert table[1].split()[:2] == ["w1", "3"]


def test_client_side_apply_removes_a_dropped_container_env(kubectl: Kubectl) -> None:
    _apply(kubectl, DEPLOYMENT)
    changed = json.loads(json.dumps(DEPLOYMENT))
    changed["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    assert "configured" in _apply(kubectl, changed)
    live = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert live["metadata"]["generation"] == 2


def test_invalid_custom_resource_is_rejected(crd: dict[str, Any], kubectl: Kubectl) -> None:
    _apply(kubectl, crd)
    bad = {**WIDGET, "spec": {"size": 99}}
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert result.returncode != 0
    assert 'The Widget "w1" is invalid: spec.size: Invalid value: 99' in result.stderr
    unknown = {**WIDGET, "spec": {"size": 1, "bogus": True}}
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(unknown), check=False)
    assert 'strict decoding error: unknown field "spec.bogus"' in result.stderr


def test_patch_types(kubectl: Kubectl) -> None:
    _apply(kubectl, DEPLOYMENT)
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/extra","value":"yes"}]',
    )
    strategic = '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}}}'
    kubectl("patch", "deployment", "web", "--type=strategic", "-p", strategic)
    live = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 3
    assert live["metadata"]["labels"]["extra"] == "yes"
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["env"]) == ("nginx:2", [{"name": "A", "value": "1"}])
    failed = kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/spec/replicas","value":9}]',
        check=False,
    )
    assert failed.returncode != 0


def test_server_side_apply_and_conflicts(kubectl: Kubectl) -> None:
    assert "serverside-applied" in _apply(kubectl, DEPLOYMENT, server_side=True)
    kubectl("scale", "deployment", "web", "--replicas=2")
    pinned = json.loads(json.dumps(DEPLOYMENT))
    pinned["spec"]["replicas"] = 5
    conflict = kubectl(
        "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(pinned), check=False
    )
    assert conflict.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1' in conflict.stderr
    assert ".spec.replicas" in conflict.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump(pinned))
    live = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 5


def test_label_selectors_and_delete(kubectl: Kubectl) -> None:
    _apply(kubectl, DEPLOYMENT)
    config_maps = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": labels}}
        for n, labels in (("a", {"tier": "front"}), ("b", {"tier": "back"}), ("c", {}))
    ]
    _apply(kubectl, *config_maps)
    names = kubectl("get", "cm", "-l", "tier in (front,back)", "-o", "name").stdout.split()
    assert names == ["configmap/a", "configmap/b"]
    names = kubectl("get", "cm", "-l", "!tier", "-o", "name").stdout.split()
    assert names == ["configmap/c"]
    kubectl("delete", "cm", "-l", "tier")
    assert kubectl("get", "cm", "-o", "name").stdout.split() == ["configmap/c"]
    assert "deleted" in kubectl("delete", "deployment", "web").stdout
    missing = kubectl("get", "deployment", "web", check=False)
    assert 'deployments.apps "web" not found' in missing.stderr


def test_wait_for_a_condition_set_through_status(
    crd: dict[str, Any], kubectl: Kubectl, apiserver: Any
) -> None:
    _apply(kubectl, crd)
    _apply(kubectl, WIDGET)
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    kubectl(
        "patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    waited = kubectl("wait", "--for=condition=Ready", "widget/w1", "--timeout=10s")
    assert "condition met" in waited.stdout


def test_namespace_lifecycle(kubectl: Kubectl) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    _apply(kubectl, namespace)
    kubectl("apply", "-n", "team", "-f", "-", stdin=yaml.safe_dump(DEPLOYMENT))
    assert kubectl("get", "deployments", "-A", "-o", "name").stdout.split() == [
        "deployment.apps/web"
    ]
    kubectl("delete", "namespace", "team")
    assert kubectl("get", "deployments", "-A", "-o", "name").stdout.split() == []
