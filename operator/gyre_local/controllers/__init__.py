"""In-process controllers of the local cluster: Jobs, Deployments, ReplicaSets, Endpoints."""
