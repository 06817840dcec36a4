"""Fixtures for the end-to-end suite on a real one-node cluster (tests/support/node.py).

The node, its binaries and the project's images are built once and cached; the suite installs the
charts with helm into it and drives real pods. Without root or the kernel features a node needs the
suite is skipped locally and fails on CI (``CI=true``), like every other missing dependency.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.support.control_plane import ControlPlaneError, ensure_binaries
from tests.support.node import NodeCluster, ensure_host_packages, ensure_images, ensure_node_binaries, host_problems


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def node() -> Iterator[NodeCluster]:
    """A control plane plus one real node, with the project's images imported into its runtime.

    Package-scoped: the node and its pods stop once tests/node is done, not at the session's end.
    """
    if problems := host_problems():
        _unavailable("; ".join(problems))
    try:
        ensure_host_packages()
        cluster = NodeCluster(
            control_plane_bin=ensure_binaries(), node_bin=ensure_node_binaries(), images=ensure_images()
        )
    except ControlPlaneError as e:
        _unavailable(f"cannot set up a node: {e}")
    with cluster:
        print(f"node up in {cluster.startup_seconds:.1f}s")
        yield cluster
