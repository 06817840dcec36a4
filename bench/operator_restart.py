"""What an operator restart costs with N finished Executions in the API server (issue 21, item 5).

    python bench/operator_restart.py --finished 5000 [--sleepers 20] [--code DIR] [--out result.json]

It starts what tests/kube starts (etcd + kube-apiserver, the CRDs, the chart's ServiceAccount and
RBAC, a fresh namespace) and `cerebelum operator` as that ServiceAccount on a SQLite file, with
its production defaults. `--code DIR` runs the operator from another source tree (DIR/operator
and DIR/worker-sdk/python/src), e.g. an older commit unpacked with `git archive`, to measure
before and after on the same cluster harness; `--seed-code DIR` seeds with that tree's operator
and restarts with `--code`'s, which measures the first restart after an upgrade.

Seeding N finished Executions, faithfully and cheaply:

1. `--templates` Executions of a one-step Workflow (a 1 ms timer, no worker) run through the
   operator; once they are Succeeded and the operator has done everything it does to a finished
   object (its status, kopf's annotation and finalizer, and with the new code the finished label),
   one of them is the template.
2. The operator is stopped, and N clones are made of the template: each Execution object is
   created with the template's spec, labels and annotations (kopf's last-handled record
   included, so the old code resumes it, not creates it), its status written through the
   status subresource with the template's (its ids replaced by the clone's uid), and the
   template's store rows copied under that uid (every table with an `execution_id`, every text
   column's mention of the template's id replaced). To the operator a clone is what it would
   have left behind had it run the execution itself; the only difference is that all share one
   finish time.

The operator is started again and works through the clones (the old code resumes each); once a
probe Execution created then shows Succeeded and its CPU use is quiet, `--sleepers` Executions of
a Workflow that sleeps `--sleep` seconds are created through it and shown Sleeping; the operator
is SIGKILLed; once their timers are past due it is spawned again. Measured from the spawn: until
its engine serves (it first waits out the killed instance's Lease, 6 s as tests/kube run it);
until `/readyz` answers 200; until every sleeper's status shows Succeeded (the engine fires the
overdue timers as it starts, `sleepers_engine_done_s` from the store's history: the difference is
how far the API status lags); how long a new Execution created 4 s after the engine serves takes
to show Succeeded; the operator's CPU seconds and peak RSS (VmHWM) until it settles (CPU use
under 2 % of a core over 3 s).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shutil
import signal
import sqlite3
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.kubernetes_runner import (  # noqa: E402
    BenchError,
    _cpu_seconds,
    _Operator,
    _versions,
    prepare_cluster,
)
from tests.support.control_plane import ControlPlane, ensure_binaries  # noqa: E402
from tests.support.kube import service_account_kubeconfig  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

API = "/apis/cerebelum.io/v1alpha1"
ROLE = "bench.cerebelum.io/role"  # a label of the bench's own, to list the sleepers alone
CONNECTIONS = 8
SERVING_LINE = b"cerebelum engine serving on"


@dataclass
class _CodeOperator(_Operator):
    """The operator, run from the source tree `code` (None: this one)."""

    code: Path | None = None

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.code is not None:
            env["PYTHONPATH"] = f"{self.code / 'operator'}:{self.code / 'worker-sdk' / 'python' / 'src'}"
        return env


class Api:
    """Keep-alive HTTPS connections to the API server as admin (the seeder is not what is measured)."""

    def __init__(self, cp: ControlPlane) -> None:
        assert cp.server is not None
        assert cp.ca_file is not None
        self.url = urllib.parse.urlsplit(cp.server)
        self.context = ssl.create_default_context(cafile=str(cp.ca_file))
        self.headers = {"Authorization": f"Bearer {cp.admin_token}", "Accept": "application/json"}

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.url.hostname or "127.0.0.1", self.url.port, context=self.context)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        connection: http.client.HTTPSConnection | None = None,
    ) -> Any:
        own = connection is None
        conn = connection or self.connection()
        try:
            headers = {**self.headers, "Content-Type": content_type}
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status >= 300:
                raise BenchError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
            return json.loads(data)
        finally:
            if own:
                conn.close()


def workflow(name: str, duration: str) -> dict[str, Any]:
    return {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"taskQueue": "bench", "timeline": ["nap"], "steps": {"nap": {"timer": {"duration": duration}}}},
    }


def execution(name: str, workflow_name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"workflow": workflow_name, "input": {}},
    }


def phases(api: Api, namespace: str, selector: str) -> dict[str, str]:
    query = urllib.parse.urlencode({"labelSelector": selector})
    items = api.call("GET", f"{API}/namespaces/{namespace}/executions?{query}")["items"]
    return {item["metadata"]["name"]: (item.get("status") or {}).get("phase") or "" for item in items}


def wait_for(check: Any, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(every)


def readyz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (ConnectionError, urllib.error.URLError, TimeoutError, OSError):
        return None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- seeding --------------------------------------------------------------------------------------


def clone_store_rows(db_path: Path, template_id: str, new_ids: list[str]) -> None:
    """Copy every row naming `template_id` (any table with an `execution_id`) once per new id."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = db.execute(f'PRAGMA table_info("{table}")').fetchall()
            names = [column[1] for column in columns]
            if "execution_id" not in names:
                continue
            texts = {column[1] for column in columns if (column[2] or "").upper() in ("TEXT", "JSON", "")}
            quoted = ", ".join(f'"{name}"' for name in names)
            rows = db.execute(f'SELECT {quoted} FROM "{table}" WHERE execution_id = ?', (template_id,)).fetchall()
            if not rows:
                continue
            marks = ", ".join("?" for _ in names)
            insert = f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})'
            batch: list[tuple[Any, ...]] = []
            for new_id in new_ids:
                for row in rows:
                    batch.append(
                        tuple(
                            value.replace(template_id, new_id) if name in texts and isinstance(value, str) else value
                            for name, value in zip(names, row, strict=True)
                        )
                    )
                if len(batch) >= 20_000:
                    db.executemany(insert, batch)
                    batch.clear()
            if batch:
                db.executemany(insert, batch)
        db.commit()


