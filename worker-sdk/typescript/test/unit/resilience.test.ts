import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { status } from "@grpc/grpc-js";

import { eventually, FakeWorkerService, makeTask, outputOf, running, testWorker } from "../support/fake-service.js";

async function withService<T>(body: (service: FakeWorkerService) => Promise<T>): Promise<T> {
  const service = await new FakeWorkerService().start();
  try {
    return await body(service);
  } finally {
    await service.stop();
  }
}

test("a result is re-submitted through UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED until accepted", () =>
  withService(async (service) => {
    const { worker, log } = testWorker(service);
    worker.step("a", () => ({ ok: true }));
    service.completeErrors = [
      [status.UNAVAILABLE, "down"],
      [status.UNAVAILABLE, "still down"],
      [status.DEADLINE_EXCEEDED, "slow"],
      [status.ABORTED, "conflict"],
    ];
    await running(worker, async () => {
      const completion = await service.runTask(makeTask("a"));
      assert.deepEqual(outputOf(completion), { ok: true });
      assert.equal(service.completeAttempts, 5);
      const warnings = log.matching("warn", "cannot report the success");
      assert.equal(warnings.length, 3, `one warning per distinct reason:\n${warnings.join("\n")}`);
    });
  }));

test("an output refused as too large is replaced by a non-retryable PayloadTooLarge failure", () =>
  withService(async (service) => {
    const { worker } = testWorker(service);
    worker.step("big", () => "x".repeat(1000));
    service.rejectSuccess = [status.RESOURCE_EXHAUSTED, "step output is 1000 bytes; the limit is 10"];
    await running(worker, async () => {
      const completion = await service.runTask(makeTask("big"));
      assert.deepEqual(completion.outcome, {
        $case: "failure",
        value: {
          type: "PayloadTooLarge",
          message: "step output is 1000 bytes; the limit is 10",
          nonRetryable: true,
          stacktrace: "",
        },
      });
    });
  }));

test("an output refused as invalid becomes InvalidOutput, and another refusal gives up with a log line", () =>
  withService(async (service) => {
    const { worker, log } = testWorker(service);
    worker.step("odd", () => "odd");
    service.completeErrors = [
      [status.INVALID_ARGUMENT, "bad output"],
      [status.PERMISSION_DENIED, "not yours"],
    ];
    await running(worker, async () => {
      service.push(makeTask("odd"));
      await eventually(() => log.matching("error", "refused the report").length === 1, 3_000, "the refusal");
      assert.equal(service.completeAttempts, 2);
      assert.equal(service.completions.length, 0);
    });
  }));

test("while the server is down the worker keeps polling with backoff and logs once per outage", async () => {
  const probe = await new FakeWorkerService().start();
  const port = Number(probe.address.split(":")[1]);
  await probe.stop();
  const { worker, log } = testWorker(probe, { address: `127.0.0.1:${port}` });
  worker.step("a", () => "after the outage");
  await running(worker, async () => {
    await delay(900);
    assert.equal(log.matching("warn", "cannot poll test").length, 1);
    const service = await new FakeWorkerService().start(port);
    try {
      const completion = await service.runTask(makeTask("a"), 10_000);
      assert.equal(outputOf(completion), "after the outage");
      await eventually(() => log.matching("info", "polling test again after").length === 1, 2_000, "the recovery");
      assert.equal(log.matching("warn", "cannot poll test").length, 1);
    } finally {
      await service.stop();
    }
  });
});

test("no more steps run at once than maxConcurrency, and polls stop while it is full", () =>
  withService(async (service) => {
    const { worker } = testWorker(service, { maxConcurrency: 2, maxPollers: 4 });
    let active = 0;
    let peak = 0;
    worker.step("busy", async () => {
      active += 1;
      peak = Math.max(peak, active);
      await delay(150);
      active -= 1;
      return "ok";
    });
    await running(worker, async () => {
      const tasks = Array.from({ length: 6 }, () => makeTask("busy"));
      tasks.forEach((task) => service.push(task));
      await eventually(() => service.completions.length === 6, 5_000, "six completions");
      assert.equal(peak, 2);
    });
  }));
