"""The web UI over HTTP against a real `cerebelum dev`: who may read and act, forms from other sites, live notices.

What a browser renders is tested in tests/browser; this checks the rules behind every page,
as any HTTP client meets them.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cerebelum import Client
from cerebelum.errors import PermissionDeniedError
from tests.support.processes import EngineProcess, free_port
from tests.support.web import CSRF, ui_request

ALICE = "alice-token-0123456789abcdef"
VICTOR = "victor-token-0123456789abcdef"
MALLORY = "mallory-token-0123456789abcdef"
APPROVAL = {"timeline": ["go_live"], "steps": {"go_live": {"approval": {"timeout": "1h"}}}}


@dataclass
class Ui:
    engine: EngineProcess
    port: int

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        cookie: str | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        return ui_request(self.port, method, path, bearer=token, cookie=cookie, form=form, headers=headers)

    def csrf(self, path: str, *, token: str) -> str:
        status, _, page = self.request("GET", path, token=token)
        assert status == 200, page
        match = CSRF.search(page)
        assert match, "the page has no form token"
        return match.group(1)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Ui]:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"token": ALICE, "user": "alice", "groups": ["operators"]},
                    {"token": VICTOR, "user": "victor", "groups": ["viewers"]},
                    {"token": MALLORY, "user": "mallory"},
                ]
            }
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "workers": [{"subjects": ["alice"], "namespaces": ["*"], "queues": ["*"]}],
                "clients": [
                    {"subjects": ["group:operators"]},
                    {"subjects": ["group:viewers"], "readOnly": True},
                ],
            }
        )
    )
    port = free_port()
    engine = EngineProcess(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        log_path=tmp_path / "engine.log",
        ui_port=port,  # start() waits for the UI's /healthz too
        extra_args=("--tokens", str(tokens), "--access-policy", str(policy)),
    )
    engine.start()
    try:
        with Client(address=engine.address, token=ALICE) as client:
            client.apply_workflow("release", APPROVAL)
            client.start("release", {"version": "1.2"}, execution_id="rel-1")
        yield Ui(engine, port)
    finally:
        engine.stop()


def test_a_page_without_a_token_sends_the_browser_to_sign_in(ui: Ui) -> None:
    status, headers, _ = ui.request("GET", "/executions/rel-1")
    assert status == 303
    assert headers["location"] == "/login?next=/executions/rel-1"
    status, _, page = ui.request("GET", "/login")
    assert status == 200 and 'name="token"' in page


def test_signing_in_sets_an_http_only_strict_cookie_and_a_wrong_token_is_refused(ui: Ui) -> None:
    status, _, page = ui.request("POST", "/login", form={"token": "not-a-token-of-anyone", "next": "/executions"})
    assert status == 401 and "not valid" in page
    status, headers, _ = ui.request("POST", "/login", form={"token": ALICE, "next": "//evil.example/"})
    assert status == 303 and headers["location"] == "/executions"  # never off this site
    cookie = headers["set-cookie"]
    assert f"cerebelum_token={ALICE}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, page = ui.request("GET", "/executions", cookie=ALICE)
    assert status == 200 and "rel-1" in page and ">alice<" in page


def test_someone_the_policy_does_not_name_cannot_sign_in(ui: Ui) -> None:
    status, _, page = ui.request("POST", "/login", form={"token": MALLORY, "next": "/"})
    assert status == 401 and "mallory" in page and "may not use the UI" in page
    status, _, _ = ui.request("GET", "/executions", token=MALLORY)
    assert status == 403


def test_a_read_only_viewer_sees_no_action_and_the_action_is_refused_by_the_ui_and_by_the_api(ui: Ui) -> None:
    status, _, page = ui.request("GET", "/executions/rel-1", token=VICTOR)
    assert status == 200 and "read only" in page
    assert "/approve" not in page and "/cancel" not in page
    csrf = _csrf_of_viewer(ui, VICTOR)
    status, _, page = ui.request(
        "POST", "/executions/rel-1/approve", token=VICTOR, form={"csrf": csrf, "step": "go_live", "payload": ""}
    )
    assert status == 403 and "readOnly" in page
    with Client(address=ui.engine.address, token=VICTOR) as client:
        with pytest.raises(PermissionDeniedError, match="'victor' may not call Approve"):
            client.approve("rel-1", "go_live", approver="victor")
        assert client.get("rel-1").phase == "WaitingForApproval"


def _csrf_of_viewer(ui: Ui, token: str) -> str:
    """A read-only page shows no action form; its sign-out form carries the token (signed in by cookie)."""
    status, _, page = ui.request("GET", "/executions", cookie=token)
    assert status == 200
    match = CSRF.search(page)
    assert match
    return match.group(1)


def test_approving_records_the_signed_in_user_whatever_name_the_form_claims(ui: Ui) -> None:
    csrf = ui.csrf("/executions/rel-1", token=ALICE)
    status, headers, body = ui.request(
        "POST",
        "/executions/rel-1/approve",
        token=ALICE,
        form={"csrf": csrf, "step": "go_live", "payload": '{"ticket": "CHG-1"}', "approver": "someone-else"},
    )
    assert status == 303, body
    assert headers["location"] == "/executions/rel-1#steps"
    with Client(address=ui.engine.address, token=ALICE) as client:
        done = client.wait("rel-1", timeout=30)
        granted = [e for e in client.history("rel-1") if e.type == "ApprovalGranted"]
    assert done.phase == "Succeeded"
    assert granted[0].data["approver"] == "alice" and granted[0].data["payload"] == {"ticket": "CHG-1"}


def test_a_form_without_the_page_token_or_from_another_site_is_refused(ui: Ui) -> None:
    status, _, page = ui.request("POST", "/executions/rel-1/cancel", token=ALICE, form={"reason": "x"})
    assert status == 403 and "stale or from another site" in page
    csrf = ui.csrf("/executions/rel-1", token=ALICE)
    status, _, page = ui.request(
        "POST",
        "/executions/rel-1/cancel",
        token=ALICE,
        form={"csrf": csrf, "reason": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403 and "evil.example" in page
    with Client(address=ui.engine.address, token=ALICE) as client:
        assert client.get("rel-1").phase == "WaitingForApproval"


def test_a_form_token_is_bound_to_its_caller(ui: Ui) -> None:
    victors = _csrf_of_viewer(ui, VICTOR)
    status, _, _ = ui.request("POST", "/executions/rel-1/cancel", token=ALICE, form={"csrf": victors})
    assert status == 403


def test_a_loopback_ui_answers_only_loopback_host_names(ui: Ui) -> None:
    status, _, _ = ui.request("GET", "/executions", token=ALICE, headers={"Host": "rebound.evil.example"})
    assert status == 421
    status, _, _ = ui.request("GET", "/executions", token=ALICE, headers={"Host": f"localhost:{ui.port}"})
    assert status == 200


def test_every_answer_carries_a_strict_content_security_policy(ui: Ui) -> None:
    for path in ("/executions", "/executions/rel-1", "/workflows", "/dead-letters", "/login"):
        _, headers, _ = ui.request("GET", path, token=ALICE)
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_user_text_is_shown_as_text_never_as_markup(ui: Ui) -> None:
    with Client(address=ui.engine.address, token=ALICE) as client:
        client.start("release", {"note": "<script>alert(1)</script>"}, execution_id="rel-xss")
    status, _, page = ui.request("GET", "/executions/rel-xss", token=ALICE)
    assert status == 200
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_unknown_execution_is_a_404_page_naming_it(ui: Ui) -> None:
    status, _, page = ui.request("GET", "/executions/nope", token=ALICE)
    assert status == 404 and "nope" in page


def test_the_change_stream_tells_an_open_page_when_its_execution_moves(ui: Ui) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=30)
    connection.request("GET", "/events?execution=rel-1", headers={"Authorization": f"Bearer {ALICE}"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    received: list[str] = []

    def read() -> None:
        while not any(line.startswith("event: changed") for line in received):
            line = response.readline().decode()
            if not line:
                return
            received.append(line)

    assert response.readline() == b"retry: 3000\n"
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with Client(address=ui.engine.address, token=ALICE) as client:
        client.pause("rel-1", reason="look at it")
    reader.join(timeout=30)
    connection.close()
    assert any(line.startswith("event: changed") for line in received), received
