"""The floor for a networked step: a raw gRPC unary echo between two OS processes on 127.0.0.1.

    python bench/peers/grpc_floor.py --scenario latency --out r.json [--quick] [--store ...] [--postgres-url ...]

No engine can hand a step to a worker over gRPC faster than one round trip, and a step needs at least
two (the worker's poll is answered with the task; the worker reports the completion), so these figures
are what an engine with remote workers pays before it stores anything. Both ends use ``grpc.aio``, as
the Cerebelum engine and its Python worker do, with a generic handler and raw bytes (no codegen, no
protobuf); the payload is 64 bytes.

- ``latency``: one client process makes sequential calls after a warm-up; ``p50_ms``/``p99_ms`` of one
  round trip, and ``two_round_trips_p50_ms``/``..._p99_ms`` of two back to back.
- ``throughput``: W client processes keep C calls each in flight for a fixed time against one server
  process; calls/s is reported as ``steps_per_s`` (a floor: one call, not a step).
- other scenarios: ``unsupported`` (a floor, not an engine). ``--store`` is accepted and ignored.

The runner spawns the server and the clients as children of its own (``--child``), which die with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

SCENARIOS = ("latency", "throughput", "fanout", "hibernation", "recovery", "kubernetes")
METHOD = "/bench.Echo/Echo"
PAYLOAD = bytes(range(64))
SYSTEM = "gRPC echo floor"
NOT_AN_ENGINE = "a floor, not an engine: a raw gRPC echo has no executions to fan out, put to sleep or recover"


# --------------------------------------------------------------------------------------------------
# Children: the echo server and the clients
# --------------------------------------------------------------------------------------------------


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


def _write_json(path: str, payload: dict[str, Any]) -> None:
    """Atomically, since the runner polls for the file."""
    Path(f"{path}.partial").write_text(json.dumps(payload))
    os.replace(f"{path}.partial", path)


async def serve(result: str) -> None:
    """Serve the echo on a free port of 127.0.0.1, report the port, run until SIGTERM."""
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _write_json(result, {"port": port})
    await stop.wait()
    await server.stop(grace=None)


def _nearest_rank(values: list[float], fraction: float) -> float:
    """As bench/step_latency.py computes percentiles, so the runners agree."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_latency(address: str, calls: int, warmup: int, result: str) -> None:
    """Sequential calls: one round trip each, then pairs of round trips."""
    async with grpc.aio.insecure_channel(address) as channel:
        echo = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        for _ in range(warmup):
            await echo(PAYLOAD)
        one: list[float] = []
        for _ in range(calls):
            began = time.perf_counter()
            await echo(PAYLOAD)
            one.append((time.perf_counter() - began) * 1000)
        two: list[float] = []
        for _ in range(calls):
            began = time.perf_counter()
            await echo(PAYLOAD)
            await echo(PAYLOAD)
            two.append((time.perf_counter() - began) * 1000)
    _write_json(result, {"one": one, "two": two})


async def measure_throughput(address: str, in_flight: int, start_at: float, seconds: float, result: str) -> None:
    """Keep `in_flight` calls outstanding from `start_at` for `seconds`; count those that completed."""
    async with grpc.aio.insecure_channel(address) as channel:
        echo = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        for _ in range(100):
            await echo(PAYLOAD)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        counts = [0] * in_flight

        async def loop(slot: int) -> None:
            while time.time() < deadline:
                await echo(PAYLOAD)
                counts[slot] += 1

        await asyncio.gather(*(loop(i) for i in range(in_flight)))
    _write_json(result, {"calls": sum(counts), "ended": time.time()})


def child_main(args: argparse.Namespace) -> None:
    if args.child == "server":
        asyncio.run(serve(args.result))
    elif args.child == "latency":
        asyncio.run(measure_latency(args.address, args.calls, args.warmup, args.result))
    else:
        asyncio.run(measure_throughput(args.address, args.in_flight, args.start_at, args.seconds, args.result))


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------


