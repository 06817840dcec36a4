"""The access policy: which identities take which queues' and namespaces' tasks, and who is a client."""

from __future__ import annotations

import pytest

from cerebelum_operator.api import AccessPolicy, Identity, PolicyError
from cerebelum_operator.api.auth import PermissionDenied, StaticTokenAuthenticator, Unauthenticated, bearer_token

PAYMENTS_WORKER = Identity("system:serviceaccount:payments:worker")
ADMIN = Identity("carol", groups=("cerebelum-admins",))


def test_by_default_a_service_account_takes_tasks_of_its_own_namespace_on_any_queue() -> None:
    policy = AccessPolicy.kubernetes_default()
    assert policy.worker_namespaces(PAYMENTS_WORKER, "anything") == frozenset({"payments"})


def test_by_default_a_user_that_is_no_service_account_takes_nothing() -> None:
    with pytest.raises(PermissionDenied, match="'carol' may not take tasks of queue 'billing'"):
        AccessPolicy.kubernetes_default().worker_namespaces(ADMIN, "billing")


def test_by_default_nobody_may_use_the_client_api() -> None:
    with pytest.raises(PermissionDenied, match="may not call StartExecution"):
        AccessPolicy.kubernetes_default().check_client(ADMIN, "StartExecution")


def test_rules_grant_queues_by_pattern_and_namespaces_by_name() -> None:
    policy = AccessPolicy.from_document(
        {
            "workers": [
                {"subjects": ["system:serviceaccount:payments:*"], "namespaces": ["ledger"], "queues": ["bill-*"]}
            ]
        }
    )
    assert policy.worker_namespaces(PAYMENTS_WORKER, "bill-eu") == frozenset({"ledger"})
    with pytest.raises(PermissionDenied, match="queue 'refunds'"):
        policy.worker_namespaces(PAYMENTS_WORKER, "refunds")


def test_a_star_namespace_grants_every_namespace() -> None:
    policy = AccessPolicy.from_document(
        {"workers": [{"subjects": ["group:cerebelum-admins"], "namespaces": ["*"], "queues": ["*"]}]}
    )
    assert policy.worker_namespaces(ADMIN, "q") is None
    policy.check_worker_task(ADMIN, "q", "anywhere")


def test_a_task_outside_the_granted_namespaces_is_refused_naming_the_namespace() -> None:
    with pytest.raises(PermissionDenied, match="namespace 'hr'"):
        AccessPolicy.kubernetes_default().check_worker_task(PAYMENTS_WORKER, "q", "hr")


def test_clients_are_matched_by_group() -> None:
    policy = AccessPolicy.from_document({"clients": [{"subjects": ["group:cerebelum-admins"]}]})
    policy.check_client(ADMIN, "Approve")
    with pytest.raises(PermissionDenied):
        policy.check_client(PAYMENTS_WORKER, "Approve")


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ([], "expected a mapping"),
        ({"worker": []}, "unknown field(s) ['worker']"),
        ({"workers": {}}, "workers must be a list"),
        ({"workers": ["x"]}, "workers[0]: expected a mapping"),
        ({"workers": [{"queues": ["q"]}]}, "workers[0].subjects"),
        ({"workers": [{"subjects": ["a"], "queue": ["q"]}]}, "workers[0]: unknown field(s) ['queue']"),
        ({"clients": [{"subjects": [""]}]}, "clients[0].subjects"),
        ({"workers": [{"subjects": ["a"], "namespaces": "ns", "queues": ["q"]}]}, "workers[0].namespaces"),
        ({"workers": [{"subjects": ["a"], "namespaces": [], "queues": ["q"]}]}, "workers[0].namespaces"),
    ],
)
def test_a_malformed_policy_is_refused_naming_the_field(document: object, named: str) -> None:
    with pytest.raises(PolicyError) as refused:
        AccessPolicy.from_document(document)
    assert named in str(refused.value)


async def test_the_dev_token_is_compared_exactly() -> None:
    authenticator = StaticTokenAuthenticator("0123456789abcdef")
    assert (await authenticator.authenticate("0123456789abcdef")).shared
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate("0123456789abcdeF")


