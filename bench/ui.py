"""The UI benchmark: how fast each engine's web UI shows a big store, in headless Chromium.

    python bench/ui.py --system cerebelum --out result.json [--quick]
    python bench/ui.py --system temporal --out result.json [--quick]

Both systems get the same data: 100,000 executions and one execution whose history has at least
10,000 events (--quick: 2,000 and 1,000, and two loads of each page). Then Debian's Chromium
(/usr/bin/chromium, driven by Playwright; scripts/ensure-chromium.sh) loads two pages five times
each, every load in a fresh browser context (an empty cache: what a user opening a link sees), and
the median is kept of:

- fcp_ms: the page's first contentful paint (the Paint Timing API), from navigation start;
- ready_ms: from navigation start until the frame after the readiness selector first matched a
  visible element is painted (and not before the first contentful paint): the data is on screen,
  not a spinner;
- html_kb: the HTML document's bytes on the wire (headers and body, as Resource Timing's transferSize
  gives); total_kb: every response's bytes on the wire (the document, scripts, styles and API calls)
  by the time the page was ready.

Cerebelum: the store is seeded through the engine's gRPC API by a `cerebelum dev` of its own:
99,999 StartExecution calls (128 in flight) of a workflow whose only step is a 24-hour timer (the
executions stay Sleeping; no worker is involved), and one execution of a forEach over 10,000 items
run by a real worker process (bench/cerebelum_worker.py): about 10,007 events. A second `cerebelum
dev --ui-address` then serves the UI on that store; pages `/executions` and `/executions/<id>`,
ready when `main[data-ready=true]` is visible. Until the engine has --ui-address, the result says
so and carries the seeding figures.

Temporal: `temporal server start-dev` (bench/peers/install-temporal.sh; its web UI is the
temporalio/ui-server the CLI embeds, on --ui-port) on a SQLite file, seeded with the temporalio
client: 99,999 StartWorkflowExecution calls (200 in flight) of a workflow type no worker serves, so
they stay Running, and one workflow sent 10,000 signals (10,002 events). The store runs with WAL and
synchronous=off: with its default settings the dev server started about 23 workflows a second here
(100,000 would take 70 minutes), with these about 240; how durable the seed is does not matter to
the pages measured. Pages: the namespace's workflow list and that workflow's history; the readiness
selectors are in TEMPORAL_READY below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE / "peers"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench.common import Result  # noqa: E402
from tests.support.browser import VIEWPORT, launch_chromium, start_playwright  # noqa: E402
from tests.support.processes import EngineProcess, free_port  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser

LOADS = 5
CEREBELUM_READY = "main[data-ready=true]"
# Temporal's UI is a single-page app: its HTML is a shell, the data comes from API calls made by
# its scripts. Ready means the data is drawn: a row of the workflows table, an event of the history.
TEMPORAL_READY = {
    "list": "[data-testid=workflows-summary-configurable-table-row]",
    "history": "[data-testid=event-summary-row]",
}
SLEEPER = "ui-sleeper"
BIG = "ui-history"
TEMPORAL_TASK_QUEUE = "ui-bench"  # no worker polls it: the workflows stay Running


@dataclass(frozen=True)
class Sizes:
    executions: int
    history_items: int  # forEach items (Cerebelum) or signals (Temporal): one event each
    loads: int = LOADS  # cold loads of each page


FULL = Sizes(100_000, 10_000)
QUICK = Sizes(2_000, 1_000, 2)


def progress(message: str) -> None:
    print(f"ui {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


# -- measuring a page ---------------------------------------------------------------------------------------
# Runs in every document before its own scripts (through the DevTools protocol, so a Content
# Security Policy does not stop it): the first time the selector matches a visible element, the
# time once the next frame is painted is the page's readiness.
READY_PROBE = """
(() => {
  const selector = %s;
  let matched = false;
  const check = () => {
    if (matched) return;
    const element = document.querySelector(selector);
    if (!element || !element.checkVisibility()) return;
    matched = true;
    // A task queued from the next frame's callback runs once that frame is painted.
    requestAnimationFrame(() => setTimeout(() => { window.__benchReadyAt = performance.now(); }, 0));
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true});
  const poll = () => { check(); if (!matched) requestAnimationFrame(poll); };
  requestAnimationFrame(poll);
})();
"""
READINGS = """
() => {
  const navigation = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {
    // Chromium may run a frame's callbacks before it paints anything (a long document still being
    // parsed): what is shown is shown at the first contentful paint at the earliest.
    ready_ms: Math.max(window.__benchReadyAt, fcp.startTime),
    fcp_ms: fcp.startTime,
    html_bytes: navigation.transferSize,
    total_bytes: navigation.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    requests: 1 + resources.length,
  };
}
"""


def measure_page(browser: Browser, url: str, selector: str, *, loads: int = LOADS) -> dict[str, float]:
    """The medians over `loads` cold loads of `url` (fresh context each) of fcp_ms, ready_ms, html_kb, total_kb."""
    readings: list[dict[str, float]] = []
    for _ in range(loads):
        context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
        try:
            context.add_init_script(script=READY_PROBE % json.dumps(selector))
            page = context.new_page()
            page.goto(url, wait_until="commit", timeout=120_000)
            try:
                page.wait_for_function("() => window.__benchReadyAt !== undefined", timeout=120_000, polling=50)
            except Exception as error:
                raise RuntimeError(f"{url}: {selector!r} never became visible ({error})") from error
            page.wait_for_function(
                "() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=30_000
            )
            readings.append(page.evaluate(READINGS))
        finally:
            context.close()
    return {
        "fcp_ms": round(statistics.median(r["fcp_ms"] for r in readings), 1),
        "ready_ms": round(statistics.median(r["ready_ms"] for r in readings), 1),
        "html_kb": round(statistics.median(r["html_bytes"] for r in readings) / 1024, 1),
        "total_kb": round(statistics.median(r["total_bytes"] for r in readings) / 1024, 1),
        "requests": int(statistics.median(r["requests"] for r in readings)),
    }


def measure_pages(pages: Sequence[tuple[str, str, str]], *, loads: int) -> dict[str, float]:
    """Each (prefix, url, selector) measured; figures named <prefix>_<figure>."""
    figures: dict[str, float] = {}
    playwright = start_playwright()
    try:
        browser = launch_chromium(playwright)
        try:
            for prefix, url, selector in pages:
                progress(f"measuring {url} ({loads} cold loads, ready at {selector})")
                measured = measure_page(browser, url, selector, loads=loads)
                figures.update({f"{prefix}_{key}": value for key, value in measured.items()})
        finally:
            browser.close()
    finally:
        playwright.stop()
    return figures


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = action()
    return value, round(time.perf_counter() - began, 1)


# -- Cerebelum ----------------------------------------------------------------------------------------------
def ui_supported() -> bool:
    """Whether this engine's `cerebelum dev` serves the web UI (--ui-address)."""
    shown = subprocess.run(
        [sys.executable, "-m", "cerebelum_operator.cli", "dev", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    return "--ui-address" in shown.stdout


def seed_cerebelum(database_url: str, work: Path, sizes: Sizes) -> tuple[str, dict[str, Any]]:
    """Fill a new store through a `cerebelum dev` of its own; (the big execution's id, figures)."""
    from sqlalchemy import create_engine, text

    from bench.cerebelum_runner import MAX_FOR_EACH_CONCURRENCY, start_many, workers
    from cerebelum import Client

    engine = EngineProcess(database_url=database_url, log_path=work / "seed-engine.log")
    engine.start()
    try:
        with Client(address=engine.address) as client:
            client.apply_workflow(
                SLEEPER, {"taskQueue": "bench", "timeline": ["wait"], "steps": {"wait": {"timer": {"duration": "24h"}}}}
            )
            client.apply_workflow(
                BIG,
                {
                    "taskQueue": "bench",
                    "timeline": ["items", "each"],
                    "steps": {
                        "each": {
                            "function": "item_step",
                            "forEach": {"items": "steps.items", "concurrency": MAX_FOR_EACH_CONCURRENCY},
                            "args": {"value": "item"},
                        }
                    },
                },
            )
            progress(f"a forEach over {sizes.history_items} items, run by a worker process")
            with workers(engine.address, 1):

                def run_big() -> str:
                    started = client.start(BIG, {"count": sizes.history_items})
                    final = client.wait(started.id, timeout=900)
                    if final.phase != "Succeeded":
                        raise RuntimeError(f"{BIG} ended {final.phase}: {final.error}")
                    return started.id

                big_id, big_s = timed(run_big)
        sleepers = sizes.executions - 1  # with the big one: sizes.executions in all
        progress(f"{sleepers} executions of a one-timer-step workflow through StartExecution")
        _, start_s = timed(lambda: asyncio.run(start_many(engine.address, SLEEPER, [{}] * sleepers, concurrency=128)))
    finally:
        engine.stop()
    store = create_engine(database_url)
    try:
        with store.connect() as conn:
            count_events = text("SELECT count(*) FROM events WHERE execution_id = :id")
            events = int(conn.execute(count_events, {"id": big_id}).scalar_one())
            executions = int(conn.execute(text("SELECT count(*) FROM executions")).scalar_one())
    finally:
        store.dispose()
    figures = {
        "executions": executions,
        "history_events": events,
        "seed_s": round(start_s + big_s, 1),
        "seed_start_s": start_s,
        "seed_history_s": big_s,
    }
    progress(f"seeded: {figures}")
    return big_id, figures


def run_cerebelum(sizes: Sizes, work: Path) -> Result:
    database_url = f"sqlite:///{work / 'engine.db'}"
    big_id, figures = seed_cerebelum(database_url, work, sizes)
    label = "SQLite (file, WAL, synchronous=NORMAL)"
    seeding = (
        f"seeded through gRPC by its own engine: {figures['executions'] - 1:,} StartExecution calls (128 in flight)"
        f" of a one-timer-step workflow ({figures['seed_start_s']} s, all Sleeping), and a forEach over"
        f" {sizes.history_items:,} items run by one worker process ({figures['seed_history_s']} s,"
        f" {figures['history_events']:,} events)"
    )
    if not ui_supported():
        return Result(
            "Cerebelum",
            _cerebelum_version(),
            label,
            "ui",
            figures,
            seeding,
            unsupported="this engine's `cerebelum dev` has no --ui-address: it serves no web UI yet",
        )
    engine = EngineProcess(database_url=database_url, log_path=work / "ui-engine.log", ui_port=free_port())
    engine.start()
    try:
        figures |= measure_pages(
            [
                ("list", f"{engine.ui_url}/executions", CEREBELUM_READY),
                ("exec", f"{engine.ui_url}/executions/{big_id}", CEREBELUM_READY),
            ],
            loads=sizes.loads,
        )
    finally:
        engine.stop()
    notes = (
        f"{seeding}; then `cerebelum dev --ui-address` on that store: /executions and /executions/<the big one>,"
        f" median of {sizes.loads} cold loads, ready at `{CEREBELUM_READY}` visible (server-rendered)"
    )
    return Result("Cerebelum", _cerebelum_version(), label, "ui", figures, notes)


def _cerebelum_version() -> str:
    from importlib.metadata import version

    return f"cerebelum-operator {version('cerebelum-operator')}"


# -- Temporal -----------------------------------------------------------------------------------------------
async def _visible_count(client: Any, *, expected: int, bound_s: float = 120.0) -> int:
    """Temporal's visibility store trails its starts: wait until it lists them all (or the bound)."""
    deadline = time.monotonic() + bound_s
    while True:
        count = int((await client.count_workflows()).count)
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


async def seed_temporal(address: str, sizes: Sizes) -> tuple[str, dict[str, Any]]:
    """Start the executions and signal the big one; (its run id, figures)."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    client = await Client.connect(address)
    big = await client.start_workflow("UiBenchWorkflow", id=BIG, task_queue=TEMPORAL_TASK_QUEUE)
    gate = asyncio.Semaphore(50)

    async def signal(index: int) -> None:
        async with gate:
            await big.signal("tick", index)

    progress(f"{sizes.history_items} signals to one workflow")
    began = time.perf_counter()
    await asyncio.gather(*(signal(i) for i in range(sizes.history_items)))
    big_s = round(time.perf_counter() - began, 1)

    progress(f"{sizes.executions - 1} more workflows through StartWorkflowExecution")
    start_gate = asyncio.Semaphore(200)

    async def start(index: int) -> None:
        async with start_gate:
            await client.start_workflow("UiBenchWorkflow", id=f"ui-{index:06d}", task_queue=TEMPORAL_TASK_QUEUE)

    began = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(sizes.executions - 1)))
    start_s = round(time.perf_counter() - began, 1)
    history = await big.fetch_history()
    signalled = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    if signalled != sizes.history_items:
        raise RuntimeError(f"{BIG} has {signalled} signals, not {sizes.history_items}")
    count = await _visible_count(client, expected=sizes.executions)
    figures = {
        "executions": count,
        "history_events": len(history.events),
        "seed_s": round(start_s + big_s, 1),
        "seed_start_s": start_s,
        "seed_history_s": big_s,
    }
    progress(f"seeded: {figures}")
    return str(big.first_execution_run_id), figures


def run_temporal(sizes: Sizes, work: Path) -> Result:
    from temporal_peer import DevServer, describe_versions, install_temporal, spawn, stop_all_children, tail

    binary = install_temporal()
    server = DevServer(binary, work)
    ui_port = free_port()
    command = [
        str(binary),
        *("server", "start-dev", "--db-filename", str(server.database)),
        *("--ip", "127.0.0.1", "--port", str(server.port), "--ui-port", str(ui_port)),
        *("--log-level", "error"),
        # Its default SQLite settings commit at about 23 starts a second here (100,000 would take 70 minutes);
        # WAL without fsync, 240 a second. How durable the seed is does not matter to the pages measured.
        *("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=off"),
    ]
    try:
        server.process = spawn(command, server.log)
        asyncio.run(_connected(server))
        ui = f"http://127.0.0.1:{ui_port}"
        _wait_http(ui, server)
        run_id, figures = asyncio.run(seed_temporal(server.address, sizes))
        figures |= measure_pages(
            [
                ("list", f"{ui}/namespaces/default/workflows", TEMPORAL_READY["list"]),
                ("exec", f"{ui}/namespaces/default/workflows/{BIG}/{run_id}/history", TEMPORAL_READY["history"]),
            ],
            loads=sizes.loads,
        )
    except Exception as error:
        raise RuntimeError(f"{error}\nserver log:\n{tail(server.log)}") from error
    finally:
        stop_all_children()
    notes = (
        f"the CLI's dev server (SQLite file, WAL, synchronous=off) and its embedded web UI; seeded with the temporalio"
        f" client: {figures['executions'] - 1:,} StartWorkflowExecution calls (200 in flight) of a workflow"
        f" type no worker polls (all Running; {figures['seed_start_s']} s) and {sizes.history_items:,} signals"
        f" to one more ({figures['seed_history_s']} s, {figures['history_events']:,} events); its workflow list"
        f" and that workflow's history page, median of {sizes.loads} cold loads, ready at"
        f" `{TEMPORAL_READY['list']}` and `{TEMPORAL_READY['history']}` visible"
    )
    return Result("Temporal", describe_versions(binary), "SQLite (file, WAL, synchronous=off)", "ui", figures, notes)


async def _connected(server: Any) -> None:
    client = await server.connect()
    del client


def _wait_http(url: str, server: Any, *, within: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise RuntimeError(f"Temporal's web UI did not answer at {url}")
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=("cerebelum", "temporal"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="2,000 executions and a 1,000-event history")
    parser.add_argument("--scenario", choices=("ui",), default="ui", help="the only one (bench/run.py passes it)")
    parser.add_argument("--store", choices=("sqlite",), default="sqlite", help="both run on SQLite here")
    parser.add_argument("--executions", type=int, default=None, help="override the number of executions")
    parser.add_argument("--keep", action="store_true", help="keep the stores and logs (their folder is printed)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.executions:
        sizes = Sizes(args.executions, sizes.history_items, sizes.loads)
    work = Path(tempfile.mkdtemp(prefix=f"bench-ui-{args.system}-"))
    progress(f"working in {work}")
    began = time.perf_counter()
    try:
        result = run_cerebelum(sizes, work) if args.system == "cerebelum" else run_temporal(sizes, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    progress(f"{args.system} took {time.perf_counter() - began:.0f} s: {result.unsupported or result.figures}")
    result.write(args.out)
    print(json.dumps(result.figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
