import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { status } from "@grpc/grpc-js";

import { CancelledError, type StepContext } from "@cerebelum/worker";

import { eventually, FakeWorkerService, makeTask, outputOf, running, testWorker } from "../support/fake-service.js";

let service: FakeWorkerService;

beforeEach(async () => {
  service = await new FakeWorkerService().start();
});

afterEach(async () => {
  await service.stop();
});

/** Resolves when `ctx.signal` aborts, with its reason. */
function aborted(ctx: StepContext): Promise<unknown> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) {
      resolve(ctx.signal.reason);
    }
    ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true });
  });
}

test("the SDK keeps the lease alive every lease / 3 while a step runs, and stops when it ends", async () => {
  const { worker } = testWorker(service);
  const task = makeTask("hold", { leaseMs: 300 });
  worker.step("hold", async () => {
    await eventually(() => service.heartbeatsOf(task.taskToken).length >= 5, 5_000, "five automatic beats");
    return "held";
  });
  await running(worker, async () => {
    assert.equal(outputOf(await service.runTask(task, 10_000)), "held");
    const beats = service.heartbeatsOf(task.taskToken);
    assert.ok(beats.every((beat) => beat.request.workerId === worker.workerId && beat.request.progressJson === ""));
    // Sent 100 ms apart at least (received with some jitter either way).
    const span = beats.at(-1)!.at - beats[0]!.at;
    assert.ok(span >= (beats.length - 1) * 100 - 30, `${beats.length} beats in ${Math.round(span)} ms`);
    const settled = service.heartbeatsOf(task.taskToken).length;
    await delay(300);
    assert.equal(service.heartbeatsOf(task.taskToken).length, settled, "no beat after the step ended");
  });
});

test("recorded progress goes out with the next automatic beat", async () => {
  const { worker } = testWorker(service);
  const task = makeTask("progress", { leaseMs: 300 });
  const sent = (progress: string) => () =>
    service.heartbeatsOf(task.taskToken).some((beat) => beat.request.progressJson === progress);
  worker.step("progress", async (ctx) => {
    ctx.heartbeat({ done: 1 });
    await eventually(sent('{"done":1}'), 5_000, "the first progress");
    ctx.heartbeat({ done: 2 });
    await eventually(sent('{"done":2}'), 5_000, "the second progress");
    return ctx.progressJson;
  });
  await running(worker, async () => {
    assert.equal(outputOf(await service.runTask(task, 10_000)), '{"done":2}');
  });
});

test("with heartbeatRequired a beat is only sent after the step called heartbeat", async () => {
  const { worker } = testWorker(service);
  worker.step("quiet", async (ctx) => {
    await delay(400);
    ctx.heartbeat("once");
    await delay(400);
    return "done";
  });
  await running(worker, async () => {
    const task = makeTask("quiet", { leaseMs: 3_000, heartbeatRequired: true });
    await service.runTask(task);
    const beats = service.heartbeatsOf(task.taskToken);
    assert.deepEqual(
      beats.map((beat) => beat.request.progressJson),
      ['"once"'],
      "one call, one beat: a stuck step would lose its lease",
    );
  });
});

test("a first call is sent at once and the calls after it wait for the interval, carrying the latest progress", async () => {
  const { worker } = testWorker(service);
  const task = makeTask("chatty", { leaseMs: 3_000, heartbeatRequired: true });
  let firstAfter = Number.POSITIVE_INFINITY;
  worker.step("chatty", async (ctx) => {
    const began = performance.now();
    for (let i = 1; i <= 30; i += 1) {
      ctx.heartbeat({ i });
    }
    await eventually(() => service.heartbeatsOf(task.taskToken).length >= 1, 5_000, "the first beat");
    firstAfter = performance.now() - began;
    await eventually(() => service.heartbeatsOf(task.taskToken).length >= 2, 5_000, "the second beat");
    await delay(100);
    return "ok";
  });
  await running(worker, async () => {
    await service.runTask(task, 10_000);
    const beats = service.heartbeatsOf(task.taskToken);
    assert.ok(firstAfter < 900, `the first beat took ${Math.round(firstAfter)} ms; the interval is 1 s`);
    assert.deepEqual(
      beats.map((beat) => beat.request.progressJson),
      ['{"i":1}', '{"i":30}'],
    );
    assert.ok(beats[1]!.at - beats[0]!.at >= 950, "the second beat waited for the interval");
  });
});

