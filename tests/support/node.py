"""A real one-node Kubernetes cluster for end-to-end tests, with no Docker and no kind.

Next to the control plane of tests/support/control_plane.py (etcd + kube-apiserver) it runs what
a cluster needs to run pods, as processes of this test session:

* containerd (Debian's 1.6) with runc and the CNI plugins (bridge + host-local + portmap),
* a kubelet, kube-controller-manager, kube-scheduler and kube-proxy (iptables mode), built from the
  same pinned Kubernetes release as the API server (hack/node/build.sh),
* CoreDNS with the ``kubernetes`` plugin behind the ``kube-dns`` Service, so pods resolve
  ``<service>.<namespace>.svc`` as on any cluster.

Nothing is pulled: the sandbox ("pause") image is packed here from upstream's pause.c compiled
by hack/node/build.sh, and the project's images come from hack/images/build.sh as archives.

What this host needs and why (the settings live in the configs below):

* root (containerd, mounts, iptables, network interfaces);
* a cgroup v1 (or hybrid) layout is fine: the kubelet runs with ``cgroupDriver: cgroupfs`` and
  ``failCgroupV1: false``, containerd's runc with ``SystemdCgroup = false`` (no systemd here);
* ``restrict_oom_score_adj``: runc may not lower ``oom_score_adj`` on such machines (it fails with
  "can't get final child's PID from pipe" otherwise);
* ``br_netfilter`` (bridged pod traffic through iptables), so Services reach pods on the bridge.

The node's address is 10.250.0.1 on an interface of its own: the API server advertises it
(pods reach the ``kubernetes`` Service there), the kubelet and CoreDNS listen on it. Pods get
10.244.0.0/24 on a bridge of their own and have no route out of the machine: IP forwarding is
on, but nothing masquerades pod traffic and CoreDNS forwards nowhere.

Run as a script to get a cluster for manual use::

    sudo .venv/bin/python -m tests.support.node   # from the repo root; prints KUBECONFIG=..., Ctrl-C stops
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tests.support.control_plane import ControlPlane, ControlPlaneError, _free_port, _tail, spawn_logged

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_BUILD = REPO_ROOT / "hack" / "node" / "build.sh"
NODE_PACKAGES = REPO_ROOT / "hack" / "node" / "packages.sh"
IMAGES_BUILD = REPO_ROOT / "hack" / "images" / "build.sh"

HOST_LOCK = "/run/cerebelum-node.lock"
NODE_NAME = "cerebelum-node"
NODE_IP = "10.250.0.1"
NODE_LINK = "cbl-node0"  # a veth end holding NODE_IP
BRIDGE = "cbl-br0"  # the pods' bridge (the CNI bridge plugin creates it)
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/cerebelum/pause:3.10"
NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "pause")


class NodeError(ControlPlaneError):
    """The node could not be built or started."""


def _run_script(script: Path, *, timeout: float | None = None) -> Path:
    """Run a build script (progress on our stderr); its last stdout line is the result dir."""
    if not script.is_file():
        raise NodeError(f"build script not found: {script}")
    try:
        proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"{script} did not finish in {timeout}s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise NodeError(f"{script} failed with exit code {proc.returncode}")
    return Path(lines[-1])


def ensure_node_binaries() -> Path:
    """The kubelet, controllers, kube-proxy, CoreDNS and pause, built once and cached."""
    bin_dir = _run_script(NODE_BUILD)
    for name in NODE_BINARIES:
        if not os.access(bin_dir / name, os.X_OK):
            raise NodeError(f"{bin_dir / name} is missing or not executable")
    return bin_dir


def ensure_host_packages() -> None:
    """containerd, runc, the CNI plugins, iptables and conntrack from Debian's packages."""
    proc = subprocess.run(["bash", str(NODE_PACKAGES)], stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0:
        raise NodeError(f"{NODE_PACKAGES} failed with exit code {proc.returncode}")


#: Set to a directory of image archives with an ``images.txt`` to skip hack/images/build.sh.
IMAGES_DIR_ENV = "CEREBELUM_IMAGES_DIR"


def ensure_images() -> dict[str, Path]:
    """The project's images, built from its Dockerfiles: ``{name:tag: archive}``."""
    override = os.environ.get(IMAGES_DIR_ENV)
    out = Path(override) if override else _run_script(IMAGES_BUILD)
    listing = out / "images.txt"
    images: dict[str, Path] = {}
    for line in listing.read_text().splitlines():
        if line.strip():
            ref, archive = line.split()
            path = Path(archive) if Path(archive).is_absolute() else out / archive
            images[ref] = path
    return images


def host_problems() -> list[str]:
    """Why this host cannot run a node (empty when it can)."""
    problems = []
    if not sys.platform.startswith("linux"):
        problems.append("a node needs Linux")
    elif os.geteuid() != 0:
        problems.append("a node needs root (containerd, mounts, iptables, network interfaces)")
    elif not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        problems.append("the kernel has no br_netfilter (/proc/sys/net/bridge is missing)")
    return problems


def oci_archive(*, ref: str, files: dict[str, tuple[bytes, int]], entrypoint: list[str], user: str) -> bytes:
    """A one-layer OCI image archive (``ctr images import`` takes it) with the given files."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    layer = layer_tar.getvalue()
    layer_gz = gzip.compress(layer, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "User": user},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
        },
        sort_keys=True,
    ).encode()

    def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
        return {
            "mediaType": media_type,
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "size": len(data),
            **extra,
        }

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer_gz)],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                descriptor(
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest,
                    annotations={"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
                )
            ],
        }
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
        for blob in (config, manifest, layer_gz):
            entries[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = blob
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NodeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _netns_names() -> set[str]:
    with contextlib.suppress(FileNotFoundError):
        return set(os.listdir("/run/netns"))
    return set()


class NodeCluster:
    """A control plane and one real node running pods; see the module docstring."""

    def __init__(
        self,
        *,
        control_plane_bin: Path,
        node_bin: Path,
        images: dict[str, Path],
        startup_timeout: float = 300.0,
        keep_dir: bool = False,
    ) -> None:
        self.control_plane_bin = control_plane_bin
        self.node_bin = node_bin
        self.images = images
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.dir: Path | None = None
        self.control_plane: ControlPlane | None = None
        self.containerd_socket: Path | None = None
        self.startup_seconds: float | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._netns_before: set[str] = set()
        self._proxy_config: Path | None = None
        self._host_lock: IO[str] | None = None

    # ------------------------------------------------------------------ public

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None and self.control_plane.kubeconfig is not None
        return self.control_plane.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert self.control_plane is not None
        return self.control_plane.kubectl(*args, check=check, input=input)

    def start(self) -> NodeCluster:
        if problems := host_problems():
            raise NodeError("; ".join(problems))
        t0 = time.monotonic()
        # One node per host: its address, interfaces and iptables chains are fixed names. A second
        # test session waits here for the first to finish instead of tearing its network down.
        self._host_lock = open(HOST_LOCK, "w")  # noqa: SIM115 - held until stop()
        fcntl.flock(self._host_lock, fcntl.LOCK_EX)
        # Short paths: unix socket names are limited to 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="cbl-node-", dir="/var/tmp"))
        atexit.register(self.stop)
        try:
            self._netns_before = _netns_names()
            self._host_network()
            self.control_plane = ControlPlane(
                self.control_plane_bin, address=NODE_IP, node_name=NODE_NAME, parent_dir=str(self.dir)
            ).start()
            self._write_cni_config()
            self._start_containerd()
            self._import_images()
            self._start_kubelet()
            self._start_controllers()
            self._start_kube_proxy()
            self._start_coredns()
            self._wait_ready(t0 + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop everything this node started and undo its host changes (idempotent)."""
        if self.dir is None:
            return
        self._terminate("kubelet")
        self._kill_containers()
        for name in ("kube-proxy", "coredns", "kube-scheduler", "kube-controller-manager", "containerd"):
            self._terminate(name)
        if self._proxy_config is not None:  # its iptables chains
            subprocess.run(
                [str(self.node_bin / "kube-proxy"), "--cleanup", f"--config={self._proxy_config}"],
                capture_output=True,
            )
        self._remove_kube_chains()
        if self.control_plane is not None:
            self.control_plane.stop()
        self._unmount_all(self.dir)
        for name in _netns_names() - self._netns_before:
            _ip("netns", "delete", name, check=False)
        for link in (BRIDGE, NODE_LINK):
            _ip("link", "delete", link, check=False)
        self._remove_pod_cgroups()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if self._host_lock is not None:
            self._host_lock.close()  # releases the flock
            self._host_lock = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> NodeCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        parts = [f"--- {name} ({path}) ---\n{_tail(path, lines)}" for name, path in self._logs.items()]
        if self.control_plane is not None:
            parts.append(self.control_plane.log_tail(lines))
        return "\n".join(parts)

    def wait_for(self, what: str, condition: Callable[[], bool], *, timeout: float) -> None:
        """Poll ``condition`` until true; fail naming ``what`` with the node's logs."""
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_alive()
            if time.monotonic() > deadline:
                raise NodeError(f"{what}: not within {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(0.5)

    # --------------------------------------------------------------- internals

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.dir is not None
        self._logs[name] = self.dir / f"{name}.log"
        self._procs[name] = spawn_logged(argv, log=self._logs[name], cwd=self.dir)

    def _terminate(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if (code := proc.poll()) is not None:
                raise NodeError(f"{name} exited with code {code}; log tail:\n{_tail(self._logs[name], 40)}")

    def _host_network(self) -> None:
        _ip("link", "delete", NODE_LINK, check=False)  # a previous run's, killed before it cleaned up
        _ip("link", "delete", BRIDGE, check=False)
        # A veth pair holds the address (this kind of kernel has no dummy interfaces); its other end
        # goes nowhere and disappears with it.
        _ip("link", "add", NODE_LINK, "type", "veth", "peer", "name", NODE_LINK + "p")
        _ip("addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
        _ip("link", "set", NODE_LINK + "p", "up")
        _ip("link", "set", NODE_LINK, "up")
        for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
            Path("/proc/sys", key).write_text(value)

    def _admin_kubeconfig(self) -> str:
        return str(self.kubeconfig)

    def _start_containerd(self) -> None:
        assert self.dir is not None
        root = self.dir / "containerd"
        root.mkdir()
        self.containerd_socket = root / "containerd.sock"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (root / "config.toml").write_text(
            f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # runc may not lower oom_score_adj on this kind of machine.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        # No systemd as PID 1: cgroups are managed through cgroupfs, as the kubelet does.
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.dir / "cni" / "net.d"}"
"""
        )
        self._spawn("containerd", ["containerd", f"--config={root / 'config.toml'}", "--log-level=warn"])
        self.wait_for(
            "containerd answers",
            lambda: self._ctr("version", check=False).returncode == 0,
            timeout=60,
        )

    def tag_image(self, source: str, target: str) -> None:
        """Give an imported image another name, e.g. the one a chart uses by default."""
        self._ctr("images", "tag", "--force", source, target)

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args], capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def _import_images(self) -> None:
        assert self.dir is not None
        pause = self.dir / "pause.oci.tar"
        pause.write_bytes(
            oci_archive(
                ref=PAUSE_IMAGE,
                files={"pause": ((self.node_bin / "pause").read_bytes(), 0o755)},
                entrypoint=["/pause"],
                user="65535:65535",
            )
        )
        for archive in (pause, *self.images.values()):
            self._ctr("images", "import", str(archive))
        listed = self._ctr("images", "list", "--quiet").stdout.split()
        missing = [ref for ref in (PAUSE_IMAGE, *self.images) if not any(name.endswith(ref) for name in listed)]
        if missing:
            raise NodeError(f"images missing after import: {missing}; containerd has {listed}")

    def _write_cni_config(self) -> None:
        assert self.dir is not None
        conf_dir = self.dir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-cerebelum.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "cerebelum",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,  # pods have nowhere to go outside this machine
                            "hairpinMode": True,  # a pod reaching itself through a Service
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_SUBNET}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.dir / "cni" / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )

    def _start_kubelet(self) -> None:
        assert self.dir is not None and self.control_plane is not None
        cp = self.control_plane
        kdir = self.dir / "kubelet"
        kdir.mkdir()
        pki = Path(str(cp.ca_file)).parent
        kubeconfig = kdir / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)}}
                    ],
                    "users": [
                        {
                            "name": "kubelet",
                            "user": {
                                "client-certificate": str(pki / "kubelet.crt"),
                                "client-key": str(pki / "kubelet.key"),
                            },
                        }
                    ],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "kubelet"}}],
                    "current-context": "c",
                }
            )
        )
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": _free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": _free_port(),
            # The API server's client certificate (for logs, exec, port-forward) is the test CA's.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(cp.ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            # This kind of machine has a hybrid cgroup v1 layout and no systemd as PID 1.
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "cgroupRoot": "/cerebelum-node",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "",  # pods see only the cluster's DNS
            "failSwapOn": False,
            "podLogsDir": str(self.dir / "pod-logs"),
            "serializeImagePulls": False,
            # A test machine's disk may be fuller than a production node's: do not evict for it.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "maxPods": 60,
        }
        (kdir / "config.yaml").write_text(json.dumps(config, indent=2))
        for hierarchy in Path("/sys/fs/cgroup").iterdir():  # the cgroupRoot must exist in each one
            if hierarchy.is_dir() and not hierarchy.is_symlink():
                with contextlib.suppress(OSError):
                    (hierarchy / "cerebelum-node").mkdir(exist_ok=True)
        self._spawn(
            "kubelet",
            [
                str(self.node_bin / "kubelet"),
                f"--config={kdir / 'config.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={kdir / 'root'}",
                f"--cert-dir={kdir / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )

    def _start_controllers(self) -> None:
        assert self.control_plane is not None
        pki = Path(str(self.control_plane.ca_file)).parent
        kc = self._admin_kubeconfig()
        common = [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(self.node_bin / "kube-controller-manager"),
                *common,
                f"--secure-port={_free_port()}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler", [str(self.node_bin / "kube-scheduler"), *common, f"--secure-port={_free_port()}", "--v=1"]
        )

    def _start_kube_proxy(self) -> None:
        assert self.dir is not None
        self._proxy_config = self.dir / "kube-proxy.yaml"
        self._proxy_config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": self._admin_kubeconfig()},
                    "mode": "iptables",
                    "clusterCIDR": CLUSTER_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "bindAddress": NODE_IP,
                    "healthzBindAddress": f"127.0.0.1:{_free_port()}",
                    "metricsBindAddress": f"127.0.0.1:{_free_port()}",
                    # NodePorts only on the node's own address, not on every address of this host.
                    "nodePortAddresses": [f"{NODE_IP}/32"],
                    # Leave the host's conntrack table size and timeouts as they are.
                    "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
                },
                indent=2,
            )
        )
        self._spawn("kube-proxy", [str(self.node_bin / "kube-proxy"), f"--config={self._proxy_config}", "--v=1"])

    def _start_coredns(self) -> None:
        assert self.dir is not None
        dns_port = _free_port()
        corefile = self.dir / "Corefile"
        corefile.write_text(
            f""".:{dns_port} {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{_free_port()}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self._admin_kubeconfig()} cerebelum-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
"""
        )
        self._spawn("coredns", [str(self.node_bin / "coredns"), "-conf", str(corefile)])
        # The kube-dns Service, as on any cluster, pointing at this CoreDNS on the node's address.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": dns_port},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": dns_port},
                ],
            },
        }
        endpoints = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "cerebelum-tests",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [
                {"name": "dns", "port": dns_port, "protocol": "UDP"},
                {"name": "dns-tcp", "port": dns_port, "protocol": "TCP"},
            ],
        }
        self.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, endpoints]})
        )

    def _wait_ready(self, deadline: float) -> None:
        def node_ready() -> bool:
            out = self.kubectl(
                "get", "node", NODE_NAME, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False
            )
            return out.stdout.strip() == "True"

        def default_service_account() -> bool:
            return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

        self.wait_for("the node is Ready", node_ready, timeout=max(deadline - time.monotonic(), 1))
        self.wait_for("the default ServiceAccount exists", default_service_account, timeout=120)

    def _kill_containers(self) -> None:
        """Kill every container of this node's containerd (they outlive the kubelet and containerd)."""
        if self.containerd_socket is None or "containerd" not in self._procs:
            return
        tasks = self._ctr("tasks", "list", "--quiet", check=False).stdout.split()
        for task in tasks:
            self._ctr("tasks", "kill", "--all", "--signal=SIGKILL", task, check=False)
        for task in tasks:
            self._ctr("tasks", "delete", "--force", task, check=False)
        containers = self._ctr("containers", "list", "--quiet", check=False).stdout.split()
        if containers:
            self._ctr("containers", "delete", *containers, check=False)

    @staticmethod
    def _unmount_all(under: Path) -> None:
        """Unmount what containerd and the kubelet mounted under ``under``, deepest first."""
        prefix = str(under)
        for _ in range(3):
            with open("/proc/self/mounts") as f:
                points = [line.split()[1].replace("\\040", " ") for line in f]
            ours = sorted({p for p in points if p == prefix or p.startswith(prefix + "/")}, key=len, reverse=True)
            if not ours:
                return
            for point in ours:
                subprocess.run(["umount", "-l", point], capture_output=True)

    @staticmethod
    def _remove_kube_chains() -> None:
        """Drop the KUBE-* chains the kubelet leaves behind (kube-proxy --cleanup took its own)."""
        for tool in ("iptables", "ip6tables"):
            for table in ("nat", "mangle", "filter"):
                rules = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
                for rule in rules:  # jumps into KUBE-* chains from the built-in ones
                    if rule.startswith("-A ") and " -j KUBE-" in rule and not rule.split()[1].startswith("KUBE-"):
                        subprocess.run([tool, "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
                chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
                for chain in chains:
                    subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
                for chain in chains:
                    subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)

    @staticmethod
    def _remove_pod_cgroups() -> None:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / "cerebelum-node"
            if not top.is_dir():
                continue
            for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def main() -> int:
    """Start a node for manual use (root needed); Ctrl-C stops and cleans up."""

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    from tests.support.control_plane import ensure_binaries

    ensure_host_packages()
    cluster = NodeCluster(
        control_plane_bin=ensure_binaries(),
        node_bin=ensure_node_binaries(),
        images={} if "--no-images" in sys.argv else ensure_images(),
    )
    with cluster:
        print(f"KUBECONFIG={cluster.kubeconfig}  (node up in {cluster.startup_seconds:.1f}s; Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
