"""The `cerebelum` command: run the dev engine and drive workflows from a terminal."""

from __future__ import annotations

import contextlib
import enum
import faulthandler
import io
import json
import logging
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from cerebelum import CerebelumError, Client, Execution, NotFoundError

from ..api import DEFAULT_MAX_PAYLOAD_BYTES
from ..engine import DEFAULT_MAX_HISTORY_EVENTS, ExecutionPhase
from ..model.shards import MAX_SHARDS
from ..server import DEFAULT_ADDRESS, DEFAULT_DATABASE_URL, DEFAULT_UI_ADDRESS
from .common import AddressOption, OutputOption, client, fail
from .control import control_commands
from .documents import DocumentError, read_workflows
from .queues import queue_app
from .render import (
    Output,
    console,
    emit,
    err_console,
    execution_table,
    history_table,
    printable,
    show_execution,
    to_document,
)
from .replay import replay_command
from .schedules import schedule_app

__all__ = ["app", "main"]

app = typer.Typer(help="Cerebelum: durable workflows on Kubernetes.", no_args_is_help=True, add_completion=False)
get_app = typer.Typer(help="List workflows or executions.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue: steps that ran out of retries.", no_args_is_help=True)
app.add_typer(get_app, name="get")
app.add_typer(dlq_app, name="dlq")
app.add_typer(schedule_app, name="schedule")
app.add_typer(queue_app, name="queue")
app.command("replay")(replay_command)

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000  # what the engine returns at most in one ListExecutions

