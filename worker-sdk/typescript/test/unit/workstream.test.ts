import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";

import { eventually, FakeWorkerService, makeTask, running, testWorker } from "../support/fake-service.js";

let service: FakeWorkerService;

beforeEach(async () => {
  service = await new FakeWorkerService().start();
  service.batched = true;
});

afterEach(async () => {
  await service.stop();
});

test("a worker polls and reports on one Work stream when the engine serves it", async () => {
  service.streamed = true;
  const { worker } = testWorker(service);
  worker.step("a", () => 1);
  await running(worker, async () => {
    await service.runTask(makeTask("a", { token: "t1" }));
    await service.runTask(makeTask("a", { token: "t2" }));
  });
  assert.equal(service.streamsOpened, 1);
  assert.ok(service.streamPolls > 0);
  assert.equal(service.polls.length, service.streamPolls); // no unary poll
  assert.deepEqual(
    service.batches.flatMap((batch) => batch.reports.map((report) => report.taskToken)),
    ["t1", "t2"],
  );
});

test("on the stream a report asks for its next task by the steps its stream polled with, not its own", async () => {
  service.streamed = true;
  const { worker } = testWorker(service);
  for (const name of ["a", "b", "c"]) {
    worker.step(name, () => 1);
  }
  await running(worker, async () => {
    await service.runTask(makeTask("a", { token: "t1" }));
  });
  const [report] = service.batches.flatMap((batch) => batch.reports);
  assert.equal(report?.taskToken, "t1");
  assert.equal(report?.pollNext?.taskQueue, service.polls[0]?.taskQueue);
  assert.equal(report?.pollNext?.streamSteps, true);
  assert.deepEqual(report?.pollNext?.steps, []); // the poll before it on the stream sent them
  assert.deepEqual([...(service.polls[0]?.steps ?? [])].sort(), ["a", "b", "c"]);
});

test("against an engine without the Work stream the worker makes unary calls from then on", async () => {
  const { worker } = testWorker(service);
  worker.step("a", () => 1);
  await running(worker, async () => {
    await service.runTask(makeTask("a", { token: "t1" }));
    await service.runTask(makeTask("a", { token: "t2" }));
  });
  assert.equal(service.streamsOpened, 1); // asked once, refused
  assert.equal(service.streamPolls, 0);
  assert.ok(service.polls.length > 0);
  assert.equal(service.completions.length, 2);
});

test("polls the worker gives up on the stream are cancelled on the engine and hold no task", async () => {
  service.streamed = true;
  const { worker } = testWorker(service, { pollWait: 30_000, maxPollers: 3 });
  worker.step("a", () => 1);
  await running(worker, async () => {
    await eventually(() => service.waitingPolls === 3, 5_000, "three polls parked");
  });
  await eventually(() => service.waitingPolls === 0, 5_000, "the parked polls cancelled");
  service.push(makeTask("a", { token: "after" }));
  assert.equal(service.completion("after"), undefined);
  const { worker: next } = testWorker(service);
  next.step("a", () => 2);
  await running(next, async () => {
    await eventually(() => service.completion("after") !== undefined, 5_000, "the task run by the next worker");
  });
});

test("a renewed token opens a new Work stream, and the calls after it carry the new token", async () => {
  service.streamed = true;
  const dir = mkdtempSync(join(tmpdir(), "cerebelum-token-"));
  try {
    const file = join(dir, "token");
    writeFileSync(file, "first");
    const { worker } = testWorker(service, { tokenFile: file });
    worker.step("a", () => 1);
    await running(worker, async () => {
      await service.runTask(makeTask("a", { token: "t1" }));
      writeFileSync(file, "second");
      await service.runTask(makeTask("a", { token: "t2" }));
    });
    assert.deepEqual(
      service.streamMetadata.map((metadata) => metadata["authorization"]),
      ["Bearer first", "Bearer second"],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
