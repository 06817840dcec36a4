/**
 * `@cerebelum/worker/testing`: unit-test a step without an engine.
 *
 * ```ts
 * import { StepEnvironment } from "@cerebelum/worker/testing";
 *
 * const env = new StepEnvironment({ results: { validate: { ok: true } } });
 * const result = await env.run(charge, { id: "o-1", amount: 42 });
 * assert.deepEqual(result, { outcome: "success", output: { order: "o-1", charged: 42 } });
 * ```
 */
import type { ExecutionOutcome, StepContext } from "./context.js";
import type { CancelReason } from "./errors.js";
import { type BeatsFactory, TaskExecutor } from "./execution.js";
import type { CompleteTaskRequest, Task } from "./gen/cerebelum/v1/worker.js";
import type { Logger } from "./log.js";
import type { StepDefinition, StepHandler, StepOptions } from "./steps.js";

/** How a step run by {@link StepEnvironment.run} ended: what the worker would report to the engine. */
export type StepOutcome =
  /** Returned `output` (as the engine receives it: through JSON). */
  | { outcome: "success"; output: unknown }
  /** Threw, or returned what JSON cannot hold, or built an outcome it did not return. */
  | { outcome: "failure"; type: string; message: string; nonRetryable: boolean; stacktrace: string }
  /** Returned `ctx.retryAfter(...)`. */
  | { outcome: "retryAfter"; delayMs: number }
  /** Returned `ctx.sleep(...)`. */
  | { outcome: "sleep"; durationMs: number; output: unknown }
  /** Returned `ctx.requestApproval(...)`. */
  | { outcome: "approval"; kind: string; timeoutMs: number; data: unknown }
  /** Threw after it was cancelled with `cancel_requested`. */
  | { outcome: "cancelled"; message: string }
  /** Nothing is reported: the lease was gone (`lease_lost`, `heartbeat_timeout`) when the step ended. */
  | { outcome: "dropped"; reason: CancelReason };

export interface StepEnvironmentOptions {
  /** The outputs of the earlier steps, by step name (`ctx.results`); default none. */
  results?: Record<string, unknown> | undefined;
  /** The workflow's variables, by name (`ctx.vars`); default none. */
  vars?: Record<string, unknown> | undefined;
  /**
   * The arguments the workflow step passes the handler (its `args:`), by name (`ctx.args`);
   * default none. With `workflowStep`, one handler can be tested as each of the steps it serves.
   */
  args?: Record<string, unknown> | undefined;
  /**
   * The item of a `forEach` step's task (`ctx.item`; any JSON value, `null` included). Giving
   * `item` or `index` makes the task an item's: `index` defaults to 0 then. Default none: an
   * ordinary step, whose `ctx.item` and `ctx.index` are `null`.
   */
  item?: unknown;
  /**
   * The item's 0-based position in the list (`ctx.index`, and the last part of
   * `ctx.idempotencyKey`, as the engine builds it); `item` defaults to `null` then. Default none.
   */
  index?: number | undefined;
  /**
   * How the execution ended (`ctx.outcome`), to test a compensation or finally step; `reason`,
   * `step` and `output` default to `null`. Default none: an ordinary step, whose `ctx.outcome` is `null`.
   */
  outcome?: (Pick<ExecutionOutcome, "phase"> & Partial<ExecutionOutcome>) | undefined;
  /**
   * The name the handler is registered under (`ctx.function`, and `ctx.step` without
   * `workflowStep`); default `"step"`.
   */
  step?: string | undefined;
  /** The workflow's step the handler runs for (`ctx.step`, and in `ctx.idempotencyKey`); default `step`. */
  workflowStep?: string | undefined;
  /** `ctx.executionId`; default `"test-execution"`. */
  executionId?: string | undefined;
  /** `ctx.workflow`; default `"test-workflow"`. */
  workflow?: string | undefined;
  /** `ctx.attempt`, 1-based; default 1. */
  attempt?: number | undefined;
  /** `ctx.run`, 1-based, the last part of `ctx.idempotencyKey`; default 1. */
  run?: number | undefined;
  /** `ctx.poll`; default 0. */
  poll?: number | undefined;
  /** `ctx.workerId`; default `"test-worker"`. */
  workerId?: string | undefined;
  /** `ctx.deadline`; default `null`. */
  deadline?: Date | null | undefined;
  /** `ctx.lastProgress`: what the previous attempt last sent with `ctx.heartbeat()`; default `null`. */
  lastProgress?: unknown;
  /** Called on every `ctx.heartbeat()` with the progress it carries; may call {@link StepEnvironment.cancel}. */
  onHeartbeat?: ((progress: unknown) => void) | undefined;
  /** Where the worker's log lines go (a failing step's stack trace among them); default nowhere. */
  logger?: Logger | undefined;
}

const SILENT: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * Runs a step handler as the worker does — the same input checks, outcome rules, JSON encoding
 * and failure types — with a context built from these options instead of a task from an
 * engine. Heartbeats are recorded, cancellation is triggered by the test, and the result is
 * the outcome the worker would report.
 */
export class StepEnvironment {
  /** The progress carried by each `ctx.heartbeat()` call of the last run, in order (`null` when none was recorded yet). */
  readonly heartbeats: unknown[] = [];
  readonly #options: StepEnvironmentOptions;
  #executor: TaskExecutor | undefined;
  #context: StepContext | undefined;
  #pending: CancelReason | undefined;
  #reason: CancelReason | undefined;

  constructor(options: StepEnvironmentOptions = {}) {
    const index = options.index;
    if (index !== undefined && !(Number.isInteger(index) && index >= 0)) {
      throw new RangeError(`index is 0-based: a whole number from 0, not ${index}`);
    }
    this.#options = options;
  }

