"""Kubernetes mode: the custom resources, their CRDs, and the kopf operator around the engine.

Import the submodules directly (`kube.operator`, `kube.resources`, ...): this package imports
nothing itself, so the CRD generator can read the resource models without loading kopf.
"""
