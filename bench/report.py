"""Turn the runners' results into docs/benchmarks.md: the machine, a table and a chart per scenario, targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.common import Result

__all__ = ["write_report"]


@dataclass(frozen=True)
class Column:
    figure: str
    title: str


@dataclass(frozen=True)
class Scenario:
    title: str
    shape: str
    columns: tuple[Column, ...]
    charted: tuple[str, ...]  # figures drawn as bars
    unit: str
    lower_is_better: bool
    # More lines under the table for one result (a table of its own, when a row cannot say it all).
    detail: Callable[[Result], list[str]] | None = None


def _scale_out_detail(result: Result) -> list[str]:
    """One row per number of replicas: steps/s, the ratio, and the CPU per step of each process."""
    per: dict[str, Any] = result.figures.get("per_replicas") or {}
    if not per:
        return []

    def ms(value: object) -> str:
        return "" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]

    lines = [
        "| replicas | shards each | steps/s | ratio to 1 | wall s | CPU ms per step: engines | workers | PostgreSQL"
        " | clients | total | forwarded run: steps/s | cost % | starts forwarded | extra CPU ms per forwarded"
        " | idle, p50 ms: start local / forwarded | read local / forwarded |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, both in per.items():
        direct, forwarded = both["direct"], both["forwarded"]
        cpu = direct["cpu_ms_per_step"]
        engines = " + ".join(ms(v) for k, v in cpu.items() if k.startswith("engine"))
        workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
        hop = both.get("idle_hop_p50_ms") or {}
        starts = f"{ms(hop.get('start_local')) or '-'} / {ms(hop.get('start_forwarded')) or '-'}"
        reads = f"{ms(hop.get('get_local')) or '-'} / {ms(hop.get('get_forwarded')) or '-'}"
        cells = [
            n,
            "+".join(str(s) for s in both["shards"]),
            _cell(direct["steps_per_s"]),
            f"{direct['ratio']:.2f}",
            _cell(direct["wall_s"]),
            engines,
            ms(workers),
            ms(cpu.get("postgres")) or "-",
            ms(cpu.get("clients")),
            ms(direct["cpu_ms_per_step_total"]),
            _cell(forwarded["steps_per_s"]),
            _cell(forwarded["cost_pct"]),
            f"{forwarded['forwarded']:.0f} of {result.figures['executions']}",
            ms(forwarded.get("extra_cpu_ms_per_forwarded")) or "-",
            starts,
            reads,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "CPU ms per step: CPU seconds each process used during the run (user + system, from /proc; PostgreSQL's"
        " whole server: its backends, WAL writer and checkpointer) divided by the run's steps; the engines' are"
        " listed one by one. The forwarded run's cost % is against the direct run of the same N (with 1 replica"
        " nothing is forwarded: its figure is what running second on a fuller database costs); extra CPU per"
        " forwarded execution is the whole cluster's extra CPU in that run over the executions forwarded (a start"
        " and a wait each); idle p50s are sequential starts and reads through replica 0 before the runs, by"
        " whether replica 0 owns the execution's shard."
        f" On this {os.cpu_count()}-core machine the replicas, the workers and PostgreSQL share"
        f" {os.cpu_count()} cores, so the ratio measures what scaling out costs in overhead and contention, not"
        " capacity; with more cores, N replicas would be bounded by the busiest engine's CPU per step times its"
        " share of the steps, and by PostgreSQL's CPU and commits per step, which do not shrink with N.",
    ]
    return lines


def _kubernetes_scale_out_detail(result: Result) -> list[str]:
    """One row per number of operator replicas and way the workers reach them: steps/s, the ratio, API
    writes, and the CPU per step of each process."""
    per: dict[str, dict[str, Any]] = result.figures.get("per_replicas") or {}
    if not per:
        return []

    def ms(value: object) -> str:
        return "" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]

    lines = [
        "| replicas | workers reach them | shards each | executions run each | steps/s | ratio to 1 | wall s"
        " | API writes per execution | shard-Lease writes/s | CPU ms per step: operators | workers | kube-apiserver"
        " | etcd | PostgreSQL | runner | total | other processes | machine busy % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, channels in per.items():
        for channel, run in channels.items():
            cpu = run["cpu_ms_per_step"]
            cells = [
                n,
                channel,
                "+".join(str(s) for s in run["shards"]),
                "+".join(str(s) for s in run["executions_run"]),
                _cell(run["steps_per_s"]),
                f"{run['ratio']:.2f}",
                _cell(run["wall_s"]),
                _cell(run["api_writes_per_execution"]),
                _cell(run["lease_writes_per_s"]),
                " + ".join(ms(v) for k, v in cpu.items() if k.startswith("operator")),
                ms(cpu.get("workers")),
                ms(cpu.get("kube-apiserver")),
                ms(cpu.get("etcd")),
                ms(cpu.get("postgres")) or "-",
                ms(cpu.get("runner")),
                ms(run["cpu_ms_per_step_total"]),
                ms(cpu.get("other")),
                _cell(run["machine_busy_pct"]),
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "Workers poll every replica *per-replica*, with the list `A,B,...` (a group of pollers per replica, as the"
        " SDKs poll what the chart's `dns:///` name resolves to). The ratio is to 1 replica. CPU ms per step:"
        " CPU seconds each process used during the run (user + system, from"
        " /proc; PostgreSQL's whole server; the runner creates the Executions and polls the store) divided by the"
        " run's steps; the operators' are listed one by one; total leaves out the other processes on the"
        " machine, whose CPU (the machine's busy time less the run's processes) is the next column: a shared"
        " machine shows there."
        " Shard-Lease writes are the replicas' renewals of the group's 16 Leases during the run (audit log)."
        f" On this {os.cpu_count()}-core machine the replicas, the workers, kube-apiserver, etcd and PostgreSQL"
        " share the cores, so the ratio measures what scaling out costs in overhead and contention, not capacity.",
    ]
    return lines


SCENARIOS: dict[str, Scenario] = {
    "latency": Scenario(
        "Step latency",
        "one execution of sequential no-op steps; time from one step to the next",
        (Column("p50_ms", "p50 ms"), Column("p99_ms", "p99 ms"), Column("samples", "samples")),
        ("p50_ms", "p99_ms"),
        "ms (lower is better)",
        True,
    ),
    "throughput": Scenario(
        "Throughput",
        "concurrent executions of sequential no-op steps over several worker processes",
        (
            Column("steps_per_s", "steps/s (history)"),
            Column("wall_steps_per_s", "steps/s (wall)"),
            Column("executions", "executions"),
            Column("steps", "steps each"),
            Column("workers", "workers"),
        ),
        ("steps_per_s",),
        "steps per second (higher is better)",
        False,
    ),
    "fanout": Scenario(
        "Fan-out",
        "one execution with a parallel group of no-op steps; start to finish",
        (Column("wall_ms", "wall ms"), Column("steps", "parallel steps")),
        ("wall_ms",),
        "ms (lower is better)",
        True,
    ),
    "map": Scenario(
        "Fan-out over a run-time list",
        "one execution whose first step returns a list of items, then one no-op step per item, all scheduled at "
        "once; start to finish",
        (Column("wall_ms", "wall ms"), Column("items", "items")),
        ("wall_ms",),
        "ms (lower is better)",
        True,
    ),
    "hibernation": Scenario(
        "Hibernation",
        "executions asleep for a day: memory and store size; then all due at once",
        (
            Column("executions", "executions"),
            Column("rss_mb", "RSS MB"),
            Column("store_mb", "store MB"),
            Column("create_s", "start all s"),
            Column("wake_s", "wake all s"),
            Column("timers_per_s", "timers fired/s"),
            Column("wake_peak_rss_mb", "peak RSS MB in the wake"),
            Column("wake_peak_queued", "peak queued tasks in the wake"),
        ),
        ("rss_mb",),
        "MB of resident memory (lower is better)",
        True,
    ),
    "recovery": Scenario(
        "Recovery",
        "executions in flight, engine SIGKILLed; restart until every one moved on",
        (Column("executions", "executions"), Column("recover_s", "recover s")),
        ("recover_s",),
        "seconds (lower is better)",
        True,
    ),
    "flow-control": Scenario(
        "Flow control's cost",
        "the throughput shape on one engine: without flow control, with a task queue rate limit that never "
        "binds, and with a Workflow's flowControl (20 keys; concurrency, key rate and priority that never bind)",
        (
            Column("off_steps_per_s", "steps/s without"),
            Column("on_steps_per_s", "steps/s with a queue limit"),
            Column("cost_pct", "cost %"),
            Column("keyed_steps_per_s", "steps/s with flowControl"),
            Column("keyed_cost_pct", "cost %"),
            Column("executions", "executions"),
            Column("steps", "steps each"),
        ),
        ("off_steps_per_s", "on_steps_per_s", "keyed_steps_per_s"),
        "steps per second (higher is better)",
        False,
    ),
    "code-scale": Scenario(
        "Code workflows at scale",
        "a code workflow looping with a step per iteration, continuing as new; then a worker holding many cached"
        " executions",
        (
            Column("iterations", "iterations"),
            Column("runs", "runs"),
            Column("iterations_per_s", "iterations/s"),
            Column("cached", "cached executions"),
            Column("worker_rss_mb", "worker RSS MB"),
            Column("kb_per_cached", "KB per cached"),
        ),
        ("worker_rss_mb",),
        "MB of worker memory (lower is better)",
        True,
    ),
    "scale-out": Scenario(
        "Scale-out on PostgreSQL",
        "the throughput shape on 1, 2 and 3 engine replicas sharing one PostgreSQL database, the 16 shards"
        " split evenly, the same worker processes each polling every replica; starts spread over the replicas"
        " (none forwarded), then a run with every call through replica 0 (about (N-1)/N forwarded)",
        (
            Column("n1_steps_per_s", "steps/s, 1 replica"),
            Column("n2_steps_per_s", "2 replicas"),
            Column("n3_steps_per_s", "3 replicas"),
            Column("n2_ratio", "ratio 2:1"),
            Column("n3_ratio", "ratio 3:1"),
            Column("executions", "executions"),
            Column("steps", "steps each"),
            Column("worker_processes", "worker processes"),
        ),
        ("n1_steps_per_s", "n2_steps_per_s", "n3_steps_per_s"),
        "steps per second (higher is better)",
        False,
        _scale_out_detail,
    ),
    "kubernetes-scale-out": Scenario(
        "Kubernetes mode: scale-out on PostgreSQL",
        "the kubernetes shape on 1, 2 and 3 active operator replicas (`cerebelum operator --shard-group`) sharing"
        " one PostgreSQL database, the 16 shard Leases split evenly, the same worker processes reaching every"
        " replica; a fresh database, namespace and shard group per N",
        (
            Column("n1_steps_per_s", "steps/s, 1 replica"),
            Column("n2_steps_per_s", "2 replicas"),
            Column("n3_steps_per_s", "3 replicas"),
            Column("n2_ratio", "ratio 2:1"),
            Column("n3_ratio", "ratio 3:1"),
            Column("n1_per_replica_steps_per_s", "per-replica pollers: 1"),
            Column("n2_per_replica_steps_per_s", "2"),
            Column("n3_per_replica_steps_per_s", "3"),
            Column("executions", "executions"),
            Column("steps", "steps each"),
            Column("workers", "worker processes"),
        ),
        ("n1_steps_per_s", "n2_steps_per_s", "n3_steps_per_s"),
        "steps per second (higher is better)",
        False,
        _kubernetes_scale_out_detail,
    ),
    "ui": Scenario(
        "Web UI on a big store",
        "the engine's web UI in headless Chromium on a store of 100,000 executions: the execution list, and the"
        " page of one execution whose history has 10,000 events; median of 5 cold loads of first contentful paint,"
        " of the time until the data is on screen, and of the bytes on the wire (bench/ui.py)",
        (
            Column("list_fcp_ms", "list FCP ms"),
            Column("list_ready_ms", "list ready ms"),
            Column("list_html_kb", "list HTML KB"),
            Column("list_total_kb", "list total KB"),
            Column("exec_fcp_ms", "execution FCP ms"),
            Column("exec_ready_ms", "execution ready ms"),
            Column("exec_html_kb", "execution HTML KB"),
            Column("exec_total_kb", "execution total KB"),
            Column("executions", "executions"),
            Column("history_events", "history events"),
            Column("seed_s", "seed s"),
        ),
        ("list_ready_ms", "exec_ready_ms"),
        "ms until the data is on screen (lower is better)",
        True,
    ),
    "kubernetes": Scenario(
        "Kubernetes mode",
        "the throughput shape through the operator and the real kube-apiserver",
        (
            Column("steps_per_s", "steps/s"),
            Column("api_writes_per_s", "API writes/s"),
            Column("api_writes_per_execution", "API writes/execution"),
            Column("executions", "executions"),
            Column("steps", "steps each"),
        ),
        ("steps_per_s",),
        "steps per second (higher is better)",
        False,
    ),
}


def _label(result: Result) -> str:
    store = result.store.split(" (")[0] if result.store else ""
    return f"{result.system} ({store})" if store else result.system


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _chart(name: str, scenario: Scenario, results: list[Result], path: Path) -> bool:
    measured = [r for r in results if r.figures and not r.unsupported and not r.failed]
    if not measured:
        return False
    figure, axes = plt.subplots(figsize=(9, 0.6 + 0.55 * len(measured) * len(scenario.charted)))
    labels, values, colours = [], [], []
    palette = ["#2f6db5", "#9cc3e6", "#e07b39", "#7f7f7f"]
    for result in measured:
        for index, key in enumerate(scenario.charted):
            value = result.figures.get(key)
            if isinstance(value, int | float):
                suffix = f" {key.split('_')[0]}" if len(scenario.charted) > 1 else ""
                labels.append(_label(result) + suffix)
                values.append(float(value))
                colours.append(palette[index % len(palette)] if result.system != "Cerebelum" else "#1b9e5a")
    axes.barh(labels[::-1], values[::-1], color=colours[::-1])
    for position, value in enumerate(values[::-1]):
        axes.text(value, position, f" {_cell(value)}", va="center", fontsize=8)
    axes.set_xlabel(scenario.unit)
    axes.set_title(scenario.title)
    if values and max(values) / max(min(values), 1e-9) > 50:
        axes.set_xscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _lines(path: str) -> list[str]:
    return Path(path).read_text().splitlines()


def _machine() -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    memory_kb = next(int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal"))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
        revision = commit.stdout.strip()
    except OSError:
        revision = ""
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory_kb / 1024 / 1024:.0f} GiB",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- Cerebelum revision: {revision or 'unknown'}",
    ]


def _find(results: list[Result], system: str, scenario: str, store_prefix: str = "") -> Result | None:
    if system.endswith(" code"):
        return next(
            (
                r
                for r in results
                if r.system == system
                and r.scenario == scenario
                and r.store.startswith(store_prefix)
                and r.figures
                and not r.failed
            ),
            None,
        )
    for result in results:
        if (
            result.system.startswith(system)
            and not result.system.startswith(f"{system} code")  # the code workflows are asked by name
            and result.scenario == scenario
            and result.store.startswith(store_prefix)
            and result.figures
            and not result.failed
        ):
            return result
    return None


def _target_lines(results: list[Result]) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---|---|"]

    def row(target: str, measured: str, met: bool | None) -> None:
        verdict = "not measured" if met is None else "met" if met else "**not met**"
        lines.append(f"| {target} | {measured} | {verdict} |")

    def figure(result: Result | None, key: str) -> float | None:
        value = result.figures.get(key) if result else None
        return float(value) if isinstance(value, int | float) else None

    ours = _find(results, "Cerebelum", "latency", "SQLite")
    floor = _find(results, "gRPC", "latency")
    p50, floor_p50 = figure(ours, "p50_ms"), figure(floor, "p50_ms")
    shown = f"{_cell(p50)} ms" if p50 else "-"
    row("step-to-step p50 < 2 ms (dev mode, SQLite)", shown, None if p50 is None else p50 < 2)
    if p50 is not None and floor_p50:
        row("within 3x the gRPC floor", f"{p50 / floor_p50:.1f}x ({_cell(floor_p50)} ms floor)", p50 <= 3 * floor_p50)
    else:
        row("within 3x the gRPC floor", "-", None)

    ours_tp = figure(_find(results, "Cerebelum", "throughput", "SQLite"), "steps_per_s")
    for peer, store, factor in (("DBOS", "SQLite", 10), ("Temporal", "", 5)):
        theirs = figure(_find(results, peer, "throughput", store), "steps_per_s")
        label = f"throughput >= {factor}x {peer}{' on ' + store if store else ' dev server'}"
        if ours_tp and theirs:
            shown = f"{ours_tp / theirs:.1f}x ({_cell(ours_tp)} vs {_cell(theirs)} steps/s)"
            row(label, shown, ours_tp >= factor * theirs)
        else:
            row(label, "-", None)

    code_p50 = figure(_find(results, "Cerebelum code", "latency", "SQLite"), "p50_ms")
    row(
        "code workflows: step-to-step p50 < 5 ms (SQLite)",
        f"{_cell(code_p50)} ms" if code_p50 else "-",
        None if code_p50 is None else code_p50 < 5,
    )
    code_tp = figure(_find(results, "Cerebelum code", "throughput", "SQLite"), "steps_per_s")
    temporal_tp = figure(_find(results, "Temporal", "throughput", ""), "steps_per_s")
    if code_tp and temporal_tp:
        shown = f"{code_tp / temporal_tp:.1f}x ({_cell(code_tp)} vs {_cell(temporal_tp)} steps/s)"
        row("code workflows: throughput >= 5x Temporal dev server", shown, code_tp >= 5 * temporal_tp)
    else:
        row("code workflows: throughput >= 5x Temporal dev server", "-", None)

    sleeping = _find(results, "Cerebelum", "hibernation", "SQLite")
    rss, count = figure(sleeping, "rss_mb"), figure(sleeping, "executions")
    row(
        "100,000 sleeping executions in < 300 MB",
        f"{_cell(rss)} MB with {_cell(int(count))}" if rss and count else "-",
        None if rss is None or count is None else rss < 300 and count >= 100_000,
    )
    kube = _find(results, "Cerebelum", "kubernetes")
    kube_steps, per_execution = figure(kube, "steps_per_s"), figure(kube, "api_writes_per_execution")
    row(
        "Kubernetes mode >= 1,000 steps/s",
        f"{_cell(kube_steps)} steps/s, {_cell(per_execution)} API writes per execution" if kube_steps else "-",
        None if kube_steps is None else kube_steps >= 1000,
    )
    return lines


_EARLIER = "The other sections (the last full run):"


def _machine_of(doc: Path) -> list[str]:
    """The machine lines of the report already at ``doc`` (of the last full run), or none."""
    if not doc.exists():
        return []
    lines = doc.read_text().splitlines()
    try:
        start = lines.index("## Machine") + 1
    except ValueError:
        return []
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    if _EARLIER in section:  # itself an updated report: the full run's machine is the part after this
        section = section[section.index(_EARLIER) :]
    return [line for line in section if line.startswith("- ")]


def write_report(
    results: list[Result],
    doc: Path,
    *,
    quick: bool,
    command: str,
    wall_s: float,
    updated: list[str] | None = None,
) -> None:
    """``updated``: the scenarios this run measured when it measured only some (``--update``);
    the other results are the last run's, and the document says which is which."""
    charts = doc.parent / "benchmarks"
    charts.mkdir(parents=True, exist_ok=True)
    minutes = round(wall_s / 60)
    took = f"{minutes} minute{'' if minutes == 1 else 's'}"
    machine = _machine()
    if updated is None:
        provenance = (
            f"Cerebelum and the engines people would pick instead, in one run on one machine (`{command}`, {took})."
        )
    else:
        titles = ", ".join(SCENARIOS[name].title for name in updated)
        provenance = (
            f"Cerebelum and the engines people would pick instead. {titles}: measured on {date.today().isoformat()}"
            f" (`{command}`, {took}), side by side for every system on one machine; every other section as the last"
            " full run (`python bench/run.py`) left it."
        )
        earlier = _machine_of(doc)
        if earlier and earlier != machine:
            machine = [f"{titles}:", "", *machine, "", _EARLIER, "", *earlier]
    out: list[str] = [
        "# Benchmarks",
        "",
        "<!-- generated by bench/run.py; do not edit by hand -->",
        "",
        f"{provenance} How each scenario is measured,"
        " identically for every system, is in [bench/README.md](../bench/README.md)."
        + (" **Quick mode: tiny sizes, the figures mean nothing.**" if quick else ""),
        "",
        "## Machine",
        "",
        *machine,
        "",
        "## Versions",
        "",
    ]
    versions = sorted({f"{r.system}: {r.version}" for r in results if r.version})
    out += [f"- {v}" for v in versions] + ["", "## Targets", "", *_target_lines(results), ""]
    for name, scenario in SCENARIOS.items():
        chosen = [r for r in results if r.scenario == name]
        if not chosen:
            continue
        out += [f"## {scenario.title}", "", scenario.shape[0].upper() + scenario.shape[1:] + ".", ""]
        header = ["system", "store", *[c.title for c in scenario.columns], "notes"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for result in chosen:
            if result.failed:
                cells = [f"did not finish: {result.failed}"] + [""] * (len(scenario.columns) - 1)
                notes = ""
            elif result.unsupported:
                cells = [f"cannot run: {result.unsupported}"] + [""] * (len(scenario.columns) - 1)
                notes = result.notes
            else:
                cells = [_cell(result.figures.get(c.figure)) for c in scenario.columns]
                notes = result.notes
            row = [result.system, result.store, *cells, notes.replace("|", "/")]
            out.append("| " + " | ".join(row) + " |")
        if scenario.detail is not None:
            for result in chosen:
                if result.figures and not result.failed and not result.unsupported:
                    out += ["", *scenario.detail(result)]
        if _chart(name, scenario, chosen, charts / f"{name}.png"):
            out += ["", f"![{scenario.title}](benchmarks/{name}.png)"]
        out.append("")
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        out += [analysis.read_text().rstrip(), ""]
    doc.write_text("\n".join(out))
