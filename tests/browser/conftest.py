"""Browser fixtures: the system Chromium driven by Playwright, a page whose faults fail the test,
axe-core audits, screenshots, and a real `cerebelum dev` serving the web UI with real workers.

- `browser` (session): headless Chromium, /usr/bin/chromium. Missing (or Playwright missing): the
  test is skipped, and fails under CI=true.
- `page`: a new context and page per test, viewport 1280x800. Console errors, uncaught exceptions,
  4xx/5xx responses and failed requests fail the test after its body ran, unless it expects them
  (`page_problems.allow_status(url_pattern, status)`, `page_problems.allow_console(pattern)`) or
  opts out altogether with `@pytest.mark.page_errors_allowed`.
- `axe_violations(page)` and `format_violations(...)` (tests.support.browser), e.g.
  `assert not (v := axe_violations(page)), format_violations(v)`.
- `screenshot(page, name)`: docs/ui/<name>.png with CEREBELUM_UPDATE_SCREENSHOTS=1, else the test's tmp dir.
- `ui_engine` (per module, to keep the suite quick: a module's tests share its executions): a
  `cerebelum dev` on a new SQLite file with `--ui-address`; `ui_engine.ui_url` is the base URL.
  `ui_workers`: a WorkerPool of the integration tests' ledger worker on it, one worker started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import (
    VIEWPORT,
    BrowserUnavailable,
    PageProblems,
    launch_chromium,
    screenshotter,
    start_playwright,
)
from tests.support.processes import EngineProcess, WorkerPool, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

LEDGER_WORKER = Path(__file__).resolve().parents[1] / "integration" / "workers" / "ledger_worker.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


# Per module, not per session: Playwright's sync API runs an event loop in this thread while it is
# started, and every asyncio test after it would fail ("Runner.run() cannot be called from a running
# event loop"); stopped at the module's end, the loop goes with it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        playwright = start_playwright()
    except BrowserUnavailable as missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run: {missing}", pytrace=False)
        pytest.skip(f"browser tests skipped: {missing}")
    try:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Browser, page_problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    page_problems.attach(opened)
    yield opened
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that used `page` fails when the page had problems it did not expect (after its body passed)."""
    result = yield
    funcargs = getattr(item, "funcargs", {})
    problems = funcargs.get("page_problems")
    if "page" in funcargs and isinstance(problems, PageProblems) and not item.get_closest_marker("page_errors_allowed"):
        problems.check()
    return result


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], Path]:
    return screenshotter(tmp_path / "screenshots")


@pytest.fixture(scope="module")
def ui_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    directory = tmp_path_factory.mktemp("ui-engine")
    engine = EngineProcess(
        database_url=f"sqlite:///{directory / 'engine.db'}", log_path=directory / "engine.log", ui_port=free_port()
    )
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def ui_workers(ui_engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    directory = tmp_path_factory.mktemp("ui-workers")
    ledger = directory / "ledger.jsonl"
    ledger.touch()
    pool = WorkerPool(script=LEDGER_WORKER, address=ui_engine.address, ledger=ledger, log_dir=directory)
    pool.start()
    try:
        yield pool
    finally:
        pool.stop_all()