def _dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` under util-linux's setpriv, which has the kernel SIGKILL it when this process's forking
    thread dies, so nothing leaks; no Python runs between fork and exec (a preexec_fn there can
    abort or deadlock once gRPC's threads run in the parent)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


class Children:
    """The server and client processes of one run, all stopped when it ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, role: str, **options: object) -> tuple[subprocess.Popen[bytes], Path]:
        name = f"{role}-{len(self.processes)}"
        result = self.workdir / f"{name}.json"
        argv = [sys.executable, __file__, "--child", role, "--result", str(result)]
        for key, value in options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        with (self.workdir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(_dying_with_parent(argv), stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, result

    def read(self, process: subprocess.Popen[bytes], path: Path, timeout: float) -> dict[str, Any]:
        """The child's result, or its log if it died or took too long."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                log = path.with_suffix(".log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{path.stem} gave no result (exit {process.poll()}):\n{log}")
            time.sleep(0.05)
        payload: dict[str, Any] = json.loads(path.read_text())
        return payload

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_server() -> Iterator[tuple[Children, str]]:
    """Yield the children and the address of a started echo server."""
    with tempfile.TemporaryDirectory(prefix="grpc-floor-") as directory:
        group = Children(Path(directory))
        try:
            server, ready = group.spawn("server")
            port = int(group.read(server, ready, timeout=60)["port"])
            yield group, f"127.0.0.1:{port}"
        finally:
            group.stop_all()


def latency(quick: bool) -> tuple[dict[str, Any], str]:
    calls, warmup = (200, 50) if quick else (2000, 500)
    with running_server() as (group, address):
        client, result = group.spawn("latency", address=address, calls=calls, warmup=warmup)
        measured = group.read(client, result, timeout=300)
    one, two = measured["one"], measured["two"]
    figures = {
        "p50_ms": round(statistics.median(one), 4),
        "p99_ms": round(_nearest_rank(one, 0.99), 4),
        "samples": len(one),
        "two_round_trips_p50_ms": round(statistics.median(two), 4),
        "two_round_trips_p99_ms": round(_nearest_rank(two, 0.99), 4),
    }
    notes = (
        f"{calls} sequential unary echo calls (64-byte payload, grpc.aio at both ends, client and server in "
        f"separate processes on 127.0.0.1) after {warmup} warm-up calls, timed in the client; then {calls} pairs "
        "of calls back to back, the least a remote step needs (a poll answered with the task, then its completion)."
    )
    return figures, notes


def throughput(quick: bool) -> tuple[dict[str, Any], str]:
    clients, in_flight, seconds = (2, 8, 2.0) if quick else (4, 16, 10.0)
    with running_server() as (group, address):
        start_at = time.time() + 3.0  # after every client has connected and warmed up
        spawned = [
            group.spawn("throughput", address=address, in_flight=in_flight, start_at=start_at, seconds=seconds)
            for _ in range(clients)
        ]
        reports = [group.read(p, r, timeout=60 + seconds) for p, r in spawned]
    calls = sum(int(r["calls"]) for r in reports)
    wall = max(float(r["ended"]) for r in reports) - start_at
    figures = {
        "steps_per_s": round(calls / seconds, 1),
        "wall_steps_per_s": round(calls / wall, 1),
        "executions": calls,
        "steps": calls,
        "workers": clients,
        "two_round_trips_steps_per_s": round(calls / seconds / 2, 1),
    }
    notes = (
        f"A floor, not an engine: {clients} client processes keep {in_flight} unary echo calls each in flight "
        f"for {seconds:g}s against one grpc.aio server process; steps_per_s counts calls (one round trip), "
        "two_round_trips_steps_per_s halves it for the two a remote step needs; executions and steps are calls."
    )
    return figures, notes


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    unsupported: str | None = None
    if args.scenario == "latency":
        figures, notes = latency(args.quick)
    elif args.scenario == "throughput":
        figures, notes = throughput(args.quick)
    else:
        notes, unsupported = "Not run.", NOT_AN_ENGINE
    return {
        "system": SYSTEM,
        "version": f"grpcio {grpc.__version__} (grpc.aio, Python {sys.version.split()[0]})",
        "store": "none (in memory)",
        "scenario": args.scenario,
        "figures": figures,
        "notes": notes,
        "unsupported": unsupported,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--out")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="ignored: no store")
    parser.add_argument("--postgres-url", help="ignored: no store")
    parser.add_argument("--child", choices=("server", "latency", "throughput"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--in-flight", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (args.scenario is None or args.out is None):
        parser.error("--scenario and --out are required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        child_main(args)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the children are stopped in `finally`
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["figures"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
