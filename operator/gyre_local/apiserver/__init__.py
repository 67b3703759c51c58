"""The Kubernetes API over HTTP: routes, discovery, Table output and OpenAPI documents."""