test("cancel_requested aborts ctx.signal and a step that stops is reported cancelled", async () => {
  const { worker } = testWorker(service);
  let reason: unknown;
  worker.step("wait", async (ctx) => {
    reason = await aborted(ctx);
    assert.equal(ctx.cancelled, true);
    ctx.signal.throwIfAborted();
    return "not reached";
  });
  await running(worker, async () => {
    service.heartbeatReply = { cancelRequested: true, leaseLost: false, leaseExpiresAtMs: 0 };
    const completion = await service.runTask(makeTask("wait", { leaseMs: 150 }));
    assert.deepEqual(completion.outcome, { $case: "cancelled", value: { message: "the step was cancelled" } });
    assert.ok(reason instanceof CancelledError);
    assert.equal(reason.reason, "cancel_requested");
  });
});

test("a step that still returns after cancel_requested reports its value", async () => {
  const { worker } = testWorker(service);
  worker.step("stubborn", async (ctx) => {
    await aborted(ctx);
    return "finished anyway";
  });
  await running(worker, async () => {
    service.heartbeatReply = { cancelRequested: true, leaseLost: false, leaseExpiresAtMs: 0 };
    assert.equal(outputOf(await service.runTask(makeTask("stubborn", { leaseMs: 150 }))), "finished anyway");
  });
});

test("a lost lease aborts the step and drops its outcome", async () => {
  const { worker, log } = testWorker(service);
  let ended = false;
  worker.step("orphan", async (ctx) => {
    const reason = await aborted(ctx);
    ended = true;
    assert.equal((reason as CancelledError).reason, "lease_lost");
    return "late";
  });
  await running(worker, async () => {
    service.heartbeatReply = { cancelRequested: false, leaseLost: true, leaseExpiresAtMs: 0 };
    const task = makeTask("orphan", { leaseMs: 150 });
    service.push(task);
    await eventually(() => ended, 3_000, "the step to see its lost lease");
    await eventually(() => log.matching("info", "its lease was lost").length === 1, 1_000, "the drop to be logged");
    assert.equal(service.completion(task.taskToken), undefined);
    assert.equal(service.heartbeatsOf(task.taskToken).length, 1, "no beats after the lease was lost");
  });
});

test("a step that must heartbeat and does not is told when its heartbeat timeout passes, and its outcome dropped", async () => {
  const { worker, log } = testWorker(service);
  let reason: unknown;
  let waited = 0;
  worker.step("stuck", async (ctx) => {
    const began = performance.now();
    reason = await aborted(ctx); // stands for work that never calls ctx.heartbeat()
    waited = performance.now() - began;
    return "too late";
  });
  await running(worker, async () => {
    const task = makeTask("stuck", { leaseMs: 300, heartbeatRequired: true });
    service.push(task);
    await eventually(() => reason !== undefined, 5_000, "the step to learn of its timeout");
    assert.ok(reason instanceof CancelledError);
    assert.equal(reason.reason, "heartbeat_timeout");
    assert.ok(waited >= 250, `told after ${Math.round(waited)} ms; the heartbeat timeout is 300 ms`);
    await eventually(() => log.matching("info", "it missed its heartbeat timeout").length === 1, 2_000, "the drop");
    assert.equal(log.matching("warn", "did not heartbeat within its heartbeat timeout of 0.3 s").length, 1);
    assert.equal(service.completion(task.taskToken), undefined);
  });
});

