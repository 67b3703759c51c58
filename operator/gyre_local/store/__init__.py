"""The in-memory object store with Kubernetes API semantics and its parts."""
