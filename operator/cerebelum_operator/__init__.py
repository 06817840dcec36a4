"""Cerebelum: a durable workflow engine that runs as a Kubernetes operator."""

__all__: list[str] = []
