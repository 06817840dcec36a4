import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate } from "node:timers/promises";

import { NonRetryableError, type StepContext } from "@cerebelum/worker";
import { StepEnvironment } from "@cerebelum/worker/testing";

interface Order { id: string; amount: number }

// The steps under test, as registered with worker.step("charge", charge) and so on.
export async function charge(ctx: StepContext, input: Order) {
  if (input.amount <= 0) throw new NonRetryableError("nothing to charge");
  if (!ctx.result<{ open: boolean }>("check-gateway").open) return ctx.retryAfter("30s");
  return { order: input.id, charged: input.amount };
}

export async function copyRows(ctx: StepContext, input: { rows: number }) {
  for (let row = 0; row < input.rows; row += 1) {
    ctx.signal.throwIfAborted();
    ctx.heartbeat({ row });
    await setImmediate();
  }
  return { copied: input.rows };
}

test("charge returns a receipt once the gateway is open, and polls until then", async () => {
  const open = new StepEnvironment({ results: { "check-gateway": { open: true } } });
  const receipt = await open.run(charge, { id: "o-1", amount: 42 });
  assert.deepEqual(receipt, { outcome: "success", output: { order: "o-1", charged: 42 } });

  const closed = new StepEnvironment({ results: { "check-gateway": { open: false } } });
  assert.deepEqual(await closed.run(charge, { id: "o-1", amount: 42 }), { outcome: "retryAfter", delayMs: 30_000 });
});

test("charge refuses an empty order for good", async () => {
  const result = await new StepEnvironment().run(charge, { id: "o-2", amount: 0 });
  assert.ok(result.outcome === "failure");
  assert.deepEqual([result.type, result.nonRetryable], ["NonRetryableError", true]);
  assert.match(result.stacktrace, /nothing to charge/);
});

test("copyRows reports its progress and stops when cancelled", async () => {
  const env: StepEnvironment = new StepEnvironment({
    onHeartbeat: (progress) => (progress as { row: number }).row === 2 && env.cancel(),
  });
  const result = await env.run(copyRows, { rows: 1000 });
  assert.deepEqual(result, { outcome: "cancelled", message: "the step was cancelled" });
  assert.deepEqual(env.heartbeats, [{ row: 0 }, { row: 1 }, { row: 2 }]);
});
