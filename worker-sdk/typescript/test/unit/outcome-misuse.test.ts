import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { retryAfter, sleep, type Worker } from "@cerebelum/worker";
import type { CompleteTaskRequest } from "@cerebelum/worker/proto/worker";

import { FakeWorkerService, makeTask, testWorker } from "../support/fake-service.js";

let service: FakeWorkerService;
let worker: Worker;
let done: Promise<void>;

before(async () => {
  service = await new FakeWorkerService().start();
  ({ worker } = testWorker(service));
  worker
    .step("forgot-return", (ctx) => {
      ctx.sleep("1h");
      return "done";
    })
    .step("awaited", async (ctx) => {
      await ctx.retryAfter("5s");
      return undefined;
    })
    .step("module-helper", async () => {
      await delay(1);
      sleep("1h", { later: true });
      return { now: true };
    })
    .step("nested", (ctx) => ({ wait: ctx.requestApproval({ kind: "refund" }) }))
    .step("two-built", (ctx) => {
      ctx.retryAfter("1s");
      return ctx.retryAfter("2s");
    })
    .step("returned", async () => {
      await delay(1);
      return retryAfter("3s");
    });
  done = worker.run({ handleSignals: false });
});

after(async () => {
  await worker.shutdown();
  await done;
  await service.stop();
});

function failureOf(completion: CompleteTaskRequest): { type: string; message: string; nonRetryable: boolean } {
  assert.equal(completion.outcome?.$case, "failure", JSON.stringify(completion.outcome));
  return completion.outcome.value;
}

test("an outcome built with ctx.sleep but not returned fails the step for good, naming the helper", async () => {
  const failure = failureOf(await service.runTask(makeTask("forgot-return")));
  assert.equal(failure.type, "OutcomeNotReturned");
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, /^step 'forgot-return' called ctx\.sleep\(\.\.\.\) but returned a string: /);
  assert.match(failure.message, /write `return ctx\.sleep\(\.\.\.\)`/);
});

test("awaiting ctx.retryAfter instead of returning it is reported the same way", async () => {
  const failure = failureOf(await service.runTask(makeTask("awaited")));
  assert.equal(failure.type, "OutcomeNotReturned");
  assert.match(failure.message, /called ctx\.retryAfter\(\.\.\.\) but returned nothing: .*not `await ctx\.retryAfter/);
});

test("the module-level builders are checked too, across awaits", async () => {
  const failure = failureOf(await service.runTask(makeTask("module-helper")));
  assert.equal(failure.type, "OutcomeNotReturned");
  assert.match(failure.message, /called sleep\(\.\.\.\) but returned an object/);
});

test("an outcome nested in the output, or built besides the one returned, is refused", async () => {
  assert.match(failureOf(await service.runTask(makeTask("nested"))).message, /called ctx\.requestApproval/);
  assert.match(
    failureOf(await service.runTask(makeTask("two-built"))).message,
    /called ctx\.retryAfter\(\.\.\.\) but returned another outcome \(retryAfter\)/,
  );
});

test("an outcome that is returned still takes effect", async () => {
  assert.deepEqual((await service.runTask(makeTask("returned"))).outcome, {
    $case: "retryAfter",
    value: { delayMs: 3000 },
  });
});
