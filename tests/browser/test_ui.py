"""The web UI in a real Chromium against a real `cerebelum dev` and real workers.

One engine for the module, with a token per person and an access policy: alice may act, victor
may only read. Its executions move through real workers; the pages must follow without a reload.
Run with CEREBELUM_UPDATE_SCREENSHOTS=1 to refresh docs/ui/*.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from playwright.sync_api import expect

from cerebelum import Client
from cerebelum.errors import PermissionDeniedError
from tests.support.browser import axe_violations, format_violations
from tests.support.processes import EngineProcess, WorkerPool, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page

ALICE = "alice-token-0123456789abcdef"
VICTOR = "victor-token-0123456789abcdef"
LEDGER_WORKER = Path(__file__).resolve().parents[1] / "integration" / "workers" / "ledger_worker.py"
RELEASE = {
    "taskQueue": "test",
    "timeline": ["a", "flaky", ["b", "c"], "go_live", "after"],
    "steps": {"go_live": {"approval": {"timeout": "1h"}}, "c": {"dependsOn": ["b"]}},
    "defaults": {"retry": {"maxAttempts": 3, "initialInterval": "200ms"}},
    "branch": {"after": [{"when": "false", "goto": "a", "maxIterations": 2}]},
}
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    directory = tmp_path_factory.mktemp("ui")
    tokens, policy = directory / "tokens.yaml", directory / "policy.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"token": ALICE, "user": "alice", "groups": ["operators"]},
                    {"token": VICTOR, "user": "victor", "groups": ["viewers"]},
                ]
            }
        )
    )
    policy.write_text(
        yaml.safe_dump(
            {
                "workers": [{"subjects": ["alice"], "namespaces": ["*"], "queues": ["*"]}],
                "clients": [
                    {"subjects": ["group:operators"], "schedules": True},
                    {"subjects": ["group:viewers"], "readOnly": True},
                ],
            }
        )
    )
    process = EngineProcess(
        database_url=f"sqlite:///{directory / 'engine.db'}",
        log_path=directory / "engine.log",
        ui_port=free_port(),
        extra_args=("--tokens", str(tokens), "--access-policy", str(policy)),
    )
    process.start()
    ledger = directory / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=LEDGER_WORKER, address=process.address, ledger=ledger, log_dir=directory)
    try:
        pool.start(CEREBELUM_TOKEN=ALICE)
        with Client(address=process.address, token=ALICE) as client:
            client.apply_workflow("release", RELEASE)
        yield process
    finally:
        pool.stop_all()
        process.stop()


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client(address=engine.address, token=ALICE) as connected:
        yield connected


def sign_in(page: Page, engine: EngineProcess, token: str, *, then: str = "/executions") -> None:
    page.goto(f"{engine.ui_url}{then}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{engine.ui_url}{then}")


def phase_of_row(page: Page, execution_id: str) -> str | None:
    row = page.locator(f'table[data-testid=executions] tr[data-id="{execution_id}"]')
    return row.get_attribute("data-phase") if row.count() else None


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, format_violations(violations)


def navigations(page: Page) -> Any:
    """A marker set on the window: a reload would lose it."""
    return page.evaluate("window.__stayed === true")


def test_the_list_follows_an_execution_as_it_moves_without_a_reload(
    page: Page, engine: EngineProcess, client: Client, screenshot: Callable[[Page, str], Path]
) -> None:
    sign_in(page, engine, ALICE)
    page.evaluate("window.__stayed = true")
    page.wait_for_selector("main[data-following=true]")
    client.start("release", {"version": "1.0"}, execution_id="rel-live")
    expect(page.locator('tr[data-id="rel-live"]')).to_have_attribute("data-phase", "WaitingForApproval")
    count = page.locator('[data-testid=counts] .count[data-phase="WaitingForApproval"]').inner_text()
    assert int(count) >= 1
    client.approve("rel-live", "go_live", approver="alice")
    expect(page.locator('tr[data-id="rel-live"]')).to_have_attribute("data-phase", "Succeeded")
    assert navigations(page), "the list was reloaded instead of updated in place"
    assert_accessible(page)
    screenshot(page, "executions")


def test_the_execution_page_draws_the_graph_timeline_and_history(
    page: Page, engine: EngineProcess, client: Client, screenshot: Callable[[Page, str], Path]
) -> None:
    client.start("release", {"version": "2.0"}, execution_id="rel-page")
    sign_in(page, engine, ALICE, then="/executions/rel-page")
    expect(page.locator("[data-testid=graph] [data-step=go_live]")).to_have_attribute(
        "data-phase", "WaitingForApproval"
    )
    graph = page.locator("[data-testid=graph]")
    assert graph.locator("[data-step=a]").get_attribute("data-phase") == "Succeeded"
    assert graph.locator("[data-step=after]").get_attribute("data-phase") == ""
    assert graph.locator("path.edge-jump").count() == 1
    assert graph.locator("path.edge-depends[data-source=b][data-target=c]").count() == 1
    flaky_bars = page.locator("[data-testid=timeline] rect[data-kind]")
    kinds = [flaky_bars.nth(i).get_attribute("data-kind") for i in range(flaky_bars.count())]
    assert "retry-wait" in kinds and "running" in kinds and "approval" in kinds
    assert "the first attempt fails" in page.locator("[data-testid=failure]").inner_text()
    assert "RuntimeError" in page.locator("[data-testid=stacktrace]").inner_text()
    history = page.locator("[data-testid=history] tbody tr")
    assert history.first.get_attribute("data-type") == "ExecutionStarted"
    types = {history.nth(i).get_attribute("data-type") for i in range(history.count())}
    assert {"StepFailed", "StepRetryAfter", "ApprovalRequested"} <= types or {
        "StepFailed",
        "ApprovalRequested",
    } <= types
    assert '"version": "2.0"' in page.locator("[data-testid=input]").inner_text()
    assert_accessible(page)
    screenshot(page, "execution")


def test_approving_from_the_page_continues_the_execution_and_records_who_approved(
    page: Page, engine: EngineProcess, client: Client
) -> None:
    client.start("release", {"version": "3.0"}, execution_id="rel-approve")
    sign_in(page, engine, ALICE, then="/executions/rel-approve")
    page.evaluate("window.__stayed = true")
    approve = page.get_by_role("button", name="Approve go_live")
    approve.wait_for(timeout=WAIT_MS)  # appears live, once the execution reaches the approval
    assert navigations(page)
    page.get_by_label("Payload (JSON, optional)").fill('{"ticket": "CHG-42"}')
    approve.click()
    expect(page.locator("[data-testid=phase] .phase")).to_have_text("Succeeded")
    granted = [e for e in client.history("rel-approve") if e.type == "ApprovalGranted"]
    assert granted[0].data["approver"] == "alice"
    assert granted[0].data["payload"] == {"ticket": "CHG-42"}
    row = page.locator("[data-testid=history] tr[data-type=ApprovalGranted]")
    assert "approver=alice" in row.inner_text()


def test_a_reader_without_the_right_to_act_sees_no_action_and_is_refused_by_the_ui_and_the_api(
    page: Page, engine: EngineProcess, client: Client, page_problems: Any
) -> None:
    client.start("release", {"version": "4.0"}, execution_id="rel-readonly")
    sign_in(page, engine, VICTOR, then="/executions/rel-readonly")
    assert page.get_by_test_id("user").inner_text() == "victor"
    assert page.get_by_text("read only", exact=True).is_visible()
    page.wait_for_selector("[data-testid=approvals]", timeout=WAIT_MS)
    assert page.get_by_role("button", name="Approve go_live").count() == 0
    assert page.get_by_role("button", name="Cancel execution").count() == 0
    page_problems.allow_status("/executions/rel-readonly/approve", 403)
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(
        f"{engine.ui_url}/executions/rel-readonly/approve",
        form={"csrf": token or "", "step": "go_live", "payload": ""},
        headers={"Origin": engine.ui_url},
    )
    assert refused.status == 403
    assert "readOnly" in refused.text()
    with Client(address=engine.address, token=VICTOR) as reader:
        with pytest.raises(PermissionDeniedError):
            reader.approve("rel-readonly", "go_live", approver="victor")
        assert reader.get("rel-readonly").phase == "WaitingForApproval"


def test_the_pages_can_be_used_with_the_keyboard_alone(page: Page, engine: EngineProcess, client: Client) -> None:
    client.start("release", {"version": "5.0"}, execution_id="rel-keys")
    sign_in(page, engine, ALICE, then="/executions")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.get_by_label("Id contains").focus()
    page.keyboard.type("rel-keys")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=rel-keys"))
    assert page.locator("table[data-testid=executions] tbody tr").count() == 1
    link = page.get_by_role("link", name="rel-keys")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{engine.ui_url}/executions/rel-keys")
    approve = page.get_by_role("button", name="Approve go_live")
    approve.wait_for(timeout=WAIT_MS)
    approve.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=phase] .phase")).to_have_text("Succeeded")


def test_filters_narrow_the_list_and_counts_follow_them(page: Page, engine: EngineProcess, client: Client) -> None:
    client.start("release", {"version": "6.0"}, execution_id="filter-me-1")
    client.start("release", {"version": "6.1"}, execution_id="filter-me-2")
    client.cancel("filter-me-2", reason="not needed")
    sign_in(page, engine, ALICE, then="/executions?q=filter-me")
    rows = page.locator("table[data-testid=executions] tbody tr[data-id]")
    assert sorted(rows.nth(i).get_attribute("data-id") or "" for i in range(rows.count())) == [
        "filter-me-1",
        "filter-me-2",
    ]
    page.get_by_role("link", name=re.compile(r"^Cancelled \d+$")).click()
    page.wait_for_url(re.compile(r"phase=Cancelled"))
    assert [rows.nth(i).get_attribute("data-id") for i in range(rows.count())] == ["filter-me-2"]
    assert page.locator("[data-testid=counts] .count[data-phase=all]").inner_text() == "2"


def test_the_workflows_page_shows_validity_and_each_workflow_its_graph(
    page: Page, engine: EngineProcess, screenshot: Callable[[Page, str], Path]
) -> None:
    sign_in(page, engine, ALICE, then="/workflows")
    assert page.locator("tr[data-workflow=release]").inner_text().count("valid") == 1
    assert_accessible(page)
    screenshot(page, "workflows")
    page.get_by_role("link", name="release", exact=True).click()
    page.wait_for_url(f"{engine.ui_url}/workflows/release")
    assert page.locator("[data-testid=graph] [data-step]").count() == 6
    assert_accessible(page)
    screenshot(page, "workflow")


def test_the_dead_letter_page_redrives_a_step_that_ran_out_of_retries(
    page: Page, engine: EngineProcess, client: Client, screenshot: Callable[[Page, str], Path]
) -> None:
    client.apply_workflow(
        "fragile",
        {"taskQueue": "test", "timeline": ["flaky"], "defaults": {"retry": {"maxAttempts": 1}}},
    )
    client.start("fragile", {}, execution_id="frag-1")
    sign_in(page, engine, ALICE, then="/dead-letters")
    expect(page.locator("[data-testid=dead-letters] tr[data-id]")).not_to_have_count(0)
    assert_accessible(page)
    screenshot(page, "dead-letters")
    page.get_by_role("button", name="Redrive flaky of frag-1").click()
    page.wait_for_url(f"{engine.ui_url}/executions/frag-1")
    client.wait("frag-1", timeout=30)
    redriven = [e for e in client.history("frag-1") if e.type == "DeadLetterRedriven"]
    assert len(redriven) == 1 and redriven[0].data["step"] == "flaky"
    runs = [e for e in client.history("frag-1") if e.type == "StepStarted"]
    assert len(runs) == 2  # the redrive ran the step again


def test_the_sign_in_page_is_accessible_and_refuses_a_wrong_token(
    page: Page, engine: EngineProcess, page_problems: Any, screenshot: Callable[[Page, str], Path]
) -> None:
    page_problems.allow_status("/login", 401)
    page.goto(f"{engine.ui_url}/login")
    assert_accessible(page)
    screenshot(page, "sign-in")
    page.get_by_label("Token").fill("nobody-has-this-token")
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.get_by_test_id("error").inner_text()
