import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import type { CancelledError } from "@cerebelum/worker";

import { eventually, FakeWorkerService, makeTask, outputOf, testWorker } from "../support/fake-service.js";

test("shutdown stops polling at once and lets a running step finish and report", async () => {
  const service = await new FakeWorkerService().start();
  try {
    const { worker } = testWorker(service, { pollWait: "5s" });
    let started = false;
    worker.step("slow", async () => {
      started = true;
      await delay(400);
      return "drained";
    });
    const done = worker.run({ handleSignals: false });
    const task = makeTask("slow");
    service.push(task);
    await eventually(() => started, 3_000, "the step to start");
    const began = performance.now();
    await worker.shutdown();
    await done;
    assert.ok(performance.now() - began < 2_000, "the 5 s poll was cancelled, not waited for");
    assert.equal(outputOf(service.completion(task.taskToken)!), "drained");
    const polls = service.polls.length;
    await delay(100);
    assert.equal(service.polls.length, polls);
  } finally {
    await service.stop();
  }
});

test("a step still running when the drain timeout runs out is reported as WorkerShutdown", async () => {
  const service = await new FakeWorkerService().start();
  try {
    const { worker, log } = testWorker(service, { drainTimeout: 300 });
    let reason: string | undefined;
    let started = false;
    worker.step("forever", (ctx) => {
      started = true;
      ctx.signal.addEventListener("abort", () => {
        reason = (ctx.signal.reason as CancelledError).reason;
      });
      return new Promise<never>(() => undefined); // never settles, ignores the signal
    });
    const done = worker.run({ handleSignals: false });
    const task = makeTask("forever");
    service.push(task);
    await eventually(() => started, 3_000, "the step to start");
    await worker.shutdown();
    await done;
    assert.equal(reason, "shutdown");
    const completion = service.completion(task.taskToken);
    assert.equal(completion?.outcome?.$case, "failure");
    assert.equal(completion.outcome.value.type, "WorkerShutdown");
    assert.equal(completion.outcome.value.nonRetryable, false);
    assert.equal(log.matching("warn", "1 steps still running after 0.3 s").length, 1);
  } finally {
    await service.stop();
  }
});
