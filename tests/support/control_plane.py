"""A real Kubernetes control plane (etcd + kube-apiserver) for integration tests.

Pure standard library; needs only ``openssl`` on PATH and the binaries that
``hack/control-plane/build.sh`` builds from source (no Docker, no kind).
It is envtest-like: an API server with RBAC, the TokenRequest API and CRDs,
but no controller-manager, scheduler or kubelet. So:

* nothing reconciles: Deployments/Jobs create no Pods, namespaces stay
  ``Terminating`` after delete (their contents are not garbage collected),
  and no ``default`` ServiceAccount appears in new namespaces;
* the ``ServiceAccount`` admission plugin is disabled (it would reject Pods
  whose ServiceAccount the missing controller never created).

Typical pytest use::

    @pytest.fixture(scope="session")
    def control_plane():
        cp = ControlPlane()
        cp.start()
        yield cp
        cp.stop()

    def test_something(control_plane):
        control_plane.kubectl("get", "ns")          # or use control_plane.kubeconfig

Attributes after ``start()``: ``kubeconfig`` (admin kubeconfig path),
``server`` (``https://127.0.0.1:PORT``), ``ca_file``, ``client_cert_file``,
``client_key_file`` (admin, group ``system:masters``), ``admin_token``
(a bearer token that is also ``system:masters``), ``dir`` (the temp dir with
certs, data and the ``etcd.log`` / ``kube-apiserver.log`` files) and
``startup_seconds``.

Run as a script to get a control plane for manual use::

    python3 tests/support/control_plane.py     # prints KUBECONFIG=..., Ctrl-C stops
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "control-plane" / "build.sh"

#: Set to a directory holding ``etcd`` and ``kube-apiserver`` to skip build.sh.
BIN_DIR_ENV = "CEREBELUM_CONTROL_PLANE_BIN"

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started."""


def ensure_binaries(timeout: float | None = None) -> Path:
    """Build (or reuse from the cache) etcd and kube-apiserver; return their dir.

    A cold build takes minutes (see hack/control-plane/build.sh); afterwards
    this returns at once. Build progress goes to this process's stderr.
    """
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        bin_dir = Path(override)
        _check_bin_dir(bin_dir)
        return bin_dir
    if not BUILD_SCRIPT.is_file():
        raise ControlPlaneError(f"build script not found: {BUILD_SCRIPT}")
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=None,  # inherit: show build progress
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{BUILD_SCRIPT} did not finish in {timeout}s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    bin_dir = Path(lines[-1])
    _check_bin_dir(bin_dir)
    return bin_dir


def _check_bin_dir(bin_dir: Path) -> None:
    for name in ("etcd", "kube-apiserver"):
        if not os.access(bin_dir / name, os.X_OK):
            raise ControlPlaneError(f"{bin_dir / name} is missing or not executable")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stdout}")


