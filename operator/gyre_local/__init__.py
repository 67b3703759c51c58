"""A local Kubernetes control plane for tests and the no-cluster demo."""
