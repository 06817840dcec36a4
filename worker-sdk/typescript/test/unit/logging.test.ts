import assert from "node:assert/strict";
import { test } from "node:test";

import { status } from "@grpc/grpc-js";

import { consoleLogger } from "@cerebelum/worker";

import { eventually, FakeWorkerService, makeTask, outputOf, running, testWorker } from "../support/fake-service.js";

async function withService<T>(body: (service: FakeWorkerService) => Promise<T>): Promise<T> {
  const service = await new FakeWorkerService().start();
  try {
    return await body(service);
  } finally {
    await service.stop();
  }
}

test("a failing step's stack trace is sent with the failure and written to the worker's log", () =>
  withService(async (service) => {
    const { worker, log } = testWorker(service);
    worker.step("boom", () => {
      throw new TypeError("bad thing");
    });
    await running(worker, async () => {
      const task = makeTask("boom", { attempt: 3 });
      const completion = await service.runTask(task);
      assert.equal(completion.outcome?.$case, "failure");
      const stacktrace = completion.outcome.value.stacktrace;
      assert.match(stacktrace, /^TypeError: bad thing\n\s+at /);
      const line = "step boom of execution ex-1 failed on attempt 3 (retryable): TypeError: bad thing";
      await eventually(() => log.matching("warn", line).length === 1, 2_000, "the failure's log line");
      const logged = log.errorOf("warn", line);
      assert.ok(logged instanceof TypeError);
      assert.equal(logged.stack, stacktrace, "the log has the stack trace that was sent");
    });
  }));

test("the console logger writes a warning's error with its stack trace", (t) => {
  const written: string[] = [];
  t.mock.method(process.stderr, "write", (chunk: string) => {
    written.push(chunk);
    return true;
  });
  const error = new RangeError("out of range");
  consoleLogger("info").warn("step x failed", error);
  t.mock.restoreAll();
  assert.equal(written.length, 1);
  assert.match(written[0]!, /WARN cerebelum\.worker: step x failed\nRangeError: out of range\n\s+at /);
});

test("the worker logs one start-up line: worker, task queue, address, security, steps and concurrency", () =>
  withService(async (service) => {
    const { worker, log } = testWorker(service, { workerId: "w-1", maxConcurrency: 3, maxPollers: 5 });
    worker.step("charge", () => 1).step("refund", () => 2);
    await running(worker, async () => {
      await eventually(() => service.polls.length > 0, 2_000, "a poll");
    });
    const started = log.matching("info", "started");
    assert.deepEqual(started, [
      `worker w-1 started: task queue test at ${service.address} (plaintext, no token); ` +
        "steps charge, refund; up to 3 at once, 3 pollers",
    ]);
  }));

test("after an outage each distinct reason is logged once: UNAVAILABLE, then UNAUTHENTICATED", async () => {
  const probe = await new FakeWorkerService().start();
  const port = Number(probe.address.split(":")[1]);
  await probe.stop();
  const { worker, log } = testWorker(probe, { address: `127.0.0.1:${port}` });
  worker.step("a", () => "served");
  const cannot = (): string[] => log.matching("warn", "cannot poll test");
  await running(worker, async () => {
    await eventually(() => cannot().length === 1, 5_000, "the first failure");
    const service = await new FakeWorkerService().start(port);
    try {
      service.pollError = [status.UNAUTHENTICATED, "a bearer token is required"];
      await eventually(() => service.polls.length >= 5, 10_000, "five refused polls");
      assert.equal(cannot().length, 2, cannot().join("\n"));
      assert.match(cannot()[0]!, /\(UNAVAILABLE: /);
      assert.match(cannot()[1]!, /\(UNAUTHENTICATED: a bearer token is required; the engine wants a valid bearer token/);
      service.pollError = undefined;
      assert.equal(outputOf(await service.runTask(makeTask("a"), 10_000)), "served");
      await eventually(() => log.matching("info", "polling test again after").length === 1, 2_000, "the recovery");
      service.pollError = [status.UNAUTHENTICATED, "the token expired"];
      await eventually(() => cannot().length === 3, 5_000, "the next outage's first failure");
      assert.equal(cannot().length, 3);
    } finally {
      service.pollError = undefined;
      await service.stop();
    }
  });
});
