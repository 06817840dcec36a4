/** Runs one task's step: reads its arguments, runs it, and builds the report of how it ended. */
import { type ExecutionOutcome, type StepArgs, StepContext, type StepResults, type WorkflowVars } from "./context.js";
import { ApplicationError, type CancelReason, leaseGone, NonRetryableError } from "./errors.js";
import type { CompleteTaskRequest, Task } from "./gen/cerebelum/v1/worker.js";
import { Heartbeater, type HeartbeatRpc } from "./heartbeat.js";
import type { Logger } from "./log.js";
import { withLedger } from "./outcomes.js";
import { cancelledReport, failureReport, valueReport } from "./reports.js";
import type { StepDefinition } from "./steps.js";

/** The cancellation state of one running task. */
class Attempt {
  reason: CancelReason | undefined;
  readonly abandoned: Promise<never>;
  #abandon!: (reason: unknown) => void;

  constructor(readonly ctx: StepContext) {
    this.abandoned = new Promise<never>((_resolve, reject) => {
      this.#abandon = reject;
    });
    this.abandoned.catch(() => undefined); // only ever awaited through Promise.race
  }

  /**
   * Stop the step: `ctx.signal` is aborted. JavaScript cannot interrupt a running promise, so the
   * step stops when it notices (a throw is then reported as cancelled); on shutdown the worker
   * stops waiting for it at once.
   */
  cancel(reason: CancelReason): void {
    if (this.reason === undefined || leaseGone(reason)) {
      this.reason = reason;
    }
    this.ctx._cancel(reason);
    if (reason === "shutdown") {
      this.#abandon(this.ctx.signal.reason);
    }
  }
}

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** What keeps one task's lease: started with the step, stopped when it ends. */
export interface Beats {
  stop(): void;
}

/** Starts the heartbeats of a task; `onCancel` stops its step. */
export type BeatsFactory = (task: Task, ctx: StepContext, onCancel: (reason: CancelReason) => void) => Beats;

/** Runs tasks and returns their `CompleteTaskRequest` (`null` when the lease was lost). */
export class TaskExecutor {
  readonly #steps: ReadonlyMap<string, StepDefinition>;
  readonly #workerId: string;
  readonly #beats: BeatsFactory;
  readonly #log: Logger;
  readonly #attempts = new Map<string, Attempt>();