  /** The context of the step running now (or of the last run); `undefined` before the first run. */
  get context(): StepContext | undefined {
    return this.#context;
  }

  /**
   * Runs `handler` with `input` (the workflow input; default `null`) and resolves to how it
   * ended. `options.parseInput` checks the input as `worker.step(..., { parseInput })` does.
   */
  async run<I = unknown, O = unknown>(
    handler: StepHandler<I, O>,
    input: unknown = null,
    options: StepOptions<I> = {},
  ): Promise<StepOutcome> {
    if (this.#executor !== undefined) {
      throw new Error("this StepEnvironment is already running a step; await it first");
    }
    const step = this.#options.step ?? "step";
    const definition: StepDefinition = {
      name: step,
      handler: handler as StepHandler<never, unknown>,
      parseInput: options.parseInput,
    };
    const pending = this.#pending;
    const beats: BeatsFactory = (_task, ctx, onCancel) => {
      this.#context = ctx;
      ctx._setNotifier(() => {
        const progress = ctx.progressJson === "" ? null : (JSON.parse(ctx.progressJson) as unknown);
        this.heartbeats.push(progress);
        this.#options.onHeartbeat?.(progress);
      });
      if (pending !== undefined) {
        onCancel(pending);
      }
      return { stop: () => ctx._setNotifier(undefined) };
    };
    const executor = new TaskExecutor({
      steps: new Map([[step, definition]]),
      workerId: this.#options.workerId ?? "test-worker",
      beats,
      log: this.#options.logger ?? SILENT,
    });
    this.heartbeats.length = 0;
    this.#reason = pending;
    this.#pending = undefined;
    this.#executor = executor;
    try {
      return this.#outcome(await executor.run(this.#task(step, input)));
    } finally {
      this.#executor = undefined;
    }
  }

  /**
   * Cancels the running step as the worker would: `ctx.signal` is aborted with a
   * `CancelledError` of `reason` (default `cancel_requested`, as when the execution is
   * cancelled). `lease_lost` and `heartbeat_timeout` also make `ctx.heartbeat()` throw and the
   * outcome `dropped`; `shutdown` stops waiting for the step. Called before {@link run}, the
   * next run starts cancelled.
   */
  cancel(reason: CancelReason = "cancel_requested"): void {
    if (this.#executor === undefined) {
      this.#pending = reason;
      return;
    }
    if (this.#reason === undefined || reason === "lease_lost" || reason === "heartbeat_timeout") {
      this.#reason = reason;
    }
    this.#executor.cancelAll(reason);
  }

  #task(step: string, input: unknown): Task {
    const options = this.#options;
    const executionId = options.executionId ?? "test-execution";
    const attempt = options.attempt ?? 1;
    const run = options.run ?? 1;
    const ending = options.outcome; // only a compensation or finally step's task has the key
    const workflowStep = options.workflowStep || step; // the engine's keys are the workflow step's
    const args = options.args ?? {};
    // As from the engine: only a forEach step's task has an item and index, and its key ends with the index.
    const isItem = options.item !== undefined || options.index !== undefined;
    const index = isItem ? (options.index ?? 0) : undefined;
    const key = `${executionId}/${workflowStep}/${run}`;
    return {
      taskToken: `test-${executionId}-${workflowStep}-${attempt}`,
      executionId,
      workflow: options.workflow ?? "test-workflow",
      step,
      workflowStep,
      attempt,
      poll: options.poll ?? 0,
      run,
      idempotencyKey: index === undefined ? key : `${key}/${index}`,
      argumentsJson: JSON.stringify({
        input,
        results: options.results ?? {},
        vars: options.vars ?? {},
        // As from the engine: only a step with args has the key.
        args: Object.keys(args).length > 0 ? args : undefined,
        outcome: ending && {
          phase: ending.phase,
          reason: ending.reason ?? null,
          step: ending.step ?? null,
          output: ending.output ?? null,
        },
        item: isItem ? (options.item ?? null) : undefined,
        index,
      }),
      attemptDeadlineMs: options.deadline ? options.deadline.getTime() : 0,
      attemptDeadline: options.deadline ?? undefined,
      leaseMs: 0,
      lastProgressJson: options.lastProgress === undefined ? "" : JSON.stringify(options.lastProgress),
      heartbeatRequired: false,
      workflowTask: undefined,
    };
  }

  #outcome(report: CompleteTaskRequest | null): StepOutcome {
    if (report === null) {
      return { outcome: "dropped", reason: this.#reason ?? "lease_lost" };
    }
    const outcome = report.outcome;
    switch (outcome?.$case) {
      case "success":
        return { outcome: "success", output: JSON.parse(outcome.value.outputJson) };
      case "failure": {
        const { type, message, nonRetryable, stacktrace } = outcome.value;
        return { outcome: "failure", type, message, nonRetryable, stacktrace };
      }
      case "retryAfter":
        return { outcome: "retryAfter", delayMs: outcome.value.delayMs };
      case "sleep":
        return { outcome: "sleep", durationMs: outcome.value.durationMs, output: JSON.parse(outcome.value.outputJson) };
      case "approval":
        return {
          outcome: "approval",
          kind: outcome.value.kind,
          timeoutMs: outcome.value.timeoutMs,
          data: JSON.parse(outcome.value.dataJson),
        };
      case "cancelled":
        return { outcome: "cancelled", message: outcome.value.message };
      case "workflowCommands": // a step task is never answered with workflow commands
      case undefined:
        throw new Error("the step ended without an outcome");
    }
  }
}
