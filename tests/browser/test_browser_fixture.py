"""The browser fixtures themselves, on tiny pages served from a thread (no engine, no UI needed).

Every page is served with a strict Content Security Policy (no inline scripts), as the engine's UI
should be: axe is injected all the same, and an inline script shows up as a console error.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import ROOT, PageProblems, axe_violations, format_violations, screenshot_path
from tests.support.processes import EngineProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

HEAD = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
HEAD += '<link rel="icon" href="data:,">{extra}</head>'
PAGES = {
    "clean.html": HEAD.format(title="Clean", extra="")
    + '<body><main data-ready="true"><h1>Executions</h1><p>Nothing wrong here.</p></main></body></html>',
    "no-alt.html": HEAD.format(title="No alt", extra="")
    + '<body><main><h1>Graph</h1><img src="pixel.png" width="10" height="10"></main></body></html>',
    "console-error.html": HEAD.format(title="Console", extra='<script src="broken.js"></script>')
    + "<body><main><h1>Console</h1></main></body></html>",
    "inline-script.html": HEAD.format(title="Inline", extra="<script>document.title = 'x'</script>")
    + "<body><main><h1>Inline</h1></main></body></html>",
    "missing-style.html": HEAD.format(title="Missing", extra='<link rel="stylesheet" href="gone.css">')
    + "<body><main><h1>Missing</h1></main></body></html>",
    "broken.js": "console.error('the graph failed to render');\n",
}
# The smallest valid PNG (one transparent pixel), so the <img> loads and only its alt is missing.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class StrictHandler(SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    for name, text in PAGES.items():
        (root / name).write_text(text)
    (root / "pixel.png").write_bytes(PIXEL)
    (root / "root.txt").write_text(str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(StrictHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_clean_page_has_no_violations_and_no_problems(page: Page, page_problems: PageProblems, site: str) -> None:
    page.goto(f"{site}/clean.html")
    page.locator("main[data-ready=true]").wait_for()
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page_problems.check()


def test_axe_finds_an_image_without_alt_text(page: Page, site: str) -> None:
    page.goto(f"{site}/no-alt.html")
    violations = axe_violations(page)
    assert [v["id"] for v in violations] == ["image-alt"], format_violations(violations)
    message = format_violations(violations)
    assert "image-alt (critical)" in message and '<img src="pixel.png"' in message, message


def test_a_console_error_and_an_inline_script_blocked_by_the_policy_are_problems(
    page: Page, page_problems: PageProblems, site: str
) -> None:
    page.goto(f"{site}/console-error.html")
    with pytest.raises(AssertionError, match="the graph failed to render"):
        page_problems.check()
    page_problems.clear()
    page.goto(f"{site}/inline-script.html")
    with pytest.raises(AssertionError, match="Content Security Policy"):
        page_problems.check()
    page_problems.clear()  # else the test itself fails after its body: that is the next test


@pytest.mark.page_errors_allowed
def test_a_missing_resource_is_a_problem_unless_expected(page: Page, page_problems: PageProblems, site: str) -> None:
    page.goto(f"{site}/missing-style.html")
    with pytest.raises(AssertionError, match=r"GET .*/gone\.css -> 404"):
        page_problems.check()
    page_problems.clear()
    page_problems.allow_status(r"/gone\.css$", 404)
    page.reload()
    page_problems.check()
    assert page_problems.allowances[0].seen == 1


def test_an_unexpected_problem_fails_the_test_after_its_body(tmp_path: Path) -> None:
    """The fixture's own check, seen from outside: a test whose page logs an error fails; one that opts out passes."""
    (tmp_path / "conftest.py").write_text("from tests.browser.conftest import *  # noqa: F403\n")
    (tmp_path / "test_outside.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_logs(page):
                page.set_content("<main><h1>x</h1></main>")
                page.evaluate("console.error('boom')")

            @pytest.mark.page_errors_allowed
            def test_logs_and_opts_out(page):
                page.set_content("<main><h1>x</h1></main>")
                page.evaluate("console.error('boom')")
            """
        )
    )
    finished = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-c", os.devnull, "--rootdir", str(tmp_path), "-o", "markers=page_errors_allowed", str(tmp_path)),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert "1 failed, 1 passed" in finished.stdout, finished.stdout[-3000:] + finished.stderr[-2000:]
    assert "console error: boom" in finished.stdout


def test_screenshots_go_to_the_tmp_dir_unless_updating(
    page: Page, screenshot: Callable[[Page, str], Path], site: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CEREBELUM_UPDATE_SCREENSHOTS", raising=False)
    page.goto(f"{site}/clean.html")
    path = screenshot(page, "clean-page")
    assert path.parent.is_relative_to(tmp_path) and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setenv("CEREBELUM_UPDATE_SCREENSHOTS", "1")
    assert screenshot_path("clean-page", tmp_path).parts[-3:] == ("docs", "ui", "clean-page.png")


def test_an_engine_with_a_ui_port_asks_for_the_ui_and_waits_for_its_healthz(site: str, tmp_path: Path) -> None:
    """EngineProcess(ui_port=...), which `ui_engine` starts: its command and its readiness probe (on the
    tiny site, which has /healthz only once the test writes it)."""
    port = int(site.rsplit(":", 1)[1])
    engine = EngineProcess(database_url="sqlite:///unused.db", log_path=tmp_path / "engine.log", ui_port=port)
    command = engine.command()
    assert command[command.index("--ui-address") + 1] == f"127.0.0.1:{port}"
    assert engine.ui_url == site
    assert not engine.ui_serving(0.2)  # 404 until the file exists
    root = Path(urllib.request.urlopen(f"{site}/root.txt").read().decode())
    (root / "healthz").write_text("ok\n")
    assert engine.ui_serving(5)
    without = EngineProcess(database_url="x", log_path=tmp_path / "e.log").command()
    assert without[without.index("--ui-address") + 1] == "off"  # engines of a test run never race for 7451
