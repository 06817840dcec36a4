/**
 * The worker's reports batched with CompleteTasks: a report goes at once while fewer than four calls
 * are in flight, those that become ready while four are go together in the next call, each gets its
 * own result, and an engine that answers UNIMPLEMENTED gets CompleteTask per report. Against the
 * in-process fake.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

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

/** Until every callback queued so far (I/O included) has run. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test("reports go at once, each alone, up to four calls in flight; those ready meanwhile go together next", () =>
  withService(async (service) => {
    service.batched = true;
    let release = (): void => {};
    service.batchGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { worker } = testWorker(service, { maxConcurrency: 8 });
    let ran = 0;
    worker.step("a", () => {
      ran += 1;
      return ran;
    });
    await running(worker, async () => {
      const alone = ["first", "t2", "t3", "t4"];
      for (const [index, token] of alone.entries()) {
        service.push(makeTask("a", { token }));
        await eventually(() => service.batches.length === index + 1, 5_000, `the call of ${token}`);
      }
      assert.deepEqual(
        service.batches.map((b) => b.reports.map((r) => r.taskToken)),
        alone.map((token) => [token]),
      );
      for (const token of ["t5", "t6", "t7"]) {
        service.push(makeTask("a", { token }));
      }
      await eventually(() => ran === 7, 5_000, "the other steps to run");
      for (let i = 0; i < 5; i += 1) {
        await settled();
      }
      assert.equal(service.batches.length, 4, "nothing else sent while four calls are in flight");
      release();
      await eventually(() => service.completions.length === 7, 5_000, "every report acknowledged");
      assert.deepEqual(service.batches[4]?.reports.map((r) => r.taskToken).sort(), ["t5", "t6", "t7"]);
      assert.equal(service.completeTasksAttempts, 5);
    });
  }));

test("a report refused in a batch reply is replaced by a failure, sent again in the next call", () =>
  withService(async (service) => {
    service.batched = true;
    const { worker } = testWorker(service);
    worker.step("big", () => "x".repeat(1000));
    service.rejectSuccess = [status.RESOURCE_EXHAUSTED, "step output is 1000 bytes; the limit is 10"];
    await running(worker, async () => {
      const completion = await service.runTask(makeTask("big"));
      assert.equal(completion.outcome?.$case, "failure");
      assert.equal(completion.outcome?.$case === "failure" && completion.outcome.value.type, "PayloadTooLarge");
      assert.equal(service.batches.length, 2, "the report, then its replacement, each in a CompleteTasks call");
    });
  }));

test("the next task comes back in a batch reply and runs in the same slot", () =>
  withService(async (service) => {
    service.batched = true;
    const { worker } = testWorker(service);
    worker.step("a", () => "one");
    worker.step("b", () => "two");
    const second = makeTask("b");
    const first = makeTask("a");
    service.nextTasks.set(first.taskToken, second);
    await running(worker, async () => {
      await service.runTask(first);
      await eventually(() => service.completion(second.taskToken) !== undefined, 5_000, "the next task's report");
      assert.equal(outputOf(service.completion(second.taskToken)!), "two");
      assert.equal(service.completeAttempts, 2);
      assert.equal(service.batches.length, 2);
    });
  }));

test("against an engine without CompleteTasks the worker reports with CompleteTask from then on", () =>
  withService(async (service) => {
    const { worker, log } = testWorker(service);
    worker.step("a", () => "done");
    await running(worker, async () => {
      for (const token of ["u1", "u2", "u3"]) {
        const completion = await service.runTask(makeTask("a", { token }));
        assert.equal(outputOf(completion), "done");
      }
      assert.equal(service.completeTasksAttempts, 1, "asked once, then never again");
      assert.equal(service.batches.length, 0);
      assert.equal(log.matching("info", "has no CompleteTasks").length, 1);
    });
  }));