def clone_objects(api: Api, namespace: str, template: dict[str, Any], count: int) -> list[str]:
    """`count` clones of the template object (spec, labels, annotations, then its status); their uids."""
    meta = template["metadata"]
    template_id = str(meta["uid"])
    status_text = json.dumps(template.get("status") or {})
    shares = [list(range(index, count, CONNECTIONS)) for index in range(CONNECTIONS)]

    def create_share(share: list[int]) -> list[str]:
        connection = api.connection()
        uids: list[str] = []
        try:
            for index in share:
                body = {
                    "apiVersion": template["apiVersion"],
                    "kind": "Execution",
                    "metadata": {
                        "name": f"done-{index:06d}",
                        "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k != ROLE},
                        "annotations": meta.get("annotations") or {},
                    },
                    "spec": template["spec"],
                }
                created = api.call("POST", f"{API}/namespaces/{namespace}/executions", body, connection=connection)
                uid = str(created["metadata"]["uid"])
                status = json.loads(status_text.replace(template_id, uid))
                api.call(
                    "PATCH",
                    f"{API}/namespaces/{namespace}/executions/{body['metadata']['name']}/status",
                    {"status": status},
                    content_type="application/merge-patch+json",
                    connection=connection,
                )
                uids.append(uid)
        finally:
            connection.close()
        return uids

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        return [uid for done in [pool.submit(create_share, share) for share in shares] for uid in done.result()]


# -- the run --------------------------------------------------------------------------------------


def settle(pid: int, *, quiet_s: float = 3.0, timeout: float = 1800.0) -> float:
    """Wait until the process uses under 2 % of a core over `quiet_s`; its CPU seconds then."""
    deadline = time.monotonic() + timeout
    last = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _cpu_seconds(pid)
        if now - last < 0.02 * quiet_s:
            return now
        last = now
    return last


