import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ApplicationError,
  type ApprovalRequest,
  NonRetryableError,
  type RetryAfter,
  StepContext,
  Worker,
} from "@cerebelum/worker";
import type { CompleteTaskRequest } from "@cerebelum/worker/proto/worker";

import { eventually, FakeWorkerService, makeTask, outputOf, testWorker } from "../support/fake-service.js";

interface Order {
  id: string;
  amount: number;
}
interface Receipt {
  order: string;
  charged: number;
}

let service: FakeWorkerService;
let worker: Worker;
let done: Promise<void>;

before(async () => {
  service = await new FakeWorkerService().start();
  ({ worker } = testWorker(service));
  worker
    .step("charge", async (_ctx, input: Order): Promise<Receipt> => ({ order: input.id, charged: input.amount }))
    .step("receipt", (ctx) => {
      const charge = ctx.result<Receipt>("charge");
      return `receipt for ${charge.order} (${ctx.idempotencyKey}, run ${ctx.run}, attempt ${ctx.attempt}, poll ${ctx.poll})`;
    })
    .step("context", (ctx) => ({
      executionId: ctx.executionId,
      workflow: ctx.workflow,
      step: ctx.step,
      workerId: ctx.workerId,
      deadline: ctx.deadline?.toISOString() ?? null,
      results: ctx.results,
      isContext: ctx instanceof StepContext,
    }))
    .step("vars", (ctx) => ({ vars: ctx.vars, page: (ctx.vars.cursor as { page: number } | undefined)?.page ?? null }))
    .step("bump-var", (ctx) => {
      // @ts-expect-error: ctx.vars is read-only; a step returns a result that the workflow's `set` reads
      ctx.vars.attempts = 3;
      return ctx.vars;
    })
    .step("cancel-hotel", (ctx) => ({ outcome: ctx.outcome, frozen: Object.isFrozen(ctx.outcome) }))
    .step("rewrite-outcome", (ctx) => {
      if (ctx.outcome !== null) {
        // @ts-expect-error: ctx.outcome is read-only: it says how the execution ended
        ctx.outcome.phase = "Succeeded";
      }
      return ctx.outcome;
    })
    .step("resize", (ctx) => ({
      step: ctx.step,
      function: ctx.function,
      key: ctx.idempotencyKey,
      args: ctx.args,
      frozen: Object.isFrozen(ctx.args),
    }))
    .step("charge-order", (ctx) => ({ item: ctx.item, index: ctx.index, key: ctx.idempotencyKey }))
    .step("rewrite-args", (ctx) => {
      // @ts-expect-error: ctx.args is read-only: the workflow step computes its arguments
      ctx.args.width = 0;
      return ctx.args;
    })
    .step("resize-checked", (ctx) => ctx.args, {
      parseInput: () => {
        throw new Error("no input expected");
      },
    })
    .step("nothing", () => undefined)
    .step("poller", (ctx): string | RetryAfter => (ctx.poll < 2 ? ctx.retryAfter("1.5s") : "ready"))
    .step("nap", (ctx) => ctx.sleep("3d", { napped: true }))
    .step("ask", (ctx): ApprovalRequest => ctx.requestApproval({ kind: "refund", timeout: "2d", data: { amount: 120 } }))
    .step("ask-forever", (ctx) => ctx.requestApproval())
    .step("boom", () => {
      throw new TypeError("bad thing");
    })
    .step("custom", () => {
      class QuotaExceeded extends Error {}
      throw new QuotaExceeded("no quota left");
    })
    .step("typed", () => {
      throw new ApplicationError("card declined", { type: "CardDeclined" });
    })
    .step("typed-final", () => {
      throw new ApplicationError("card stolen", { type: "CardStolen", nonRetryable: true });
    })
    .step("final", async () => {
      throw new NonRetryableError("nothing to charge");
    })
    .step("rejects-string", () => Promise.reject("just a string"))
    .step("nan", () => ({ total: Number.NaN }))
    .step("bigint", () => ({ total: 10n }))
    .step(
      "validated",
      (_ctx, input: Order) => input.amount * 2,
      {
        parseInput: (value) => {
          const order = value as Partial<Order> | null;
          if (typeof order?.amount !== "number") {
            throw new Error("amount must be a number");
          }
          return order as Order;
        },
      },
    );
  done = worker.run({ handleSignals: false });
});

after(async () => {
  await worker.shutdown();
  await done;
  await service.stop();
});

function failureOf(completion: CompleteTaskRequest): { type: string; message: string; nonRetryable: boolean; stacktrace: string } {
  assert.equal(completion.outcome?.$case, "failure", JSON.stringify(completion.outcome));
  return (completion.outcome as { value: { type: string; message: string; nonRetryable: boolean; stacktrace: string } }).value;
}

