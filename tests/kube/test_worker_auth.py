"""Workers present their ServiceAccount token; the operator asks the real API server who they are.

The operator runs with `--auth kubernetes` as the chart's ServiceAccount (bound only to the chart's
RBAC, which must allow TokenReviews); workers are real processes holding tokens minted by the API
server for the audience "cerebelum".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import AsyncClient, KubeConfig

from cerebelum_operator.api import AuthUnavailable, Unauthenticated
from cerebelum_operator.kube.token_review import TokenReviewAuthenticator
from tests.integration.conftest import WORKER_SCRIPT, read_ledger
from tests.support.control_plane import ControlPlane
from tests.support.kube import apply_yaml, service_account_kubeconfig, token_kubeconfig, wait_for_jsonpath
from tests.support.processes import OperatorProcess, WorkerPool
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]


def mint_token(control_plane: ControlPlane, namespace: str, account: str, *, audience: str | None) -> str:
    control_plane.kubectl("create", "serviceaccount", account, "-n", namespace, check=False)
    args = ["create", "token", account, "-n", namespace, "--duration=1h"]
    if audience is not None:
        args.append(f"--audience={audience}")
    return control_plane.kubectl(*args).stdout.strip()


def other_namespace(control_plane: ControlPlane) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    return name


async def test_a_token_for_our_audience_is_accepted_and_any_other_is_refused(
    control_plane: ControlPlane, operator_rbac: None, namespace: str, tmp_path: Path
) -> None:
    good = mint_token(control_plane, namespace, "worker", audience="cerebelum")
    for_the_api_server = mint_token(control_plane, namespace, "worker", audience=None)
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    try:
        authenticator = TokenReviewAuthenticator(client)
        identity = await authenticator.authenticate(good)
        assert identity.username == f"system:serviceaccount:{namespace}:worker"
        assert identity.service_account_namespace == namespace
        with pytest.raises(Unauthenticated, match="token refused"):
            await authenticator.authenticate(for_the_api_server)
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate("not-a-jwt")
        reviews = authenticator.reviews
        await authenticator.authenticate(good)  # answered from the cache
        assert authenticator.reviews == reviews
    finally:
        await client.close()


async def test_an_operator_not_allowed_token_reviews_answers_unavailable_naming_the_permission(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    worker_token = mint_token(control_plane, namespace, "worker", audience="cerebelum")
    powerless = mint_token(control_plane, namespace, "powerless", audience=None)
    kubeconfig = token_kubeconfig(control_plane, tmp_path / "powerless.kubeconfig", token=powerless, user="powerless")
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    try:
        with pytest.raises(AuthUnavailable, match=r"'create' on tokenreviews\.authentication\.k8s\.io"):
            await TokenReviewAuthenticator(client).authenticate(worker_token)
    finally:
        await client.close()


@pytest.fixture
def guarded_operator(
    control_plane: ControlPlane, crds: list[str], operator_rbac: None, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    second = other_namespace(control_plane)
    process = OperatorProcess(
        database_url=f"sqlite:///{tmp_path / 'operator.db'}",
        log_path=tmp_path / "operator.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig"),
        extra_args=(
            *("--namespace", namespace, "--namespace", second),
            *("--lease-name", f"operator-{namespace}", "--status-interval", "0.5", "--auth", "kubernetes"),
        ),
    )
    process.second_namespace = second  # type: ignore[attr-defined]
    process.start()
    yield process
    process.stop()
    print(f"--- operator log ---\n{process.log_path.read_text()[-4000:]}")


def apply_flow(control_plane: ControlPlane, namespace: str, execution_name: str) -> None:
    documents = [
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "guarded"},
            "spec": {"taskQueue": "test", "timeline": ["a", "b"]},
        },
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": execution_name},
            "spec": {"workflow": "guarded", "input": {}},
        },
    ]
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


def test_workers_take_only_their_own_namespace_s_tasks_and_a_stranger_takes_none(
    control_plane: ControlPlane,
    guarded_operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    second: str = guarded_operator.second_namespace  # type: ignore[attr-defined]
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=guarded_operator.address, ledger=ledger, log_dir=tmp_path)
    try:
        monkeypatch.delenv("CEREBELUM_TOKEN_FILE", raising=False)
        monkeypatch.setenv("CEREBELUM_TOKEN", mint_token(control_plane, namespace, "stranger", audience="other"))
        stranger = pool.start()
        monkeypatch.setenv("CEREBELUM_TOKEN", mint_token(control_plane, namespace, "worker", audience="cerebelum"))
        pool.start()

        apply_flow(control_plane, second, "theirs")
        apply_flow(control_plane, namespace, "ours")
        wait_for_jsonpath(control_plane, "execution/ours", namespace, "{.status.phase}", "Succeeded", timeout=60)
        wait_until(lambda: "UNAUTHENTICATED" in stranger.log_path.read_text(), within=30, what="the refusal")
        assert {r["execution"] for r in read_ledger(ledger)} == {
            control_plane.kubectl("get", "execution/ours", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
        }

        def phase_of_theirs() -> str:
            return control_plane.kubectl(
                "get", "execution/theirs", "-n", second, "-o", "jsonpath={.status.phase}"
            ).stdout

        # A new object's first status write waits one --status-interval; then it shows, still waiting.
        wait_until(lambda: phase_of_theirs() != "", within=30, what="the first status of execution/theirs")
        assert phase_of_theirs() in ("Pending", "Running")

        monkeypatch.setenv("CEREBELUM_TOKEN", mint_token(control_plane, second, "worker", audience="cerebelum"))
        pool.start()
        wait_for_jsonpath(control_plane, "execution/theirs", second, "{.status.phase}", "Succeeded", timeout=60)
    finally:
        pool.stop_all()


def test_a_worker_of_another_namespace_flooding_predicted_task_tokens_never_completes_a_step(
    control_plane: ControlPlane,
    guarded_operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13, finding 3, against the real operator: the forger knows the token scheme.

    A task token is `<execution uid>/<step>/<attempt>/<poll>/<seq>` and the uid is on the
    Execution object, so a worker of the first namespace can predict every token of the second
    namespace's timeline and race its worker for each of them. Not one forged output may count.
    """
    import asyncio

    import grpc

    from cerebelum.v1 import worker_pb2, worker_pb2_grpc

    victim_namespace: str = guarded_operator.second_namespace  # type: ignore[attr-defined]
    steps = [f"s{i}" for i in range(1, 21)]
    names = [f"victim-{n}" for n in range(4)]
    documents: list[dict[str, object]] = [
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "payroll"},
            "spec": {"taskQueue": "test", "timeline": steps},
        },
    ]
    documents.extend(
        {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"workflow": "payroll", "input": {}},
        }
        for name in names
    )
    forger_token = mint_token(control_plane, namespace, "forger", audience="cerebelum")
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=WORKER_SCRIPT, address=guarded_operator.address, ledger=ledger, log_dir=tmp_path)
    outcomes: dict[str, int] = {}

    async def flood(uids: list[str], done: asyncio.Event) -> None:
        # Step s_i is scheduled by the event after s_(i-1) completes: its token's seq is 3i - 1.
        tokens = [f"{uid}/{step}/1/0/{3 * i - 1}" for uid in uids for i, step in enumerate(steps, start=1)]
        metadata = (("authorization", f"Bearer {forger_token}"),)
        async with grpc.aio.insecure_channel(guarded_operator.address) as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated stub: untyped

            async def forge(token: str) -> None:
                request = worker_pb2.CompleteTaskRequest(
                    task_token=token,
                    worker_id="forger",
                    success=worker_pb2.Success(output_json='{"forged": true}'),
                )
                try:
                    reply = await stub.CompleteTask(request, metadata=metadata, timeout=10)
                    key = worker_pb2.CompleteTaskResponse.Disposition.Name(reply.disposition)
                except grpc.aio.AioRpcError as error:
                    key = error.code().name
                outcomes[key] = outcomes.get(key, 0) + 1

            while not done.is_set():
                await asyncio.gather(*(forge(token) for token in tokens))

    async def attack() -> None:
        result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=victim_namespace)
        assert result.returncode == 0, result.stderr
        uids = [
            control_plane.kubectl(
                "get", f"execution/{name}", "-n", victim_namespace, "-o", "jsonpath={.metadata.uid}"
            ).stdout.strip()
            for name in names
        ]
        done = asyncio.Event()
        flooding = asyncio.create_task(flood(uids, done))
        # The flood is running before the victim's worker can take the first step.
        await asyncio.to_thread(wait_until, lambda: sum(outcomes.values()) > 0, within=30, what="the flood")
        monkeypatch.delenv("CEREBELUM_TOKEN_FILE", raising=False)
        monkeypatch.setenv(
            "CEREBELUM_TOKEN", mint_token(control_plane, victim_namespace, "worker", audience="cerebelum")
        )
        pool.start()
        try:
            for name in names:
                await asyncio.to_thread(
                    wait_for_jsonpath,
                    control_plane,
                    f"execution/{name}",
                    victim_namespace,
                    "{.status.phase}",
                    "Succeeded",
                    timeout=120,
                )
        finally:
            done.set()
            await flooding

    try:
        asyncio.run(attack())
    finally:
        pool.stop_all()
    print(f"forged completions by answer: {outcomes}")
    assert outcomes.get("ACCEPTED", 0) == 0, outcomes
    assert outcomes.get("PERMISSION_DENIED", 0) > 0, outcomes
    ran = {(r["execution"], r["step"]) for r in read_ledger(ledger)}
    assert len(ran) == len(names) * len(steps), "every step of the victim's executions ran on its own worker"
