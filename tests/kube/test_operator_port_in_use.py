"""`cerebelum operator` whose gRPC address is taken: one line naming it, not a gRPC traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.control_plane import ControlPlane
from tests.support.kube import service_account_kubeconfig
from tests.support.processes import OperatorProcess


def test_the_operator_on_a_port_in_use_exits_with_one_line_naming_the_address_and_the_option(
    control_plane: ControlPlane, crds: list[str], operator_rbac: None, namespace: str, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = int(holder.getsockname()[1])
        process = OperatorProcess(
            database_url=f"sqlite:///{tmp_path / 'operator.db'}",
            log_path=tmp_path / "operator.log",
            port=port,
            kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
            extra_args=("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--auth", "none"),
        )
        process.launch()
        assert process.process is not None
        code = process.process.wait(timeout=60)
    log = process.log_path.read_text()
    assert code == 1, log
    assert (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; stop what holds it or choose another"
        " with --address HOST:PORT"
    ) in " ".join(log.split())
    assert "Traceback" not in log