test("the worker polls its queue for exactly the registered steps", async () => {
  await service.runTask(makeTask("nothing"));
  const poll = service.polls[0];
  assert.ok(poll);
  assert.equal(poll.taskQueue, "test");
  assert.equal(poll.waitMs, 200);
  assert.equal(poll.workerId, worker.workerId);
  assert.deepEqual(poll.steps, worker.stepNames);
  assert.ok(poll.steps.includes("charge") && poll.steps.includes("validated"));
});

test("a report asks for the slot's next task, and one handed back runs without a poll", async () => {
  const second = makeTask("charge", { input: { id: "o-2", amount: 7 } });
  const first = makeTask("nothing");
  service.nextTasks.set(first.taskToken, second);
  const report = await service.runTask(first);
  await eventually(() => service.completion(second.taskToken) !== undefined, 5_000, "the handed-back task's report");
  assert.equal(report.pollNext?.taskQueue, "test");
  assert.equal(report.pollNext?.workerId, worker.workerId);
  assert.equal(report.pollNext?.waitMs, 0);
  assert.deepEqual(report.pollNext?.steps, worker.stepNames);
  assert.deepEqual(outputOf(service.completion(second.taskToken)!), { order: "o-2", charged: 7 });
});

test("a step gets the workflow input and returns its output as JSON", async () => {
  const completion = await service.runTask(makeTask("charge", { input: { id: "o-1", amount: 42 } }));
  assert.equal(completion.workerId, worker.workerId);
  assert.deepEqual(outputOf(completion), { order: "o-1", charged: 42 });
});

test("a step reads earlier steps' outputs by name from the task's results", async () => {
  const task = makeTask("receipt", {
    results: { charge: { order: "o-9", charged: 1 } },
    attempt: 2,
    run: 3,
    poll: 1,
  });
  assert.equal(outputOf(await service.runTask(task)), "receipt for o-9 (ex-1/receipt/3, run 3, attempt 2, poll 1)");
});

test("the context describes the task", async () => {
  const output = outputOf(await service.runTask(makeTask("context", { results: { a: 1 } })));
  assert.deepEqual(output, {
    executionId: "ex-1",
    workflow: "wf",
    step: "context",
    workerId: worker.workerId,
    deadline: new Date(1_900_000_000_000).toISOString(),
    results: { a: 1 },
    isContext: true,
  });
});

test("ctx.vars holds the workflow variables the task carries", async () => {
  const vars = { attempts: 2, cursor: { page: 3 }, lastError: null };
  const output = outputOf(await service.runTask(makeTask("vars", { results: { start: 1 }, vars })));
  assert.deepEqual(output, { vars, page: 3 });
});

test("ctx.vars is empty when the task has no vars key, or one that is not an object", async () => {
  for (const vars of [undefined, null, [["attempts", 2]], "attempts=2", 2]) {
    const argumentsJson = JSON.stringify({ input: 1, results: {}, vars });
    const output = outputOf(await service.runTask(makeTask("vars", { argumentsJson })));
    assert.deepEqual(output, { vars: {}, page: null }, `vars: ${JSON.stringify(vars)}`);
  }
});

test("a step cannot change ctx.vars: assigning one throws", async () => {
  const failure = failureOf(await service.runTask(makeTask("bump-var", { vars: { attempts: 2 } })));
  assert.equal(failure.type, "TypeError");
  assert.match(failure.message, /read only property 'attempts'/);
});

test("ctx.outcome tells a compensation or finally step how the execution ended, frozen", async () => {
  const failed = { phase: "Failed", reason: "card declined", step: "pay", output: null };
  const task = makeTask("cancel-hotel", { results: { hotel: "h-1" }, outcome: failed });
  const output = outputOf(await service.runTask(task));
  assert.deepEqual(output, { outcome: failed, frozen: true });
  const succeeded = { phase: "Succeeded", reason: null, step: null, output: { trip: "t-1" } };
  assert.deepEqual(outputOf(await service.runTask(makeTask("cancel-hotel", { outcome: succeeded }))), {
    outcome: succeeded,
    frozen: true,
  });
});

test("ctx.outcome is null when the task has no outcome key, or one not an object with a text phase", async () => {
  const malformed = [undefined, null, ["Failed", "card declined"], "Failed", { reason: "card declined" }, { phase: 3 }];
  for (const outcome of malformed) {
    const argumentsJson = JSON.stringify({ input: 1, results: {}, outcome });
    const output = outputOf(await service.runTask(makeTask("cancel-hotel", { argumentsJson })));
    assert.deepEqual(output, { outcome: null, frozen: true }, `outcome: ${JSON.stringify(outcome)}`);
  }
});