test("a step that keeps heartbeating within its heartbeat timeout is never told it timed out", async () => {
  const { worker } = testWorker(service);
  worker.step("steady", async (ctx) => {
    for (let i = 0; i < 12; i += 1) {
      ctx.heartbeat({ i });
      await delay(50);
    }
    return ctx.cancelled ? "told" : "held";
  });
  await running(worker, async () => {
    const task = makeTask("steady", { leaseMs: 300, heartbeatRequired: true });
    assert.equal(outputOf(await service.runTask(task)), "held");
  });
});

test("a step that keeps heartbeating while its beats fail is left to the engine, not stopped by the worker", async () => {
  const { worker } = testWorker(service);
  worker.step("through-outage", async (ctx) => {
    for (let i = 0; i < 20; i += 1) {
      ctx.heartbeat({ i });
      await delay(50);
    }
    return ctx.cancelled ? "told" : "held";
  });
  await running(worker, async () => {
    service.heartbeatError = [status.UNAVAILABLE, "the engine is restarting"];
    const task = makeTask("through-outage", { leaseMs: 300, heartbeatRequired: true });
    assert.equal(outputOf(await service.runTask(task)), "held");
    assert.ok(service.heartbeatsOf(task.taskToken).length >= 2, "beats were tried");
  });
});

test("ctx.heartbeat throws once the engine says the lease is gone", async () => {
  const { worker } = testWorker(service);
  let thrown: unknown;
  worker.step("looping", async (ctx) => {
    try {
      for (let i = 0; i < 200; i += 1) {
        ctx.heartbeat();
        await delay(20);
      }
    } catch (error) {
      thrown = error;
      throw error;
    }
    thrown = "never";
    return "looped";
  });
  await running(worker, async () => {
    service.heartbeatReply = { cancelRequested: false, leaseLost: true, leaseExpiresAtMs: 0 };
    service.push(makeTask("looping", { leaseMs: 150 }));
    await eventually(() => thrown !== undefined, 3_000, "heartbeat to throw");
    assert.ok(thrown instanceof CancelledError);
    assert.equal(thrown.reason, "lease_lost");
  });
});

test("a step that blocks the event loop past its heartbeat timeout learns it from ctx.heartbeat", async () => {
  const { worker } = testWorker(service);
  let thrown: unknown;
  let blockedFor = 0;
  worker.step("cpu-bound", (ctx) => {
    const began = performance.now();
    try {
      while (performance.now() - began < 3_000) {
        ctx.heartbeat(); // no reply can arrive while this loop holds the event loop
      }
    } catch (error) {
      thrown = error;
    }
    blockedFor = performance.now() - began;
    return "stopped";
  });
  await running(worker, async () => {
    service.push(makeTask("cpu-bound", { leaseMs: 200, heartbeatRequired: true }));
    await eventually(() => blockedFor > 0, 5_000, "the loop to end");
    assert.ok(thrown instanceof CancelledError, String(thrown));
    assert.equal(thrown.reason, "heartbeat_timeout");
    // The beat sent first cannot come back while the loop runs: past its 1 s call timeout it is stuck.
    assert.ok(blockedFor >= 950 && blockedFor < 2_500, `stopped after ${Math.round(blockedFor)} ms`);
  });
});

test("a retried step reads the progress its previous attempt last sent, and a first attempt reads null", async () => {
  const { worker } = testWorker(service);
  const seen: unknown[] = [];
  worker.step("resume", async (ctx) => {
    seen.push(ctx.lastProgress);
    return "ok";
  });
  await running(worker, async () => {
    await service.runTask(makeTask("resume"), 5_000);
    await service.runTask(makeTask("resume", { attempt: 2, lastProgressJson: '{"page":7}' }), 5_000);
    assert.deepEqual(seen, [null, { page: 7 }]);
  });
});
