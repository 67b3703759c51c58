"""What kube-apiserver refuses in built-in workloads, refused the same way (422 naming the
field), as kubectl shows it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubectl_runner import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.kubectl]


def workload(kind: str, selector: dict[str, Any] | None, labels: dict[str, str]) -> dict[str, Any]:
    """A workload of `kind` named web, with this selector and these template labels."""
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        }
    }
    if selector is not None:
        spec["selector"] = selector
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}, "spec": spec}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"])
def test_a_selector_that_misses_the_template_labels_is_refused(kubectl: Kubectl, kind: str) -> None:
    manifest = workload(kind, {"matchLabels": {"app": "web"}}, {"app": "api", "tier": "x"})
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert refused.returncode == 1
    assert (
        f'The {kind} "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"api", "tier":"x"}: `selector` does not match template `labels`'
    ) in refused.stderr


def test_a_workload_without_a_selector_is_refused(kubectl: Kubectl) -> None:
    manifest = workload("Deployment", None, {"app": "web"})
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert refused.returncode == 1
    assert 'The Deployment "web" is invalid: spec.selector: Required value' in refused.stderr


def test_match_expressions_that_select_the_template_are_accepted(kubectl: Kubectl) -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    manifest = workload("Deployment", selector, {"app": "api"})
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    kubectl("delete", "deployment", "web")