test("a reason or step of ctx.outcome that is not text is null, a missing output null", async () => {
  const outcome = { phase: "Cancelled", reason: { text: "stop" }, step: 7 };
  const output = outputOf(await service.runTask(makeTask("cancel-hotel", { outcome })));
  assert.deepEqual(output, { outcome: { phase: "Cancelled", reason: null, step: null, output: null }, frozen: true });
});

test("a step cannot change ctx.outcome: assigning to it throws", async () => {
  const failure = failureOf(await service.runTask(makeTask("rewrite-outcome", { outcome: { phase: "Failed" } })));
  assert.equal(failure.type, "TypeError");
  assert.match(failure.message, /read only property 'phase'/);
});

test("a workflow step that names a function runs it, ctx.step the workflow step and ctx.function the function", async () => {
  const task = makeTask("resize", { workflowStep: "small", run: 2, args: { width: 128, url: "s3://i/1.png" } });
  assert.deepEqual(outputOf(await service.runTask(task)), {
    step: "small",
    function: "resize",
    key: "ex-1/small/2",
    args: { width: 128, url: "s3://i/1.png" },
    frozen: true,
  });
});

test("a task from an engine before workflowStep gives ctx.step the same name as ctx.function", async () => {
  const output = outputOf(await service.runTask(makeTask("resize"))) as { step: string; function: string };
  assert.deepEqual([output.step, output.function], ["resize", "resize"]);
});

test("ctx.args is empty when the task has no args key, or one that is not an object", async () => {
  for (const args of [undefined, null, [["width", 128]], "width=128", 128]) {
    const argumentsJson = JSON.stringify({ input: 1, results: {}, args });
    const output = outputOf(await service.runTask(makeTask("resize", { argumentsJson }))) as { args: unknown };
    assert.deepEqual(output.args, {}, `args: ${JSON.stringify(args)}`);
  }
});

test("a step cannot change ctx.args: assigning one throws", async () => {
  const failure = failureOf(await service.runTask(makeTask("rewrite-args", { args: { width: 128 } })));
  assert.equal(failure.type, "TypeError");
  assert.match(failure.message, /read only property 'width'/);
});

test("ctx.item and ctx.index are the item a forEach step's task carries and its position", async () => {
  const order = { id: "o-7", amount: 42 };
  const output = outputOf(await service.runTask(makeTask("charge-order", { item: order, index: 2, run: 3 })));
  assert.deepEqual(output, { item: order, index: 2, key: "ex-1/charge-order/3/2" });
});

test("an item that is null still has its index", async () => {
  const output = outputOf(await service.runTask(makeTask("charge-order", { item: null, index: 0 })));
  assert.deepEqual(output, { item: null, index: 0, key: "ex-1/charge-order/1/0" });
});

test("ctx.item and ctx.index are null when the task has no index key, or one that is not a whole number from 0", async () => {
  for (const index of [undefined, null, "2", -1, 1.5, true]) {
    const argumentsJson = JSON.stringify({ input: 1, results: {}, item: { id: "o-7" }, index });
    const output = outputOf(await service.runTask(makeTask("charge-order", { argumentsJson })));
    assert.deepEqual(output, { item: null, index: null, key: "ex-1/charge-order/1" }, `index: ${JSON.stringify(index)}`);
  }
});

test("a task for a function this worker lacks fails for good naming it and the workflow step", async () => {
  const failure = failureOf(await service.runTask(makeTask("crop", { workflowStep: "thumbnail" })));
  assert.deepEqual([failure.type, failure.nonRetryable], ["UnknownStep", true]);
  assert.equal(failure.message, "this worker has no step 'crop' (to run step 'thumbnail')");
});

test("an input the function refuses fails naming the workflow step and the function", async () => {
  const failure = failureOf(await service.runTask(makeTask("resize-checked", { workflowStep: "small", input: 1 })));
  assert.equal(failure.type, "InvalidArgument");
  assert.equal(
    failure.message,
    "step 'small' (function 'resize-checked') does not accept the workflow input: no input expected",
  );
});

test("the deadline is read from the Timestamp, or from the milliseconds an older engine sends", async () => {
  const deadlineOf = async (spec: Parameters<typeof makeTask>[1]) =>
    (outputOf(await service.runTask(makeTask("context", spec))) as { deadline: string | null }).deadline;
  const at = new Date("2031-05-06T07:08:09.010Z");
  assert.equal(await deadlineOf({ attemptDeadline: at, attemptDeadlineMs: 0 }), at.toISOString());
  assert.equal(await deadlineOf({ attemptDeadline: undefined, attemptDeadlineMs: at.getTime() }), at.toISOString());
  assert.equal(await deadlineOf({ attemptDeadline: undefined, attemptDeadlineMs: 0 }), null);
});

test("a step that returns nothing succeeds with null", async () => {
  assert.equal(outputOf(await service.runTask(makeTask("nothing"))), null);
});