def run(
    finished: int, sleepers: int, sleep_s: float, templates: int, code: Path | None, seed_code: Path | None = None
) -> dict[str, Any]:
    work_dir = Path(tempfile.mkdtemp(prefix="cerebelum-bench-restart-"))
    print(f"operator restart bench: work dir {work_dir}", file=sys.stderr, flush=True)
    try:
        with ControlPlane(ensure_binaries(), parent_dir=str(work_dir)) as cp:
            return _run(cp, work_dir, finished, sleepers, sleep_s, templates, code, seed_code)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    cp: ControlPlane,
    work_dir: Path,
    finished: int,
    sleepers: int,
    sleep_s: float,
    templates: int,
    code: Path | None,
    seed_code: Path | None = None,
) -> dict[str, Any]:
    namespace = prepare_cluster(cp)
    api = Api(cp)
    health = free_port()
    db_path = work_dir / "operator.db"
    operator = _CodeOperator(
        database_url=f"sqlite:///{db_path}",
        log_path=work_dir / "operator.log",
        kubeconfig=service_account_kubeconfig(cp, work_dir / "operator.kubeconfig"),
        extra_args=(
            *("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--auth", "none"),
            *("--health-address", f"127.0.0.1:{health}"),
        ),
        code=seed_code or code,
    )
    try:
        operator.start()
        for name, duration in (("quick", "1ms"), ("sleepy", f"{sleep_s}s")):
            api.call("POST", f"{API}/namespaces/{namespace}/workflows", workflow(name, duration))
        for index in range(templates):
            api.call(
                "POST",
                f"{API}/namespaces/{namespace}/executions",
                execution(f"template-{index}", "quick", {ROLE: "template"}),
            )
        wait_for(
            lambda: set(phases(api, namespace, f"{ROLE}=template").values()) == {"Succeeded"},
            120,
            "the templates to succeed",
        )
        time.sleep(3)  # kopf's finalizer removal and annotation, the finished label: all land
        template = api.call("GET", f"{API}/namespaces/{namespace}/executions/template-0")
        operator.stop()

        seeding = time.monotonic()
        uids = clone_objects(api, namespace, template, finished)
        objects_s = time.monotonic() - seeding
        clone_store_rows(db_path, str(template["metadata"]["uid"]), uids)
        seed_s = time.monotonic() - seeding
        print(f"seeded {finished} finished Executions in {seed_s:.0f} s", file=sys.stderr, flush=True)

        operator.start()
        wait_for(lambda: readyz(health) == 200, 1800, "the operator to be ready before the sleepers")
        # The old code resumes every clone here, waiting on the status-write bucket more than on the
        # CPU: wait until an Execution created now shows Succeeded, i.e. the backlog is gone.
        api.call("POST", f"{API}/namespaces/{namespace}/executions", execution("probe", "quick", {ROLE: "probe"}))

        def probe_done() -> bool:
            if operator.process is not None and operator.process.poll() is not None:
                # The code at 89106c1 lost its Lease this way once, resuming 5,000 clones (--lease-duration 6).
                raise BenchError(f"the operator exited ({operator.process.returncode}):\n{operator.log_tail()}")
            return phases(api, namespace, f"{ROLE}=probe").get("probe") == "Succeeded"

        wait_for(
            probe_done,
            3600,
            "the operator to work through the clones after seeding",
            every=1.0,
        )
        assert operator.process is not None
        settle(operator.process.pid)
        for index in range(sleepers):
            api.call(
                "POST",
                f"{API}/namespaces/{namespace}/executions",
                execution(f"sleeper-{index:02d}", "sleepy", {ROLE: "sleeper"}),
            )
        created_at = time.monotonic()
        wait_for(
            lambda: set(phases(api, namespace, f"{ROLE}=sleeper").values()) == {"Sleeping"},
            600,
            "the sleepers to show Sleeping",
        )
        sleeper_ids = [
            str(item["metadata"]["uid"])
            for item in api.call(
                "GET", f"{API}/namespaces/{namespace}/executions?labelSelector={urllib.parse.quote(ROLE + '=sleeper')}"
            )["items"]
        ]
        if time.monotonic() > created_at + sleep_s - 0.5:
            raise BenchError("the sleepers took longer to show Sleeping than they sleep: raise --sleep")
        operator.process.send_signal(signal.SIGKILL)
        operator.process.wait()
        # Spawn again once their timers are past due: the engine fires them as it starts.
        time.sleep(max(0.0, created_at + sleep_s + 1 - time.monotonic()))

        log_offset = operator.log_path.stat().st_size
        operator.code = code  # an upgrade: seeded by --seed-code, restarted as --code
        spawn_wall_ms = time.time() * 1000
        spawned = time.monotonic()
        operator.launch()
        pid = operator.process.pid
        cpu_at_spawn = _cpu_seconds(pid)
        ready_s = sleepers_s = fresh_s = serving_s = None
        fresh_created: float | None = None
        deadline = spawned + 3600
        while time.monotonic() < deadline and (ready_s is None or sleepers_s is None or fresh_s is None):
            now = time.monotonic() - spawned
            if operator.process.poll() is not None:
                raise BenchError(f"the operator exited ({operator.process.returncode}):\n{operator.log_tail()}")
            if serving_s is None:
                # The engine serves once the killed instance's Lease ran out (--lease-duration).
                with operator.log_path.open("rb") as log:
                    log.seek(log_offset)
                    if SERVING_LINE in log.read():
                        serving_s = now
            if ready_s is None and readyz(health) == 200:
                ready_s = now
            if sleepers_s is None:
                with contextlib.suppress(BenchError, OSError):
                    shown = phases(api, namespace, f"{ROLE}=sleeper")
                    if len(shown) == sleepers and set(shown.values()) == {"Succeeded"}:
                        sleepers_s = now
            if fresh_created is None and serving_s is not None and now >= serving_s + 4.0:
                api.call(
                    "POST", f"{API}/namespaces/{namespace}/executions", execution("fresh", "quick", {ROLE: "fresh"})
                )
                fresh_created = now
            if fresh_created is not None and fresh_s is None:
                with contextlib.suppress(BenchError, OSError):
                    if phases(api, namespace, f"{ROLE}=fresh").get("fresh") == "Succeeded":
                        fresh_s = now - fresh_created
            time.sleep(0.05)
        cpu_sleepers = _cpu_seconds(pid) - cpu_at_spawn
        settled_cpu = settle(pid)
        busy_s = time.monotonic() - spawned
        result = {
            "finished": finished,
            "sleepers": sleepers,
            "code": str(code) if code is not None else "this tree",
            "seed_code": str(seed_code or code) if (seed_code or code) is not None else "this tree",
            "seed_s": round(seed_s, 1),
            "seed_objects_s": round(objects_s, 1),
            "engine_serving_s": None if serving_s is None else round(serving_s, 2),
            "ready_s": None if ready_s is None else round(ready_s, 2),
            "sleepers_status_current_s": None if sleepers_s is None else round(sleepers_s, 2),
            "sleepers_engine_done_s": _engine_done_s(db_path, spawn_wall_ms, sleeper_ids),
            "fresh_execution_visible_s": None if fresh_s is None else round(fresh_s, 2),
            "operator_cpu_s_until_sleepers_current": round(cpu_sleepers, 2),
            "operator_cpu_s_until_settled": round(settled_cpu - cpu_at_spawn, 2),
            "settled_after_s": round(busy_s, 1),
            "operator_peak_rss_mb": round(peak_rss_mb(pid), 1),
            "operator_rss_mb_settled": round(rss_mb(pid), 1),
            # Every clone still there (and the templates, the sleepers, the probe and the fresh one):
            # neither version deleted one, so its store rows were found.
            "executions_in_api": len(phases(api, namespace, "")),
            "versions": _versions(cp),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return result
    finally:
        operator.stop()


def _engine_done_s(db_path: Path, spawn_wall_ms: float, ids: list[str]) -> float | None:
    """When the engine finished the last sleeper, in seconds after the spawn (from the store's history)."""
    marks = ", ".join("?" for _ in ids)
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        (last,) = db.execute(
            f"SELECT MAX(at_ms) FROM events WHERE kind = 'ExecutionSucceeded' AND execution_id IN ({marks})", ids
        ).fetchone()
    return None if last is None else round((last - spawn_wall_ms) / 1000, 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=500)
    parser.add_argument("--sleepers", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=6.0, help="the sleepers' timer, seconds")
    parser.add_argument("--templates", type=int, default=5)
    parser.add_argument("--code", type=Path, default=None, help="run the operator from this source tree")
    parser.add_argument(
        "--seed-code", type=Path, default=None, help="seed with this tree's operator (an upgrade: then --code)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.finished, args.sleepers, args.sleep, args.templates, args.code, args.seed_code)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
