import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { CancelledError, type StepContext } from "@cerebelum/worker";
import { StepEnvironment } from "@cerebelum/worker/testing";

import { MemoryLogger } from "../support/fake-service.js";

/** Resolves when `ctx.signal` aborts. */
function aborted(ctx: StepContext): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve();
    }
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

test("the fake context carries the options, with defaults for the rest", async () => {
  const describe = (ctx: StepContext, input: unknown) => ({
    input,
    ids: [ctx.executionId, ctx.workflow, ctx.step, ctx.workerId, ctx.idempotencyKey],
    attempt: ctx.attempt,
    run: ctx.run,
    poll: ctx.poll,
    deadline: ctx.deadline?.toISOString() ?? null,
    results: ctx.results,
    lastProgress: ctx.lastProgress,
  });
  assert.deepEqual(await new StepEnvironment().run(describe), {
    outcome: "success",
    output: {
      input: null,
      ids: ["test-execution", "test-workflow", "step", "test-worker", "test-execution/step/1"],
      attempt: 1,
      run: 1,
      poll: 0,
      deadline: null,
      results: {},
      lastProgress: null,
    },
  });
  const env = new StepEnvironment({
    executionId: "ex-7",
    workflow: "orders",
    step: "charge",
    attempt: 3,
    run: 4,
    poll: 2,
    workerId: "w",
    deadline: new Date("2030-01-01T00:00:00Z"),
    results: { validate: { ok: true } },
    lastProgress: { done: 40 },
  });
  const result = await env.run(describe, { id: 1 });
  assert.ok(result.outcome === "success");
  assert.deepEqual(result.output, {
    input: { id: 1 },
    ids: ["ex-7", "orders", "charge", "w", "ex-7/charge/4"],
    attempt: 3,
    run: 4,
    poll: 2,
    deadline: "2030-01-01T00:00:00.000Z",
    results: { validate: { ok: true } },
    lastProgress: { done: 40 },
  });
});

test("vars given to the environment are the step's frozen ctx.vars, none by default", async () => {
  const read = (ctx: StepContext) => ({ vars: ctx.vars, frozen: Object.isFrozen(ctx.vars) });
  const env = new StepEnvironment({ vars: { cursor: 3, attempts: 1 } });
  assert.deepEqual(await env.run(read), { outcome: "success", output: { vars: { cursor: 3, attempts: 1 }, frozen: true } });
  assert.deepEqual(await new StepEnvironment().run(read), { outcome: "success", output: { vars: {}, frozen: true } });
});

test("args and workflowStep let one handler be tested as each of the steps it serves", async () => {
  const resize = (ctx: StepContext) => ({
    step: ctx.step,
    function: ctx.function,
    key: ctx.idempotencyKey,
    width: ctx.args.width,
    frozen: Object.isFrozen(ctx.args),
  });
  const small = new StepEnvironment({ step: "resize", workflowStep: "small", args: { width: 128 } });
  const large = new StepEnvironment({ step: "resize", workflowStep: "large", args: { width: 1024 } });
  assert.deepEqual(await small.run(resize), {
    outcome: "success",
    output: { step: "small", function: "resize", key: "test-execution/small/1", width: 128, frozen: true },
  });
  assert.deepEqual(await large.run(resize), {
    outcome: "success",
    output: { step: "large", function: "resize", key: "test-execution/large/1", width: 1024, frozen: true },
  });
});

test("without args ctx.args is empty, and without workflowStep ctx.step is the step option", async () => {
  const read = (ctx: StepContext) => ({ names: [ctx.step, ctx.function], args: ctx.args });
  assert.deepEqual(await new StepEnvironment({ step: "resize" }).run(read), {
    outcome: "success",
    output: { names: ["resize", "resize"], args: {} },
  });
});

test("an item and index given to the environment are the forEach step's ctx.item and ctx.index", async () => {
  const read = (ctx: StepContext) => ({ item: ctx.item, index: ctx.index, key: ctx.idempotencyKey });
  const env = new StepEnvironment({ step: "charge", executionId: "ex-9", run: 3, item: { id: "o-7" }, index: 2 });
  // The key names the item after the run, as the engine builds it.
  assert.deepEqual(await env.run(read), {
    outcome: "success",
    output: { item: { id: "o-7" }, index: 2, key: "ex-9/charge/3/2" },
  });
});

test("an item alone is at index 0, an index alone is a null item, and without either both are null", async () => {
  const read = (ctx: StepContext) => ({ item: ctx.item, index: ctx.index, key: ctx.idempotencyKey });
  assert.deepEqual(await new StepEnvironment({ step: "charge", item: "o-7" }).run(read), {
    outcome: "success",
    output: { item: "o-7", index: 0, key: "test-execution/charge/1/0" },
  });
  assert.deepEqual(await new StepEnvironment({ step: "charge", index: 4 }).run(read), {
    outcome: "success",
    output: { item: null, index: 4, key: "test-execution/charge/1/4" },
  });
  assert.deepEqual(await new StepEnvironment({ step: "charge", args: { width: 128 } }).run(read), {
    outcome: "success",
    output: { item: null, index: null, key: "test-execution/charge/1" },
  });
  assert.throws(() => new StepEnvironment({ index: -1 }), /index is 0-based/);
  assert.throws(() => new StepEnvironment({ index: 1.5 }), /index is 0-based/);
});