test("a missing earlier result fails the attempt for good naming the step", async () => {
  const failure = failureOf(await service.runTask(makeTask("receipt")));
  assert.equal(failure.type, "MissingArgument");
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, /step 'receipt' needs the result of step 'charge'/);
});

test("retryAfter, sleep and requestApproval are reported as their outcomes", async () => {
  assert.deepEqual((await service.runTask(makeTask("poller"))).outcome, {
    $case: "retryAfter",
    value: { delayMs: 1500 },
  });
  assert.equal(outputOf(await service.runTask(makeTask("poller", { poll: 2 }))), "ready");
  assert.deepEqual((await service.runTask(makeTask("nap"))).outcome, {
    $case: "sleep",
    value: { durationMs: 259_200_000, outputJson: '{"napped":true}' },
  });
  assert.deepEqual((await service.runTask(makeTask("ask"))).outcome, {
    $case: "approval",
    value: { kind: "refund", timeoutMs: 172_800_000, dataJson: '{"amount":120}' },
  });
  assert.deepEqual((await service.runTask(makeTask("ask-forever"))).outcome, {
    $case: "approval",
    value: { kind: "approval", timeoutMs: 0, dataJson: "null" },
  });
});

test("a thrown error is a retryable failure typed by its name, with the stack trace", async () => {
  const failure = failureOf(await service.runTask(makeTask("boom")));
  assert.equal(failure.type, "TypeError");
  assert.equal(failure.message, "bad thing");
  assert.equal(failure.nonRetryable, false);
  assert.match(failure.stacktrace, /TypeError: bad thing\n\s+at /);
  assert.equal(failureOf(await service.runTask(makeTask("custom"))).type, "QuotaExceeded");
});

test("ApplicationError and NonRetryableError choose the type and retryability", async () => {
  const typed = failureOf(await service.runTask(makeTask("typed")));
  assert.deepEqual([typed.type, typed.message, typed.nonRetryable], ["CardDeclined", "card declined", false]);
  const typedFinal = failureOf(await service.runTask(makeTask("typed-final")));
  assert.deepEqual([typedFinal.type, typedFinal.nonRetryable], ["CardStolen", true]);
  const final = failureOf(await service.runTask(makeTask("final")));
  assert.deepEqual([final.type, final.message, final.nonRetryable], ["NonRetryableError", "nothing to charge", true]);
});

test("a rejection with something other than an Error is still a failure", async () => {
  const failure = failureOf(await service.runTask(makeTask("rejects-string")));
  assert.deepEqual([failure.type, failure.message, failure.nonRetryable], ["Error", "just a string", false]);
});

test("an output that is not JSON fails the attempt for good as InvalidOutput", async () => {
  for (const step of ["nan", "bigint"]) {
    const failure = failureOf(await service.runTask(makeTask(step)));
    assert.equal(failure.type, "InvalidOutput");
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /cannot be encoded as JSON/);
  }
});

test("parseInput converts the input and a refusal fails the attempt for good", async () => {
  assert.equal(outputOf(await service.runTask(makeTask("validated", { input: { id: "x", amount: 4 } }))), 8);
  const failure = failureOf(await service.runTask(makeTask("validated", { input: { id: "x" } })));
  assert.equal(failure.type, "InvalidArgument");
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, /step 'validated' does not accept the workflow input: amount must be a number/);
});

test("arguments that are not a JSON object fail the attempt for good", async () => {
  for (const argumentsJson of ["{not json", "[1, 2]"]) {
    const failure = failureOf(await service.runTask(makeTask("charge", { argumentsJson })));
    assert.equal(failure.type, "InvalidArgument");
    assert.equal(failure.nonRetryable, true);
  }
});

test("a task for a step this worker lacks fails for good as UnknownStep", async () => {
  const failure = failureOf(await service.runTask(makeTask("no-such-step")));
  assert.deepEqual([failure.type, failure.nonRetryable], ["UnknownStep", true]);
});

test("registering a step twice, or none at all, is refused", async () => {
  const lone = new Worker({ taskQueue: "q", address: service.address });
  lone.step("a", () => 1);
  assert.throws(() => lone.step("a", () => 2), /already registered/);
  await assert.rejects(new Worker({ taskQueue: "q" }).run({ handleSignals: false }), /register at least one step/);
  assert.throws(() => new Worker({ taskQueue: "" }), /taskQueue/);
  assert.throws(() => new Worker({ taskQueue: "q", maxConcurrency: 0 }), /maxConcurrency/);
});

test("a worker shut down before it runs returns at once without polling", async () => {
  const polls = service.polls.length;
  const { worker: idle } = testWorker(service, { workerId: "idle" });
  idle.step("a", () => 1);
  await idle.shutdown();
  await idle.run({ handleSignals: false });
  assert.equal(service.polls.filter((poll) => poll.workerId === "idle").length, 0);
  assert.ok(service.polls.length >= polls);
});
