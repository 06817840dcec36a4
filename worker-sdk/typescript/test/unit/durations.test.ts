import assert from "node:assert/strict";
import { test } from "node:test";

import { durationMs, parseDuration, requestApproval, retryAfter, sleep } from "@cerebelum/worker";

test("numbers are milliseconds and text takes the Python SDK's units", () => {
  assert.equal(durationMs(1500), 1500);
  assert.equal(durationMs("500ms"), 500);
  assert.equal(durationMs("30s"), 30_000);
  assert.equal(durationMs("1h30m"), 5_400_000);
  assert.equal(durationMs("3d"), 259_200_000);
  assert.equal(durationMs("1.5s"), 1500);
  assert.equal(durationMs("1m 30s"), 90_000);
  assert.equal(parseDuration(0.4), 0.4);
  assert.equal(durationMs(0.4), 0);
});

test("negative, infinite and malformed durations are refused with a message", () => {
  assert.throws(() => durationMs(-1), RangeError);
  assert.throws(() => durationMs(Number.POSITIVE_INFINITY), RangeError);
  assert.throws(() => durationMs(""), /invalid duration/);
  assert.throws(() => durationMs("5 minutes"), /invalid duration "5 minutes"/);
  assert.throws(() => durationMs("10"), /invalid duration/);
  assert.throws(() => durationMs(true as unknown as number), TypeError);
});

test("outcome builders carry whole milliseconds and default their payloads to null", () => {
  assert.equal(retryAfter("2s").delayMs, 2000);
  const nap = sleep("1m");
  assert.equal(nap.durationMs, 60_000);
  assert.equal(nap.output, null);
  assert.deepEqual(sleep(10, { ok: 1 }).output, { ok: 1 });
  const ask = requestApproval();
  assert.deepEqual([ask.kind, ask.timeoutMs, ask.data], ["approval", 0, null]);
  const refund = requestApproval({ kind: "refund", timeout: "48h", data: { amount: 120 } });
  assert.deepEqual([refund.kind, refund.timeoutMs, refund.data], ["refund", 172_800_000, { amount: 120 }]);
});
