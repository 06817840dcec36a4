"""Headless Chromium for the browser tests (tests/browser) and the UI benchmark (bench/ui.py).

The browser is Debian's (/usr/bin/chromium, installed by scripts/ensure-chromium.sh), driven by
Playwright's sync API; Playwright's own browser download is never used. What a page does wrong is
collected by `PageProblems` (console errors, uncaught exceptions, 4xx/5xx responses and requests
that failed outright), an accessibility audit is axe-core's (ui/node_modules, `npm ci` by
scripts/setup.sh), and screenshots go to docs/ui only when asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module is imported before knowing whether Playwright is installed
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response, ViewportSize

__all__ = [
    "AXE",
    "CHROMIUM",
    "LAUNCH_ARGS",
    "VIEWPORT",
    "BrowserUnavailable",
    "PageProblems",
    "axe_violations",
    "format_violations",
    "launch_chromium",
    "missing_browser",
    "screenshot_path",
    "screenshotter",
    "start_playwright",
]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "ui"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The rest keep Chromium
# from reaching out at start (this machine's network is closed: every attempt is a refused
# connection and a delay) and from doing work a test does not measure.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
)


class BrowserUnavailable(RuntimeError):
    """Playwright, the system Chromium or axe-core is not installed."""


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (the dev extra; source scripts/setup.sh)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh as root (scripts/test does)"
    return None


def start_playwright() -> Playwright:
    """Playwright's sync API, started (stop it with `.stop()`); BrowserUnavailable if it cannot run."""
    reason = missing_browser()
    if reason:
        raise BrowserUnavailable(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright().start()


def launch_chromium(playwright: Playwright) -> Browser:
    """The system Chromium, headless."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(LAUNCH_ARGS))


@dataclass
class Allowance:
    """A problem a test expects: a response status for URLs matching a pattern, or console text."""

    pattern: re.Pattern[str]
    status: int | None = None  # None: a console message
    seen: int = 0


@dataclass
class PageProblems:
    """What went wrong on a page while a test drove it; `check()` raises if anything unexpected did.

    A test that expects a 404 says so with `allow_status("/executions/nope", 404)`, a console message
    with `allow_console("...")` (regular expressions, searched); `clear()` forgets what was seen.
    """

    problems: list[str] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)
    _answered: set[int] = field(default_factory=set)  # requests whose response was judged (by id)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add(f"uncaught exception: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)

    def allow_status(self, url_pattern: str, status: int) -> None:
        self.allowances.append(Allowance(re.compile(url_pattern), status))

    def allow_console(self, text_pattern: str) -> None:
        self.allowances.append(Allowance(re.compile(text_pattern)))

    def clear(self) -> None:
        self.problems.clear()

    def check(self) -> None:
        if self.problems:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            raise AssertionError(f"the page had {len(self.problems)} unexpected problem(s):\n{listed}")

    def _add(self, problem: str) -> None:
        self.problems.append(problem)

    def _allowed(self, text: str, status: int | None) -> bool:
        for allowance in self.allowances:
            if allowance.status == status and allowance.pattern.search(text):
                allowance.seen += 1
                return True
        return False

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        location = message.location
        where = f" ({location.get('url', '')}:{location.get('lineNumber', '')})" if location else ""
        text = message.text
        # Chromium logs every 4xx/5xx response on the console too; the response handler judges those.
        if text.startswith("Failed to load resource: the server responded with a status of"):
            return
        if not self._allowed(text, None):
            self._add(f"console error: {text}{where}")

    def _response(self, response: Response) -> None:
        self._answered.add(id(response.request))
        if response.status >= 400 and not self._allowed(response.url, response.status):
            self._add(f"{response.request.method} {response.url} -> {response.status} {response.status_text}")

    def _request_failed(self, request: Request) -> None:
        if id(request) in self._answered:
            return  # Chromium aborts a subresource that got an error status: judged by its response already
        failure = request.failure or "failed"
        if "ERR_ABORTED" in failure and request.resource_type in ("document", "fetch", "eventsource"):
            # A navigation replaced by another (a redirect the page made, a click), or a page's
            # fetch or event stream cut short by leaving the page: not a fault.
            return
        if not self._allowed(request.url, 0):
            self._add(f"{request.method} {request.url} failed: {failure}")


def axe_violations(page: Page, *, tags: Sequence[str] = ("wcag2a", "wcag2aa")) -> list[dict[str, Any]]:
    """axe-core's violations of the rules with these tags on the page as it is now.

    axe is evaluated through the DevTools protocol, not added as a <script>: a page whose Content
    Security Policy forbids inline scripts (as the engine's UI should) is audited all the same.
    """
    if not AXE.exists():
        raise BrowserUnavailable(f"{AXE} is missing: `source scripts/setup.sh` runs npm ci in ui/")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async (tags) => (await window.axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations",
        list(tags),
    )
    return list(result)


def format_violations(violations: Iterable[dict[str, Any]]) -> str:
    """axe's violations for an assertion message: rule, impact, help, and the elements at fault."""
    lines: list[str] = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation.get('impact')}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation.get("nodes", [])[:5]:
            target = " ".join(str(part) for part in node.get("target", []))
            lines.append(f"    {target}: {node.get('html', '')[:160]}")
            summary = (node.get("failureSummary") or "").strip().replace("\n", " / ")
            if summary:
                lines.append(f"      {summary[:300]}")
        more = len(violation.get("nodes", [])) - 5
        if more > 0:
            lines.append(f"    ... and {more} more")
    return "\n".join(lines) if lines else "no violations"


def screenshot_path(name: str, fallback: Path) -> Path:
    """docs/ui/<name>.png when CEREBELUM_UPDATE_SCREENSHOTS=1, else <fallback>/<name>.png (CI never
    writes into the tree)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '.', '_' and '-'")
    directory = SCREENSHOTS if os.environ.get("CEREBELUM_UPDATE_SCREENSHOTS") == "1" else fallback
    return directory / f"{name}.png"


def screenshotter(fallback: Path) -> Callable[[Page, str], Path]:
    """`screenshot(page, name)` writing where `screenshot_path` says; returns the file's path."""

    def screenshot(page: Page, name: str) -> Path:
        path = screenshot_path(name, fallback)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=False, animations="disabled", caret="hide")
        return path

    return screenshot