  /** Heartbeats go through `heartbeatRpc`, or are started by `beats` (the testing kit records them). */
  constructor(options: {
    steps: ReadonlyMap<string, StepDefinition>;
    workerId: string;
    heartbeatRpc?: HeartbeatRpc | undefined;
    beats?: BeatsFactory | undefined;
    log: Logger;
  }) {
    this.#steps = options.steps;
    this.#workerId = options.workerId;
    this.#log = options.log;
    const rpc = options.heartbeatRpc;
    this.#beats =
      options.beats ??
      ((task, ctx, onCancel) => {
        if (rpc === undefined) {
          throw new Error("a TaskExecutor needs heartbeatRpc or beats");
        }
        return new Heartbeater({ rpc, task, workerId: this.#workerId, ctx, onCancel, log: this.#log });
      });
  }

  cancelAll(reason: CancelReason): void {
    for (const attempt of [...this.#attempts.values()]) {
      attempt.cancel(reason);
    }
  }

  async run(task: Task): Promise<CompleteTaskRequest | null> {
    const token = task.taskToken;
    const workerId = this.#workerId;
    const definition = this.#steps.get(task.step); // the handler to run, which may serve many workflow steps
    if (definition === undefined) {
      const serving = ["", task.step].includes(task.workflowStep) ? "" : ` (to run step '${task.workflowStep}')`;
      const unknown = new NonRetryableError(`this worker has no step '${task.step}'${serving}`, { type: "UnknownStep" });
      return this.#failed(task, unknown);
    }
    let input: unknown;
    let results: StepResults;
    let vars: WorkflowVars;
    let outcome: ExecutionOutcome | null;
    let args: StepArgs;
    let item: unknown;
    let index: number | null;
    try {
      ({ input, results, vars, outcome, args, item, index } = readArguments(task, definition));
    } catch (error) {
      return this.#failed(task, error);
    }
    const ctx = new StepContext(task, workerId, results, { vars, outcome, args, item, index });
    const attempt = new Attempt(ctx);
    this.#attempts.set(token, attempt);
    const heartbeater = this.#beats(task, ctx, (reason) => attempt.cancel(reason));
    try {
      const handler = definition.handler as (ctx: StepContext, input: unknown) => unknown;
      let settled: Settled;
      try {
        const running = Promise.resolve().then(() => withLedger(ctx._outcomes, () => handler(ctx, input)));
        const value = await Promise.race([running, attempt.abandoned]);
        ctx._outcomes.checkReturned(ctx.step, value);
        settled = { ok: true, value };
      } catch (error) {
        settled = { ok: false, error };
      }
      if (leaseGone(attempt.reason)) {
        const why = attempt.reason === "heartbeat_timeout" ? "it missed its heartbeat timeout" : "its lease was lost";
        this.#log.info(`dropping the outcome of ${task.executionId}/${ctx.step}: ${why}`);
        return null;
      }
      if (!settled.ok) {
        if (attempt.reason !== undefined) {
          return this.#cancelled(token, attempt.reason, settled.error); // it stopped because we asked it to
        }
        return this.#failed(task, settled.error);
      }
      return valueReport(token, workerId, settled.value);
    } finally {
      heartbeater.stop();
      this.#attempts.delete(token);
    }
  }

  /** The failure report of `error`, logged with its stack trace so a failing step leaves one behind. */
  #failed(task: Task, error: unknown): CompleteTaskRequest {
    const report = failureReport(task.taskToken, this.#workerId, error);
    const failure = report.outcome?.$case === "failure" ? report.outcome.value : undefined;
    const retry = failure?.nonRetryable ? "not retryable" : "retryable";
    this.#log.warn(
      `step ${workflowStep(task)} of execution ${task.executionId} failed on attempt ${task.attempt} (${retry}): ` +
        `${failure?.type ?? "Error"}: ${failure?.message ?? ""}`,
      error,
    );
    return report;
  }

  #cancelled(token: string, reason: CancelReason, error: unknown): CompleteTaskRequest {
    if (reason === "shutdown") {
      const shutdown = new ApplicationError("the worker shut down before the step finished", { type: "WorkerShutdown" });
      return failureReport(token, this.#workerId, shutdown);
    }
    const message = error instanceof Error ? error.message : String(error ?? "");
    return cancelledReport(token, this.#workerId, message || "the step was cancelled");
  }
}

/** The workflow's step a task runs: `workflowStep`, or `step` from an engine that predates it. */
function workflowStep(task: Task): string {
  return task.workflowStep || task.step;
}

/** The workflow's step in an error message, and the handler it runs when that has another name. */
function describeStep(task: Task): string {
  const step = workflowStep(task);
  return step === task.step ? `step '${step}'` : `step '${step}' (function '${task.step}')`;
}

/**
 * The task's `{"input": ..., "results": {...}, "vars": {...}, "args": {...}, "outcome": {...},
 * "item": ..., "index": n}`, with the input checked by the step's `parseInput`. A missing or
 * non-object `results`, `vars` or `args` is empty (`vars` is absent when the workflow declares no
 * variables, `args` when the step has none, and both from engines before them); `outcome` is there
 * only for a compensation or finally step, else `null`; `item` and `index` only for a `forEach`
 * step's task, else both `null`.
 */
function readArguments(
  task: Task,
  definition: StepDefinition,
): {
  input: unknown;
  results: StepResults;
  vars: WorkflowVars;
  outcome: ExecutionOutcome | null;
  args: StepArgs;
  item: unknown;
  index: number | null;
} {
  let parsed: unknown;
  try {
    parsed = task.argumentsJson === "" ? {} : JSON.parse(task.argumentsJson);
  } catch (error) {
    throw new NonRetryableError(`the task's arguments are not JSON: ${(error as Error).message}`, {
      type: "InvalidArgument",
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new NonRetryableError("the task's arguments are not a JSON object", { type: "InvalidArgument" });
  }
  const { input = null, results, vars, outcome, args, item = null, index } = parsed as Record<string, unknown>;
  // An item's task has an index that is a whole number from 0; without one, neither is there.
  const isItem = typeof index === "number" && Number.isInteger(index) && index >= 0;
  const context = {
    results: jsonObject(results),
    vars: jsonObject(vars),
    outcome: executionOutcome(outcome),
    args: jsonObject(args),
    item: isItem ? item : null,
    index: isItem ? index : null,
  };
  if (definition.parseInput === undefined) {
    return { input, ...context };
  }
  try {
    return { input: definition.parseInput(input), ...context };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new NonRetryableError(`${describeStep(task)} does not accept the workflow input: ${why}`, {
      type: "InvalidArgument",
      cause: error,
    });
  }
}

/** `value` when it is a JSON object, else an empty one (as a missing `results`, `vars` or `args` is). */
function jsonObject(value: unknown): Readonly<Record<string, unknown>> {
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  return isObject ? (value as Record<string, unknown>) : {};
}

/**
 * The task's `outcome`: `null` when absent, not an object or without a string `phase` (any step
 * but a compensation or finally step); a `reason` or `step` that is not text is `null`.
 */
function executionOutcome(value: unknown): ExecutionOutcome | null {
  const { phase, reason, step, output = null } = jsonObject(value);
  if (typeof phase !== "string") {
    return null;
  }
  const text = (field: unknown) => (typeof field === "string" ? field : null);
  return { phase, reason: text(reason), step: text(step), output };
}
