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
    artifact_secret: str | None = None

    def secrets(self, *data_secrets: str | None) -> tuple[str, ...]:
        """The Secrets a pod that uses the artifact store gets: the artifact store's, then the
        data's (so a data set's own credentials win where both name a variable)."""
        names = (self.artifact_secret, *data_secrets)
        return tuple(name for name in names if name)

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace."""
        return not self.namespaces