def spawn_logged(argv: list[str], *, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log`` (after a header line naming the command)."""
    with open(log, "ab") as out:
        out.write(f"\n=== {' '.join(argv)}\n".encode())
        out.flush()
        # Die with the test process (util-linux's setpriv sets PR_SET_PDEATHSIG, then execs), unless
        # started off the main thread: the signal fires when the *thread* that forked exits. Not a
        # preexec_fn: Python code between fork and exec aborts the child once gRPC's threads run here.
        dies_with_us = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
        return subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", *argv] if dies_with_us else argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class ControlPlane:
    """etcd + kube-apiserver on loopback, in a fresh temp dir, on free ports."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        startup_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
        keep_dir: bool = False,
        parent_dir: str | None = None,
        address: str = "127.0.0.1",
        node_name: str | None = None,
    ) -> None:
        """``address``: where the API server listens and what it advertises (a node's pods reach it there).
        ``node_name``: run as the control plane of a real node (tests/support/node.py): a kubelet
        certificate for that node, the Node authorizer, ServiceAccount admission and the endpoint
        reconciler, which a bare API server leaves off because nothing else runs."""
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.keep_dir = keep_dir
        self.parent_dir = parent_dir
        self.address = address
        self.node_name = node_name

        self.dir: Path | None = None
        self.kubeconfig: Path | None = None
        self.server: str | None = None
        self.ca_file: Path | None = None
        self.client_cert_file: Path | None = None
        self.client_key_file: Path | None = None
        self.admin_token: str | None = None
        self.etcd_url: str | None = None
        self.startup_seconds: float | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}

    # ------------------------------------------------------------------ public

    def start(self) -> ControlPlane:
        if self._procs:
            raise ControlPlaneError("control plane already started")
        if self.bin_dir is None:
            self.bin_dir = ensure_binaries()
        _check_bin_dir(self.bin_dir)
        if shutil.which("openssl") is None:
            raise ControlPlaneError("openssl is needed on PATH to generate certificates")

        t0 = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix="cerebelum-cp-", dir=self.parent_dir))
        atexit.register(self.stop)
        try:
            self._make_credentials()
            last_error: ControlPlaneError | None = None
            for _attempt in range(3):  # free ports can be raced for; retry then
                try:
                    self._start_etcd()
                    self._start_apiserver()
                    self._wait_ready(t0 + self.startup_timeout)
                    break
                except _PortInUse as exc:
                    last_error = exc
                    self._kill_processes()
            else:
                assert last_error is not None
                raise last_error
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Kill the processes and remove the temp dir (idempotent)."""
        self._kill_processes()
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG pointing at the admin kubeconfig."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, token: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl (from PATH) against this control plane; as ``token``'s user if given."""
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig)]
        if token is not None:
            # Replace the admin client certificate with the bearer token.
            cmd = [
                "kubectl",
                "--kubeconfig",
                os.devnull,
                "--server",
                str(self.server),
                "--certificate-authority",
                str(self.ca_file),
                "--token",
                token,
            ]
        proc = subprocess.run([*cmd, *args], input=input, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ({path}) ---\n{_tail(path, lines)}" for name, path in self._logs.items())

    # --------------------------------------------------------------- internals

    def _make_credentials(self) -> None:
        d = self.dir
        assert d is not None
        pki = d / "pki"
        pki.mkdir()
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=cerebelum-test-ca",
            cwd=pki,
        )

        def issue(name: str, subj: str, ext: str) -> None:
            (pki / f"{name}.ext").write_text(ext)
            _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=pki)
            _openssl(
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3650",
                "-sha256",
                "-extfile",
                f"{name}.ext",
                "-out",
                f"{name}.crt",
                cwd=pki,
            )

        issue(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,"
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
            + ("" if self.address == "127.0.0.1" else f",IP:{self.address}")
            + "\n",
        )
        if self.node_name is not None:
            issue(
                "kubelet",
                f"/O=system:nodes/CN=system:node:{self.node_name}",
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
            )
        issue(
            "admin",
            "/O=system:masters/CN=cerebelum-admin",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
        _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)

        self.admin_token = secrets.token_hex(24)
        (pki / "tokens.csv").write_text(
            f'{self.admin_token},cerebelum-admin-token,cerebelum-admin-token,"system:masters"\n'
        )
        for f in pki.iterdir():
            f.chmod(0o600)
        self.ca_file = pki / "ca.crt"
        self.client_cert_file = pki / "admin.crt"
        self.client_key_file = pki / "admin.key"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        assert self.dir is not None
        self._logs[name] = self.dir / f"{name}.log"
        proc = spawn_logged(argv, log=self._logs[name], cwd=self.dir)
        self._procs[name] = proc
        return proc

    def _start_etcd(self) -> None:
        assert self.dir is not None and self.bin_dir is not None
        client, peer = _free_port(), _free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        data = self.dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # test data: durability not needed, much faster
                "--log-level=warn",
            ],
        )
        deadline = time.monotonic() + 30
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError("etcd did not become healthy in 30s\n" + self.log_tail())
            time.sleep(0.1)

    def _start_apiserver(self) -> None:
        assert self.dir is not None and self.bin_dir is not None and self.etcd_url
        port = _free_port()
        self.server = f"https://{self.address}:{port}"
        pki = self.dir / "pki"
        if self.node_name is None:
            mode = [
                "--authorization-mode=RBAC",
                # No controller-manager creates the per-namespace "default" SA.
                "--disable-admission-plugins=ServiceAccount",
                # The "kubernetes" Service's Endpoints may not point at loopback.
                "--endpoint-reconciler-type=none",
            ]
        else:
            mode = [
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # For logs, exec and port-forward: the kubelet trusts the test CA's clients.
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={port}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                *mode,
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                "--profiling=false",
                *self.extra_apiserver_args,
            ],
        )

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is not None:
                tail = _tail(self._logs[name], 40)
                cls = _PortInUse if "address already in use" in tail else ControlPlaneError
                raise cls(f"{name} exited with code {code} during start-up; log tail:\n{tail}")

    def _wait_ready(self, deadline: float) -> None:
        assert self.ca_file is not None
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"})
        last = ""
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[-2000:]}"
            except (OSError, ssl.SSLError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready within {self.startup_timeout}s (last /readyz: {last})\n"
                    + self.log_tail()
                )
            time.sleep(0.2)

    def _write_kubeconfig(self) -> None:
        assert self.dir is not None

        def b64(p: Path | None) -> str:
            assert p is not None
            return base64.b64encode(p.read_bytes()).decode()

        # JSON is valid YAML, and kubectl / client libraries read it as a kubeconfig.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cerebelum-test",
                    "cluster": {"server": self.server, "certificate-authority-data": b64(self.ca_file)},
                }
            ],
            "users": [
                {
                    "name": "cerebelum-admin",
                    "user": {
                        "client-certificate-data": b64(self.client_cert_file),
                        "client-key-data": b64(self.client_key_file),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "cerebelum-test",
                    "context": {"cluster": "cerebelum-test", "user": "cerebelum-admin", "namespace": "default"},
                }
            ],
            "current-context": "cerebelum-test",
            "preferences": {},
        }
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _kill_processes(self) -> None:
        # kube-apiserver first, then its datastore.
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for proc in self._procs.values():  # anything else
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._procs.clear()


class _PortInUse(ControlPlaneError):
    pass


def main() -> int:
    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    cp = ControlPlane(keep_dir="--keep" in sys.argv[1:])
    try:
        cp.start()
        print(f"control plane ready in {cp.startup_seconds:.1f}s", file=sys.stderr)
        print(f"KUBECONFIG={cp.kubeconfig}")
        print(f"SERVER={cp.server}")
        print(f"DIR={cp.dir}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