def test_a_dev_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        StaticTokenAuthenticator("short")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ((), "no credentials"),
        ((("authorization", "Basic dXNlcg=="),), "malformed"),
        ((("authorization", "Bearer "),), "malformed"),
    ],
)
def test_missing_or_malformed_credentials_are_named(metadata: tuple[tuple[str, str], ...], problem: str) -> None:
    with pytest.raises(Unauthenticated, match=problem):
        bearer_token(metadata)


@pytest.mark.parametrize("field", ["namespaces", "queues"])
def test_a_client_rule_that_names_namespaces_or_queues_is_refused_because_clients_cannot_be_confined(
    field: str,
) -> None:
    with pytest.raises(PolicyError, match=rf"clients\[0\]: \['{field}'\] cannot confine a client"):
        AccessPolicy.from_document({"clients": [{"subjects": ["alice"], field: ["team-a"]}]})


@pytest.mark.parametrize("missing", ["namespaces", "queues"])
def test_a_worker_rule_must_name_its_namespaces_and_queues_because_nothing_defaults_to_all(missing: str) -> None:
    rule = {"subjects": ["system:serviceaccount:team-a:*"], "namespaces": ["$self"], "queues": ["jobs"]}
    del rule[missing]
    with pytest.raises(PolicyError, match=rf"workers\[0\]\.{missing} is required \(nothing defaults to all\)"):
        AccessPolicy.from_document({"workers": [rule]})


def test_by_default_nobody_may_manage_schedules() -> None:
    with pytest.raises(PermissionDenied, match="may not call CreateSchedule"):
        AccessPolicy.kubernetes_default().check_schedules(ADMIN, "CreateSchedule")


def test_a_client_rule_grants_schedules_only_when_it_says_so() -> None:
    policy = AccessPolicy.from_document(
        {"clients": [{"subjects": ["group:cerebelum-admins"]}, {"subjects": ["ops"], "schedules": True}]}
    )
    policy.check_client(ADMIN, "StartExecution")
    with pytest.raises(PermissionDenied, match="no 'clients' rule with 'schedules: true'"):
        policy.check_schedules(ADMIN, "TriggerSchedule")
    policy.check_schedules(Identity("ops"), "TriggerSchedule")


def test_dev_mode_allows_schedules() -> None:
    AccessPolicy.allow_all().check_schedules(Identity("anyone"), "DeleteSchedule")


def test_a_schedules_grant_that_is_not_a_boolean_is_refused_naming_the_field() -> None:
    with pytest.raises(PolicyError, match=r"clients\[0\]\.schedules: expected true or false"):
        AccessPolicy.from_document({"clients": [{"subjects": ["ops"], "schedules": "yes"}]})


VIEWER = Identity("victor", groups=("viewers",))


def test_a_read_only_client_rule_grants_the_reading_calls_and_refuses_every_action() -> None:
    policy = AccessPolicy.from_document(
        {"clients": [{"subjects": ["group:cerebelum-admins"]}, {"subjects": ["group:viewers"], "readOnly": True}]}
    )
    for rpc in ("GetExecution", "ListExecutions", "GetHistory", "ListWorkflows", "ListDeadLetters"):
        policy.check_client(VIEWER, rpc)
    for rpc in ("Approve", "CancelExecution", "StartExecution", "RedriveDeadLetter", "PauseExecution"):
        with pytest.raises(PermissionDenied, match=f"'victor' may not call {rpc}: .*readOnly"):
            policy.check_client(VIEWER, rpc)
    policy.check_client(ADMIN, "Approve")
    assert (policy.client_access(VIEWER), policy.client_access(ADMIN), policy.client_access(PAYMENTS_WORKER)) == (
        "read",
        "act",
        None,
    )


def test_a_rule_that_acts_wins_over_a_read_only_one_for_the_same_caller() -> None:
    policy = AccessPolicy.from_document(
        {"clients": [{"subjects": ["victor"], "readOnly": True}, {"subjects": ["group:viewers"]}]}
    )
    policy.check_client(VIEWER, "Approve")


def test_a_read_only_rule_cannot_also_grant_what_acts() -> None:
    with pytest.raises(PolicyError, match=r"clients\[0\]: a readOnly rule cannot also grant schedules"):
        AccessPolicy.from_document({"clients": [{"subjects": ["victor"], "readOnly": True, "schedules": True}]})
    with pytest.raises(PolicyError, match=r"clients\[0\].readOnly: expected true or false"):
        AccessPolicy.from_document({"clients": [{"subjects": ["victor"], "readOnly": "yes"}]})
