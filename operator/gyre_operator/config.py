"""The operator's run-time settings, from command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_RUNTIME_IMAGE = "gyre-runtime:0.1.0"


@dataclass(frozen=True)
class OperatorConfig:
    """Settings every controller reads; handed to handlers through kopf's memo."""

    namespaces: tuple[str, ...] = field(default=())
    artifact_root: str = "file:///var/lib/gyre/artifacts"
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    metrics_port: int = 8080
    health_port: int = 8081
    kubeconfig: str | None = None

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace."""
        return not self.namespaces