ThisRunOption = Annotated[
    bool,
    typer.Option(
        "--this-run",
        help="The run named, even if it continued as new (by default: the latest run of its chain).",
    ),
]
LabelOption = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", help="A label KEY=VALUE (Kubernetes label syntax); repeat for more."),
]
TlsCertOption = Annotated[
    Path | None, typer.Option("--tls-cert", help="Serve gRPC over TLS with this PEM certificate (chain).")
]
TlsKeyOption = Annotated[Path | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert.")]
TlsClientCaOption = Annotated[
    Path | None, typer.Option("--tls-client-ca", help="Require client certificates signed by this PEM CA (mTLS).")
]
PeerTlsCaOption = Annotated[
    Path | None,
    typer.Option(
        "--peer-tls-ca",
        envvar="CEREBELUM_PEER_TLS_CA",
        help="Replicas serving TLS: verify the other replicas with this PEM CA (their calls are forwarded over"
        " TLS; with --tls-client-ca this replica presents its own --tls-cert pair).",
    ),
]
PeerTlsServerNameOption = Annotated[
    str | None,
    typer.Option(
        "--peer-tls-server-name",
        envvar="CEREBELUM_PEER_TLS_SERVER_NAME",
        help="With --peer-tls-ca: a name the replicas' certificate carries (the Service's), checked in place of"
        " the address a replica is reached at.",
    ),
]


def _tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> Any:
    from ..server import TlsFiles

    if cert is None and key is None:
        if client_ca is not None:
            _fail("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        _fail("TLS needs both --tls-cert and --tls-key")
    return TlsFiles(certificate=cert, private_key=key, client_ca=client_ca)


def _peer_tls(ca: Path | None, server_name: str | None) -> Any:
    from ..server import PeerTls

    if ca is None:
        if server_name is not None:
            _fail("--peer-tls-server-name needs --peer-tls-ca")
        return None
    try:
        return PeerTls(ca=ca, server_name=server_name)
    except ValueError as exc:
        _fail(f"--peer-tls-server-name: {exc}")


def _is_loopback(address: str) -> bool:
    """Whether a gRPC bind address (``host:port``, ``[v6]:port``, ``unix:path``) is reachable from this host only."""
    import ipaddress

    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or a wildcard: it may resolve to any interface


_client = client
_fail = fail


def _labels(pairs: list[str] | None) -> dict[str, str]:
    """``--label`` values as a dict; the engine checks their syntax and names a bad one."""
    labels: dict[str, str] = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals:
            _fail(f"--label {pair!r}: write KEY=VALUE (an empty value as KEY=)")
        if key in labels and labels[key] != value:
            _fail(f"--label: {key!r} is given twice, as {labels[key]!r} and {value!r}")
        labels[key] = value
    return labels


def _instant(text: str | None, option: str) -> datetime | None:
    """An RFC 3339 time with its offset (2024-05-01T12:00:00Z); a time without one is refused, not guessed."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r} is not an RFC 3339 time, such as 2024-05-01T12:00:00Z")
    if at.tzinfo is None:
        _fail(f"{option} {text!r} has no time zone: add Z or an offset such as +02:00")
    return at


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{what} is not valid JSON: {exc}")


def _as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Print phase and step changes on stderr while waiting (default: when stderr is a terminal).",
    ),
]
PROGRESS_EVERY_S = 0.5


def _wait(
    client: Client, execution_id: str, timeout: float | None, *, progress: bool, follow_runs: bool = False
) -> Execution:
    """The ended execution; with `progress`, each change of phase or current step on stderr meanwhile;
    with `follow_runs`, the last run of its continue-as-new chain once the chain ended.

    The engine tells of the end only, so progress asks for the execution between short waits.
    """
    if not progress:
        return client.wait(execution_id, timeout=timeout, follow_runs=follow_runs)
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: tuple[str, tuple[str, ...]] | None = None
    while True:
        current = client.get(execution_id, latest_run=follow_runs)
        if current.is_terminal and not (follow_runs and current.phase == "ContinuedAsNew"):
            return current
        if (current.phase, current.current_steps) != shown:
            shown = (current.phase, current.current_steps)
            steps = f" (step {', '.join(current.current_steps)})" if current.current_steps else ""
            err_console.print(f"execution/{execution_id} {current.phase}{steps}")
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < 0.01:  # a wait of 0 ms would mean the server's longest wait
            raise TimeoutError(f"execution {execution_id!r} is still {current.phase} after {timeout} s")
        try:
            return client.wait(
                execution_id,
                timeout=PROGRESS_EVERY_S if left is None else min(PROGRESS_EVERY_S, left),
                follow_runs=follow_runs,
            )
        except TimeoutError:
            continue


def _wait_and_report(
    client: Client,
    execution_id: str,
    timeout: float | None,
    *,
    output: Output = Output.TABLE,
    started: bool = True,
    progress: bool | None = None,
    follow_runs: bool = False,
) -> None:
    """Wait for the end, print phase and output; exit 1 unless Succeeded, 2 on timeout.

    As JSON or YAML the final execution is the one document on stdout, and the exit code says the rest.
    """
    try:
        final = _wait(
            client,
            execution_id,
            timeout,
            progress=err_console.is_terminal if progress is None else progress,
            follow_runs=follow_runs,
        )
    except TimeoutError:
        _fail(f"execution still running after {timeout}s", code=2)
    except CerebelumError as exc:
        _fail(str(exc))
    if output is not Output.TABLE:
        emit(_started_document(final, started=started), output)
        if final.phase != "Succeeded":
            raise typer.Exit(1)
        return
    console.print(f"execution/{final.id} {final.phase}")
    if final.output is not None:
        console.print_json(_as_json(final.output))
    if final.phase == "ContinuedAsNew":
        _fail(f"this run continued as new as {final.continued_as}; without --this-run, wait follows the chain")
    if final.phase != "Succeeded":
        _fail(final.error or final.phase)


def _retention(period: str | None, export: Path | None) -> int | None:
    """``--retention`` in milliseconds; refuses a bad one, and an export directory without it."""
    from ..model.durations import parse_duration

    if period is None:
        if export is not None:
            _fail("--retention-export writes what --retention removes: give --retention too")
        return None
    try:
        milliseconds = parse_duration(period)
    except ValueError as exc:
        _fail(f"--retention: {exc}")
    if milliseconds <= 0:
        _fail(f"--retention must be a positive duration, not {period!r}")
    return milliseconds


def _started_document(execution: Any, *, started: bool) -> dict[str, Any]:
    """The execution for scripts, with whether this command started it or found it already there."""
    document = to_document(execution)
    return {"id": document.pop("id"), "workflow": document.pop("workflow"), "started": started, **document}


@app.command()
def dev(
    address: Annotated[str, typer.Option(help="Where to serve gRPC.")] = DEFAULT_ADDRESS,
    db: Annotated[str, typer.Option("--db", envvar="CEREBELUM_DATABASE_URL", help="Store URL.")] = DEFAULT_DATABASE_URL,
    max_history_events: Annotated[
        int, typer.Option(min=100, help="Events an execution may record before it is failed (continue as new).")
    ] = DEFAULT_MAX_HISTORY_EVENTS,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CEREBELUM_TOKEN",
            help="Require this bearer token (16+ characters) from workers and clients; they read $CEREBELUM_TOKEN.",
        ),
    ] = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_client_ca: TlsClientCaOption = None,
    reflection: Annotated[
        bool, typer.Option(help="Serve gRPC server reflection (the API's schema, for grpcurl), without a token.")
    ] = True,
    retention: Annotated[
        str | None,
        typer.Option(
            help="Remove executions from the store this long after they ended (30d, 12h); default: keep them."
        ),
    ] = None,
    retention_export: Annotated[
        Path | None,
        typer.Option(help="Before removing an execution, write its history here as JSON lines (<id>.jsonl)."),
    ] = None,
    tokens: Annotated[
        Path | None,
        typer.Option(help="YAML: a token per person ({tokens: [{token, user, groups}]}), instead of one --token."),
    ] = None,
    access_policy: Annotated[
        Path | None,
        typer.Option(
            help="YAML: what each caller may do (clients: readOnly, schedules...); needs --token or --tokens."
        ),
    ] = None,
    ui_address: Annotated[
        str,
        typer.Option(help="Where to serve the web UI; 'off': no UI."),
    ] = DEFAULT_UI_ADDRESS,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    shards: Annotated[
        str | None,
        typer.Option(
            help="Scale-out on PostgreSQL: 'auto' (a share kept balanced with the other engines running), or"
            " the shards this engine owns (0-7, or 0,3,5); calls are forwarded between engines. Default: all, alone."
        ),
    ] = None,
    advertise_address: Annotated[
        str | None, typer.Option(help="With --shards: the HOST:PORT the other engines reach this one at.")
    ] = None,
    replica: Annotated[
        str | None, typer.Option(help="With --shards: this engine's name (default: hostname:port).")
    ] = None,
    peer_tls_ca: PeerTlsCaOption = None,
    peer_tls_server_name: PeerTlsServerNameOption = None,
) -> None:
    """Run the engine in one process on SQLite: no cluster needed."""

    import yaml

    from ..api import AccessPolicy, Guard, PolicyError, StaticTokenAuthenticator, TokenFileAuthenticator
    from ..server import EngineServer, ServerConfig, tune_gc
    from . import event_loop

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if token and tokens:
        _fail("give --token or --tokens, not both")
    policy = None
    if access_policy is not None:
        if not (token or tokens):
            _fail("--access-policy needs callers who say who they are: --token or --tokens")
        try:
            policy = AccessPolicy.from_document(yaml.safe_load(access_policy.read_text()))
        except (OSError, yaml.YAMLError, PolicyError) as exc:
            _fail(f"--access-policy {access_policy}: {exc}")
    try:
        if tokens is not None:
            guard = Guard(TokenFileAuthenticator(yaml.safe_load(tokens.read_text())), policy=policy)
        else:
            guard = Guard(StaticTokenAuthenticator(token), policy=policy) if token else Guard()
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"--tokens {tokens}: {exc}")
    except ValueError as exc:
        _fail(f"--tokens {tokens}: {exc}" if tokens else f"--token: {exc}")
    ui = None if ui_address == "off" else ui_address
    if ui is not None and not guard.enabled and not _is_loopback(ui):
        _fail(
            f"--ui-address {ui} is reachable from other machines: without --token or --tokens anyone who"
            " reaches it could act on every execution; set one, or bind a loopback address"
        )
    if not (token or tokens) and not _is_loopback(address):
        _fail(
            f"--address {address} is reachable from other machines: serving it without --token would let anyone"
            " who reaches it take tasks; set --token (16+ characters) or bind a loopback address such as"
            f" {DEFAULT_ADDRESS}"
        )
    try:
        config = ServerConfig(
            address=address,
            database_url=db,
            guard=guard,
            tls=_tls(tls_cert, tls_key, tls_client_ca),
            max_history_events=max_history_events,
            reflection=reflection,
            retention_ms=_retention(retention, retention_export),
            retention_export=retention_export,
            ui_address=ui,
            # The default address taken (a second engine on this machine): serve on without the UI.
            ui_optional=ui_address == DEFAULT_UI_ADDRESS,
            shards=None if shards in (None, "auto") else _shard_set(shards),
            auto_shards=shards == "auto",
            advertise_address=advertise_address or (address if shards is not None else None),
            replica=replica or (f"{socket.gethostname()}:{address.rpartition(':')[2]}" if shards is not None else ""),
            peer_tls=_peer_tls(peer_tls_ca, peer_tls_server_name),
        )
    except ValueError as exc:  # a combination of options the engine refuses, named
        _fail(str(exc))
    server = EngineServer(config)
    _report_crashes()
    tune_gc()
    try:
        event_loop.run(server.serve_until_signalled())
    except event_loop.EventLoopChoiceError as exc:
        _fail(str(exc))
    except OSError as exc:  # a store that cannot open, an address that cannot be bound (named by the server)
        _fail(str(exc))
    _exit_after_clean_stop(0)


def _shard_set(text: str) -> frozenset[int]:
    """``0-7`` or ``0,3,5`` (or both, comma-separated) as a set of shard numbers."""
    shards: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            _fail(f"--shards {text!r}: give shard numbers or ranges, such as 0-7 or 0,3,5")
        if low < 0 or high < low or high >= MAX_SHARDS:
            _fail(f"--shards {text!r}: {part.strip()!r} is not a range of shards between 0 and {MAX_SHARDS - 1}")
        shards.update(range(low, high + 1))
    return frozenset(shards)


@app.command()
def operator(
    address: Annotated[
        str, typer.Option(help="Where to serve gRPC to workers; in a pod, 0.0.0.0:7450 behind a Service.")
    ] = DEFAULT_ADDRESS,
    db: Annotated[str, typer.Option("--db", envvar="CEREBELUM_DATABASE_URL", help="Store URL.")] = DEFAULT_DATABASE_URL,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these namespaces (default: all).")
    ] = None,
    lease_namespace: Annotated[
        str, typer.Option(envvar="POD_NAMESPACE", help="Namespace of the leader-election Lease.")
    ] = "default",
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "cerebelum-operator",
    identity: Annotated[
        str | None, typer.Option(envvar="POD_NAME", help="This instance's name in the Lease (default: hostname).")
    ] = None,
    lease_duration: Annotated[int, typer.Option(help="Seconds a silent leader keeps the Lease.")] = 15,
    status_interval: Annotated[float, typer.Option(help="Minimum seconds between two status writes.")] = 1.0,
    api_qps: Annotated[float, typer.Option(help="API writes per second, at most, for status and events.")] = 100.0,
    max_payload_bytes: Annotated[
        int, typer.Option(help="Largest step input or output accepted, in bytes.")
    ] = DEFAULT_MAX_PAYLOAD_BYTES,
    health_address: Annotated[
        str | None,
        typer.Option(
            help="Serve /healthz, /readyz (ready: the leader; a standby too with --pod-role-label) and /metrics,"
            " e.g. 0.0.0.0:8080."
        ),
    ] = None,
    pod_role_label: Annotated[
        bool,
        typer.Option(
            help="Label this pod (--identity/POD_NAME in --lease-namespace/POD_NAMESPACE) cerebelum.io/role=leader"
            " or standby, for a Service that selects the leader by it; a standby is then Ready. Needs get and"
            " patch on pods there."
        ),
    ] = False,
    max_history_events: Annotated[
        int, typer.Option(min=100, help="Events an execution may record before it is failed (continue as new).")
    ] = DEFAULT_MAX_HISTORY_EVENTS,
    auth: Annotated[
        str,
        typer.Option(
            help="kubernetes: callers present a ServiceAccount token, checked by TokenReview;"
            " none: nobody is asked (tests and trusted networks only)."
        ),
    ] = "kubernetes",
    token_audience: Annotated[
        list[str] | None, typer.Option(help="Audience the workers' tokens must carry (default: cerebelum).")
    ] = None,
    access_policy: Annotated[
        Path | None, typer.Option(help="YAML: which ServiceAccounts take which queues and namespaces' tasks.")
    ] = None,
    trust_claimed_approver: Annotated[
        bool,
        typer.Option(
            help="Apply Approvals in the name their spec.approver claims even when no admission policy stamps it "
            "(default: refuse them until the chart's approval policy is installed)."
        ),
    ] = False,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_client_ca: TlsClientCaOption = None,
    reflection: Annotated[
        bool, typer.Option(help="Serve gRPC server reflection (the API's schema, for grpcurl), without a token.")
    ] = True,
    execution_ttl: Annotated[
        str,
        typer.Option(
            help="Delete a finished Execution object (and its Approvals and Signals) this long after it ended"
            " when its Workflow sets no ttlAfterFinished (1h, 7d); never: keep it. The history stays in the store."
        ),
    ] = "never",
    retention: Annotated[
        str | None,
        typer.Option(
            help="Remove executions from the store this long after they ended (30d); at least --execution-ttl."
            " Default: keep them."
        ),
    ] = None,
    retention_export: Annotated[
        Path | None,
        typer.Option(help="Before removing an execution, write its history here as JSON lines (<id>.jsonl)."),
    ] = None,
    ui_address: Annotated[
        str | None,
        typer.Option(help="Serve the web UI here (0.0.0.0:7452 in a pod); default: no UI."),
    ] = None,
    shard_group: Annotated[
        str | None,
        typer.Option(
            envvar="CEREBELUM_SHARD_GROUP",
            help="Run as one of several active replicas (PostgreSQL): each owns the shards whose Leases"
            " (<group>-shard-N in --lease-namespace) it holds; calls are forwarded to the owner. Default: one"
            " active replica, elected by --lease-name.",
        ),
    ] = None,
    advertise_address: Annotated[
        str | None,
        typer.Option(
            envvar="CEREBELUM_ADVERTISE_ADDRESS",
            help="With --shard-group: the HOST:PORT the other replicas reach this one at (in a pod: its IP and port).",
        ),
    ] = None,
    peer_tls_ca: PeerTlsCaOption = None,
    peer_tls_server_name: PeerTlsServerNameOption = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the Kubernetes operator: reconcile Workflows, Executions and Approvals, serve workers."""
    import socket

    import yaml

    from ..api import AccessPolicy, PolicyError
    from ..kube.client import NoKubeConfig, load_kube_config
    from ..kube.operator import EXIT_NO_KUBECONFIG, OperatorConfig, run_operator
    from ..server import ServerConfig
    from . import event_loop

    if auth not in ("none", "kubernetes"):
        _fail(f"--auth must be 'none' or 'kubernetes', not {auth!r}")
    identity = identity or socket.gethostname()
    if pod_role_label:
        from ..kube.names import InvalidName, namespace_name, object_name

        try:
            object_name(identity, field="--identity (POD_NAME)")
            namespace_name(lease_namespace, field="--lease-namespace (POD_NAMESPACE)")
        except InvalidName as exc:
            _fail(f"--pod-role-label labels the pod this runs in: {exc}")
    policy = None
    if access_policy is not None:
        if auth == "none":
            _fail("--access-policy needs --auth kubernetes")
        try:
            policy = AccessPolicy.from_document(yaml.safe_load(access_policy.read_text()))
        except (OSError, yaml.YAMLError, PolicyError) as exc:
            _fail(f"--access-policy {access_policy}: {exc}")

    from ..kube.expiry import TtlPolicy, parse_ttl

    retention_ms = _retention(retention, retention_export)
    try:
        execution_ttl_ms = parse_ttl(execution_ttl)
    except ValueError as exc:
        _fail(f"--execution-ttl: {exc}, or never")
    try:
        TtlPolicy(default_ms=execution_ttl_ms, retention_ms=retention_ms)
    except ValueError as exc:
        _fail(str(exc))
    try:
        load_kube_config()  # before anything starts or logs: no cluster is one line, not a traceback
    except NoKubeConfig as exc:
        _fail(str(exc), EXIT_NO_KUBECONFIG)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if auth == "none":
        logging.getLogger("cerebelum").warning(
            "INSECURE: --auth none: the gRPC endpoint %s asks nobody who they are: whoever reaches it can take"
            " every namespace's tasks, forge their results and start or cancel executions; use --auth kubernetes"
            " outside tests",
            address,
        )
    for noisy in ("httpx", "httpx2", "kopf.objects", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = OperatorConfig(
            server=ServerConfig(
                address=address,
                database_url=db,
                max_payload_bytes=max_payload_bytes,
                max_history_events=max_history_events,
                tls=_tls(tls_cert, tls_key, tls_client_ca),
                reflection=reflection,
                retention_ms=retention_ms,
                retention_export=retention_export,
                ui_address=ui_address,
                peer_tls=_peer_tls(peer_tls_ca, peer_tls_server_name),
            ),
            namespaces=tuple(namespace or ()),
            lease_namespace=lease_namespace,
            lease_name=lease_name,
            identity=identity,
            lease_duration_s=lease_duration,
            status_interval_s=status_interval,
            api_writes_per_second=api_qps,
            health_address=health_address,
            auth="kubernetes" if auth == "kubernetes" else "none",
            token_audiences=tuple(token_audience or ("cerebelum",)),
            access_policy=policy,
            trust_claimed_approver=trust_claimed_approver,
            pod_role_label=pod_role_label,
            execution_ttl_ms=execution_ttl_ms,
            shard_group=shard_group,
            advertise_address=advertise_address,
        )
    except ValueError as exc:
        _fail(str(exc))
    _report_crashes()
    from ..server import tune_gc

    tune_gc()  # kopf, lightkube and the engine imported: frozen out of every collection
    try:
        code = event_loop.run(run_operator(config))
    except event_loop.EventLoopChoiceError as exc:
        _fail(str(exc))
    except NoKubeConfig as exc:
        _fail(str(exc), EXIT_NO_KUBECONFIG)
    except OSError as exc:
        _fail(str(exc))
    _exit_after_clean_stop(code)


def _report_crashes() -> None:
    """A crash in a C extension leaves a Python traceback of every thread in the log."""
    with contextlib.suppress(io.UnsupportedOperation, ValueError):  # a stderr with no file (a test's runner)
        faulthandler.enable()


def _exit_after_clean_stop(code: int) -> NoReturn:
    """Exit without the interpreter's finalization once everything was stopped and flushed.

    The store is closed, the lease released and the gRPC server stopped by now; what is left are
    threads of C extensions (grpc's core, the API client's resolver) that finalization can tear
    down under them: a clean stop then died with SIGSEGV about once in a few hundred runs.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def apply(
    file: Annotated[Path, typer.Option("--filename", "-f", help="Workflow YAML or JSON ('-' for stdin).")],
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Create or update the Workflows in a file: all of them, or none if any is invalid."""
    try:
        workflows = read_workflows(file)
    except DocumentError as exc:
        _fail(str(exc))
    client = _client(address)
    try:
        for workflow in workflows:
            info = client.apply_workflow(workflow.name, workflow.spec)
            console.print(f"workflow/{info.name} applied (version {info.version})")
    except CerebelumError as exc:
        _fail(str(exc))


class StartOutput(enum.StrEnum):
    """What `start -o` accepts: text keeps the `execution/<id> started` line."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"


@app.command()
def start(
    workflow: str,
    input: Annotated[str | None, typer.Option("--input", "-i", help="Input as JSON.")] = None,
    execution_id: Annotated[
        str | None, typer.Option("--id", help="Execution id: starting it again with the same input starts nothing.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the end; exit non-zero unless Succeeded.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait with --wait.")] = None,
    progress: ProgressOption = None,
    output: Annotated[StartOutput, typer.Option("--output", "-o", help="text, json or yaml")] = StartOutput.TEXT,
    label: LabelOption = None,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Start an execution of a workflow."""
    client = _client(address)
    value = _json_arg(input, "--input")
    labels = _labels(label)
    try:
        # The engine answers a start of an existing id (same workflow and input) with that execution:
        # look first, so that it is not reported as started now.
        existed = execution_id is not None and _exists(client, execution_id)
        execution = client.start(workflow, value, execution_id=execution_id, labels=labels)
    except CerebelumError as exc:
        if input is None and "requires an input" in exc.message:
            _fail(f"{exc.message}; pass --input '{{...}}'")
        _fail(str(exc))
    documents = Output.TABLE if output is StartOutput.TEXT else Output(output.value)
    if wait:
        if documents is Output.TABLE:
            console.print(_started_line(execution.id, existed))
        _wait_and_report(client, execution.id, timeout, output=documents, started=not existed, progress=progress)
    elif documents is Output.TABLE:
        console.print(_started_line(execution.id, existed))
    else:
        emit(_started_document(execution, started=not existed), documents)


def _exists(client: Client, execution_id: str) -> bool:
    try:
        client.get(execution_id)
    except NotFoundError:
        return False
    return True


def _started_line(execution_id: str, existed: bool) -> str:
    return (
        f"execution/{execution_id} already exists (not started again)"
        if existed
        else f"execution/{execution_id} started"
    )


@app.command("wait")
def wait_command(
    execution_id: str,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait.")] = None,
    progress: ProgressOption = None,
    this_run: ThisRunOption = False,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Wait for an execution to end; exit non-zero unless it Succeeded.

    An execution that continues as new ends with the last run of its chain, which is waited for.
    """
    _wait_and_report(_client(address), execution_id, timeout, progress=progress, follow_runs=not this_run)


@get_app.command("executions")
def get_executions(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    phase: Annotated[
        list[ExecutionPhase] | None, typer.Option(help="Only this phase; repeat for any of several.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Only with this label KEY=VALUE; repeat: all of them.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only created at or after this RFC 3339 time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only created before this RFC 3339 time.")] = None,
    id_contains: Annotated[
        str | None, typer.Option("--id-contains", help="Only those whose id contains this text (case ignored).")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="Show at most this many, the newest.")
    ] = DEFAULT_LIST_LIMIT,
    page_token: Annotated[
        str | None,
        typer.Option(
            "--page-token",
            help="Show the page after the one that printed this token (same filters); with -o json or yaml,"
            " the document is then {executions, nextPageToken}.",
        ),
    ] = None,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """List executions, newest first."""
    labels = _labels(label)
    after, before = _instant(since, "--since"), _instant(until, "--until")
    try:
        page = _client(address).list_page(
            workflow=workflow,
            phases=[p.value for p in phase or []],
            labels=labels,
            created_after=after,
            created_before=before,
            id_contains=id_contains,
            limit=limit,
            page_token=page_token,
        )
    except CerebelumError as exc:
        _fail(str(exc))
    executions = list(page.executions)
    if output is not Output.TABLE:
        # A plain list as before, unless the caller pages: then the token must come with the rows.
        emit(executions if page_token is None else page, output)
        return
    console.print(execution_table(executions))
    if page.next_page_token is not None:
        err_console.print(
            f"showing {limit}; --limit to see more, or --page-token {page.next_page_token} for the next page"
        )


@get_app.command("workflows")
def get_workflows(output: OutputOption = Output.TABLE, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """List applied workflows."""
    try:
        workflows = _client(address).list_workflows()
    except CerebelumError as exc:
        _fail(str(exc))
    if output is not Output.TABLE:
        emit(workflows, output)
        return
    for workflow in workflows:
        console.print(f"{workflow.name}\tversion {workflow.version}")


@app.command()
def describe(
    execution_id: str,
    stacktraces: Annotated[
        bool,
        typer.Option(
            "--stacktraces",
            help="Show the stack trace of every step's last failure (by default: of failed and retrying steps).",
        ),
    ] = False,
    this_run: ThisRunOption = False,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Show an execution: phase, steps, signals, children, its chain of runs, pending approvals, and
    the stack traces of failed steps. An execution that continued as new is shown at its latest run."""
    try:
        execution = _client(address).get(execution_id, latest_run=not this_run)
    except CerebelumError as exc:
        _fail(str(exc))
    if output is Output.TABLE:
        show_execution(execution, stacktraces=stacktraces)
    else:
        emit(execution, output)


@app.command()
def history(execution_id: str, output: OutputOption = Output.TABLE, address: AddressOption = DEFAULT_ADDRESS) -> None:
    """Show an execution's event history."""
    try:
        events = _client(address).history(execution_id)
    except CerebelumError as exc:
        _fail(str(exc))
    if output is Output.TABLE:
        console.print(history_table(events))
    else:
        emit(events, output)


@app.command()
def approve(
    execution_id: str,
    step: str,
    approver: Annotated[str, typer.Option(help="Who approves.")] = os.environ.get("USER", "cli"),
    payload: Annotated[str | None, typer.Option(help="JSON given to later steps.")] = None,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Approve a step that waits for approval."""
    try:
        execution = _client(address).approve(
            execution_id, step, approver=approver, payload=_json_arg(payload, "--payload")
        )
    except CerebelumError as exc:
        _fail(str(exc))
    console.print(f"execution/{execution.id} step {step} approved by {approver}; now {execution.phase}")


@app.command()
def reject(
    execution_id: str,
    step: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    approver: Annotated[str, typer.Option(help="Who rejects.")] = os.environ.get("USER", "cli"),
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Reject a step that waits for approval."""
    try:
        execution = _client(address).reject(execution_id, step, approver=approver, reason=reason)
    except CerebelumError as exc:
        _fail(str(exc))
    console.print(f"execution/{execution.id} step {step} rejected; now {execution.phase}")


@app.command()
def cancel(
    execution_id: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "cancelled from the CLI",
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Cancel an execution; running steps are told at their next heartbeat. Exit 1 if it had already ended."""
    client = _client(address)
    try:
        # The engine answers a cancel of an ended execution with the execution as it is, no error:
        # look first, so that "already Cancelled" is not reported as a cancel done now.
        before = client.get(execution_id)
        execution = before if before.is_terminal else client.cancel(execution_id, reason=reason)
    except CerebelumError as exc:
        _fail(str(exc))
    if before.is_terminal or execution.phase != "Cancelled":
        _fail(f"execution {execution.id} already ended {execution.phase}; nothing to cancel")
    console.print(f"execution/{execution.id} {execution.phase}")


# -- signals (issue 17) -----------------------------------------------------------------------------

DataOption = Annotated[str | None, typer.Option("--data", "-d", help="The signal's payload as JSON (default: null).")]
DataFileOption = Annotated[
    Path | None, typer.Option("--data-file", help="Read the payload's JSON from this file ('-' for stdin).")
]
RequestIdOption = Annotated[
    str | None,
    typer.Option("--request-id", help="Deliver once: the same signal sent again with this id is not queued twice."),
]


def _signal_data(data: str | None, data_file: Path | None) -> Any:
    """The payload from --data or --data-file (one of them, or neither for null)."""
    if data is not None and data_file is not None:
        _fail("give the payload with --data or with --data-file, not both", code=2)
    if data_file is None:
        return _json_arg(data, "--data")
    try:
        text = sys.stdin.read() if str(data_file) == "-" else data_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"--data-file {data_file}: {exc}")
    return _json_arg(text, f"--data-file {data_file}")


def _queued(execution: Execution) -> str:
    count = len(execution.queued_signals)
    return f" ({count} signal{'' if count == 1 else 's'} queued)" if count else ""


@app.command("signal")
def signal_command(
    execution_id: str,
    name: str,
    data: DataOption = None,
    data_file: DataFileOption = None,
    request_id: RequestIdOption = None,
    output: Annotated[StartOutput, typer.Option("--output", "-o", help="text, json or yaml")] = StartOutput.TEXT,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Send a signal to a running execution: queued, in order, until a signal step takes it."""
    value = _signal_data(data, data_file)
    try:
        execution = _client(address).signal(execution_id, name, value, request_id=request_id)
    except CerebelumError as exc:
        _fail(str(exc))
    if output is not StartOutput.TEXT:
        emit(execution, Output(output.value))
        return
    console.print(
        Text(printable(f"execution/{execution.id} signal {name} sent; now {execution.phase}{_queued(execution)}"))
    )


@app.command("signal-with-start")
def signal_with_start_command(
    workflow: str,
    name: str,
    execution_id: Annotated[
        str, typer.Option("--id", help="The execution to signal; started under this id unless it exists.")
    ],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Input as JSON, used only when it is started here.")
    ] = None,
    data: DataOption = None,
    data_file: DataFileOption = None,
    request_id: RequestIdOption = None,
    output: Annotated[StartOutput, typer.Option("--output", "-o", help="text, json or yaml")] = StartOutput.TEXT,
    label: LabelOption = None,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Signal an execution, starting it first unless it exists (in one step: no race with another sender)."""
    value = _signal_data(data, data_file)
    labels = _labels(label)
    start_input = _json_arg(input, "--input")
    client = _client(address)
    try:
        # The engine answers either way with the execution: look first, so that "started" is true only when it was.
        existed = _exists(client, execution_id)
        execution = client.signal_with_start(
            workflow,
            execution_id=execution_id,
            input=start_input,
            signal=name,
            data=value,
            request_id=request_id,
            labels=labels,
        )
    except CerebelumError as exc:
        if input is None and "requires an input" in exc.message:
            _fail(f"{exc.message}; pass --input '{{...}}'")
        _fail(str(exc))
    if output is not StartOutput.TEXT:
        emit(_started_document(execution, started=not existed), Output(output.value))
        return
    how = "already existed (not started again), signal" if existed else "started, signal"
    console.print(
        Text(printable(f"execution/{execution.id} {how} {name} sent; now {execution.phase}{_queued(execution)}"))
    )


@dlq_app.command("list")
def dlq_list(
    execution: Annotated[str | None, typer.Option(help="Only this execution.")] = None,
    output: OutputOption = Output.TABLE,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """List open dead letters."""
    try:
        letters = _client(address).dead_letters(execution_id=execution)
    except CerebelumError as exc:
        _fail(str(exc))
    if output is not Output.TABLE:
        emit(letters, output)
        return
    if not letters:
        console.print("no dead letters")
    for letter in letters:
        console.print(f"{letter.id}\t{letter.execution_id}\t{letter.step}\tattempt {letter.attempt}\t{letter.error}")


@dlq_app.command("redrive")
def dlq_redrive(
    dead_letter_id: str,
    with_current_workflow: Annotated[
        bool,
        typer.Option(
            "--with-current-workflow",
            help="Run the execution on its Workflow's current spec from now on (one that fixed an expression).",
        ),
    ] = False,
    address: AddressOption = DEFAULT_ADDRESS,
) -> None:
    """Run a dead-lettered step again; its execution comes back to life."""
    try:
        execution = _client(address).redrive(dead_letter_id, with_current_workflow=with_current_workflow)
    except CerebelumError as exc:
        _fail(str(exc))
    console.print(f"execution/{execution.id} redriven; now {execution.phase}")


for _name, _command in control_commands.items():  # listed in --help after the commands above
    app.command(_name)(_command)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