test("an outcome given to the environment is the compensation step's frozen ctx.outcome", async () => {
  const cancelHotel = (ctx: StepContext) => {
    if (ctx.outcome === null || ctx.outcome.phase === "Succeeded") {
      return { skipped: true };
    }
    const { reason, step } = ctx.outcome;
    return { refund: ctx.results.hotel, because: reason, after: step, frozen: Object.isFrozen(ctx.outcome) };
  };
  const env = new StepEnvironment({
    results: { hotel: "h-1" },
    outcome: { phase: "Failed", reason: "card declined", step: "pay" },
  });
  assert.deepEqual(await env.run(cancelHotel), {
    outcome: "success",
    output: { refund: "h-1", because: "card declined", after: "pay", frozen: true },
  });
});

test("the environment's outcome fills what it leaves out with null, and without one ctx.outcome is null", async () => {
  const read = (ctx: StepContext) => ({ outcome: ctx.outcome });
  assert.deepEqual(await new StepEnvironment({ outcome: { phase: "Succeeded", output: { trip: "t-1" } } }).run(read), {
    outcome: "success",
    output: { outcome: { phase: "Succeeded", reason: null, step: null, output: { trip: "t-1" } } },
  });
  assert.deepEqual(await new StepEnvironment({ vars: { attempts: 1 } }).run(read), {
    outcome: "success",
    output: { outcome: null },
  });
});

test("outcomes, JSON encoding and input checks are the worker's", async () => {
  const env = new StepEnvironment();
  assert.deepEqual(await env.run((ctx) => ctx.sleep("1d", { at: new Date(0) })), {
    outcome: "sleep",
    durationMs: 86_400_000,
    output: { at: "1970-01-01T00:00:00.000Z" },
  });
  assert.deepEqual(await env.run((ctx) => ctx.requestApproval({ kind: "refund", data: { amount: 5 } })), {
    outcome: "approval",
    kind: "refund",
    timeoutMs: 0,
    data: { amount: 5 },
  });
  const nan = await env.run(() => Number.NaN);
  assert.ok(nan.outcome === "failure");
  assert.deepEqual([nan.type, nan.nonRetryable], ["InvalidOutput", true]);
  const forgot = await env.run((ctx) => {
    ctx.retryAfter("1s");
    return 1;
  });
  assert.ok(forgot.outcome === "failure");
  assert.equal(forgot.type, "OutcomeNotReturned");
  const refused = await env.run((_ctx, input: number) => input, "x", {
    parseInput: (value) => {
      if (typeof value !== "number") throw new Error("not a number");
      return value;
    },
  });
  assert.ok(refused.outcome === "failure");
  assert.equal(refused.type, "InvalidArgument");
  assert.match(refused.message, /does not accept the workflow input: not a number/);
});

test("a failure is logged with its stack trace to the given logger", async () => {
  const log = new MemoryLogger();
  const result = await new StepEnvironment({ logger: log }).run(() => {
    throw new RangeError("too far");
  });
  assert.ok(result.outcome === "failure");
  assert.equal(result.type, "RangeError");
  const logged = log.errorOf("warn", "step step of execution test-execution failed on attempt 1");
  assert.ok(logged instanceof RangeError);
  assert.equal(logged.stack, result.stacktrace);
});

test("cancel aborts the running step's signal; a step that returns anyway reports its value", async () => {
  const env = new StepEnvironment();
  const running = env.run(async (ctx) => {
    await aborted(ctx);
    return (ctx.signal.reason as CancelledError).reason;
  });
  await delay(1);
  env.cancel();
  assert.deepEqual(await running, { outcome: "success", output: "cancel_requested" });
});

test("cancel before run starts the next run cancelled", async () => {
  const env = new StepEnvironment();
  env.cancel();
  assert.deepEqual(await env.run((ctx) => ctx.signal.throwIfAborted()), {
    outcome: "cancelled",
    message: "the step was cancelled",
  });
  assert.deepEqual(await env.run(() => "fresh"), { outcome: "success", output: "fresh" });
});

test("a lost lease makes ctx.heartbeat throw and drops the outcome", async () => {
  let thrown: unknown;
  const env: StepEnvironment = new StepEnvironment({ onHeartbeat: () => env.cancel("heartbeat_timeout") });
  const result = await env.run((ctx) => {
    try {
      ctx.heartbeat("beat");
    } catch (error) {
      thrown = error;
    }
    return "late";
  });
  assert.deepEqual(result, { outcome: "dropped", reason: "heartbeat_timeout" });
  assert.ok(thrown instanceof CancelledError);
  assert.equal(thrown.reason, "heartbeat_timeout");
  assert.deepEqual(env.heartbeats, ["beat"]);
});

test("shutdown stops waiting for a step that ignores its signal", async () => {
  const env = new StepEnvironment();
  const running = env.run(() => new Promise(() => undefined));
  await delay(1);
  env.cancel("shutdown");
  const result = await running;
  assert.ok(result.outcome === "failure");
  assert.deepEqual([result.type, result.nonRetryable], ["WorkerShutdown", false]);
});

test("one environment runs one step at a time", async () => {
  const env = new StepEnvironment();
  const running = env.run(() => delay(20, "done"));
  await assert.rejects(env.run(() => 1), /already running a step/);
  assert.deepEqual(await running, { outcome: "success", output: "done" });
});
