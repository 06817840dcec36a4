/**
 * A TypeScript worker for the integration tests (tests/typescript/), run as a real process
 * against `cerebelum dev`. Every step run is written to the ledger file ($LEDGER) outside the
 * engine, exactly as tests/integration/workers/ledger_worker.py does, with "language" added.
 *
 *   ts_double, ts_finish  -> steps of the mixed-language workflow (Python steps in between)
 *   slow                  -> heartbeats for input.hold_s seconds, then returns its pid
 *   nap                   -> asks the engine for a durable sleep of input.sleep_ms
 *   ask                   -> asks for an approval of kind "refund" with input.amount
 *   after                 -> returns what the steps before it returned
 *   big, odd              -> return input.payload_bytes characters, or a lone surrogate
 *   boom                  -> throws a TypeError (its stack trace should reach the worker's log)
 *   deaf                  -> heartbeats once, then waits input.hold_s seconds without listening to
 *                            ctx.signal; records "told" when the worker aborts it, "finished" after
 */
import { appendFileSync, closeSync, fsyncSync, openSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";

import { type CancelledError, type StepContext, Worker } from "@cerebelum/worker";

const LEDGER = process.env["LEDGER"] ?? "";
const worker = new Worker({ taskQueue: process.env["TASK_QUEUE"] ?? "test", maxConcurrency: 20 });

interface Trail {
  value: number;
  trail: string[];
}

interface Input {
  n?: number;
  payload_bytes?: number;
  hold_s?: number;
  sleep_ms?: number;
  amount?: number;
}

function record(ctx: StepContext, event: string): void {
  const line = JSON.stringify({
    execution: ctx.executionId,
    step: ctx.step,
    attempt: ctx.attempt,
    poll: ctx.poll,
    event,
    worker: ctx.workerId,
    pid: process.pid,
    at: Date.now() / 1000,
    language: "typescript",
  });
  const fd = openSync(LEDGER, "a");
  try {
    appendFileSync(fd, `${line}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

worker.step("ts_double", (ctx, _input: Input): Trail => {
  record(ctx, "run");
  const previous = ctx.result<Trail>("py_start");
  return { value: previous.value * 2, trail: [...previous.trail, "typescript"] };
});

worker.step("ts_finish", (ctx, input: Input) => {
  record(ctx, "run");
  const previous = ctx.result<Trail>("py_add");
  return {
    value: previous.value,
    trail: [...previous.trail, "typescript"],
    input: input.n,
    seen: Object.keys(ctx.results).sort(),
  };
});

worker.step("slow", async (ctx, input: Input) => {
  record(ctx, "start");
  const deadline = Date.now() + (input.hold_s ?? 5) * 1000;
  while (Date.now() < deadline) {
    ctx.heartbeat({ left: deadline - Date.now() });
    await delay(100, undefined, { signal: ctx.signal }).catch(() => undefined);
    if (ctx.cancelled) {
      record(ctx, "cancelled");
      ctx.signal.throwIfAborted();
    }
  }
  record(ctx, "run");
  return { slow: "done", pid: process.pid, language: "typescript" };
});

worker.step("nap", (ctx, input: Input) => {
  record(ctx, "run");
  return ctx.sleep(`${Math.trunc(input.sleep_ms ?? 1000)}ms`, { napped: true });
});

worker.step("ask", (ctx, input: Input) => {
  record(ctx, "run");
  return ctx.requestApproval({ kind: "refund", timeout: "1h", data: { amount: input.amount ?? 0 } });
});

worker.step("after", (ctx) => {
  record(ctx, "run");
  return { after: ctx.results };
});

worker.step("big", (ctx, input: Input) => {
  record(ctx, "run");
  return { blob: "x".repeat(input.payload_bytes ?? 0) };
});

worker.step("odd", (ctx) => {
  record(ctx, "run");
  return { text: "half a pair: \ud800" }; // JSON.stringify escapes it; it is not Unicode text
});

worker.step("boom", (ctx) => {
  record(ctx, "run");
  throw new TypeError(`boom on attempt ${ctx.attempt}`);
});

worker.step("deaf", async (ctx, input: Input) => {
  record(ctx, "run");
  ctx.heartbeat("started");
  ctx.signal.addEventListener("abort", () => record(ctx, `told ${(ctx.signal.reason as CancelledError).reason}`));
  await delay((input.hold_s ?? 5) * 1000); // stands for work that cannot be interrupted
  record(ctx, "finished");
  return "finished";
});

process.stderr.write(`worker ${process.pid} ready\n`);
await worker.run();
