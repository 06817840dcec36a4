/** `StepContext`: what a running step knows about its task, plus heartbeats, cancellation and outcomes. */
import type { Duration } from "./durations.js";
import { CancelledError, type CancelReason, leaseGone, NonRetryableError } from "./errors.js";
import type { Task } from "./gen/cerebelum/v1/worker.js";
import { dumps, loads } from "./jsoncodec.js";
import {
  type ApprovalOptions,
  type ApprovalRequest,
  buildApproval,
  buildRetryAfter,
  buildSleep,
  OutcomeLedger,
  type RetryAfter,
  type Sleep,
} from "./outcomes.js";

/** Outputs of the earlier steps of the execution, by step name. */
export type StepResults = Readonly<Record<string, unknown>>;

/** The workflow's variables (its `vars:`), by name. */
export type WorkflowVars = Readonly<Record<string, unknown>>;

/** The arguments a workflow step passes the function it runs (its `args:`), by name. */
export type StepArgs = Readonly<Record<string, unknown>>;

/**
 * How the execution ended, given to its compensation and finally steps as `ctx.outcome`. Those
 * steps run only once the execution ends, and often must act on how: tell the customer the
 * booking failed and why, or skip work when it succeeded.
 */
export interface ExecutionOutcome {
  /** `"Failed"`, `"Cancelled"` or `"Succeeded"`. */
  readonly phase: string;
  /** Why it failed or was cancelled, else `null`. */
  readonly reason: string | null;
  /** The step that failed, when one did, else `null`. */
  readonly step: string | null;
  /** The output of an execution that succeeded; `null` otherwise, or when the task could not carry it too. */
  readonly output: unknown;
}

/**
 * Passed to every step as its first argument. Describes the task (`executionId`, `workflow`,
 * `step`, `function`, `attempt`, `run`, `poll`, `idempotencyKey`, `deadline`), gives the earlier
 * steps' outputs (`results`, `result(name)`), the workflow step's arguments (`args`), the
 * workflow's variables (`vars`) and the item a `forEach` step's task runs for (`item`, `index`),
 * tells a compensation or finally step how the execution ended (`outcome`), records progress (`heartbeat`), tells of cancellation (`signal`, `cancelled`) and
 * builds outcomes (`retryAfter`, `sleep`, `requestApproval`).
 */
export class StepContext {
  readonly executionId: string;
  readonly workflow: string;
  /** The workflow's step this task runs: the name `describe`, the history and `results` use. */
  readonly step: string;
  /**
   * The registered step handler running it: the same name as `step`, unless the workflow step
   * names another with `function:` (so one handler serves many steps, each with its `args`).
   */
  readonly function: string;
  /** 1-based attempt number; `retryAfter` keeps it. */
  readonly attempt: number;
  /**
   * 1-based run of the step in the execution: 1 for its first run, +1 each time a loop (a branch
   * or diverge `goto`) or a dead-letter redrive starts it over; the same for all its attempts.
   */
  readonly run: number;
  /** How many `retryAfter` polls of this attempt came before. */
  readonly poll: number;
  /**
   * `"<executionId>/<step>/<run>"`, with `"/<index>"` after it for an item of a `forEach` step:
   * unique per run of the step (and item), the same for every retry of that run.
   */
  readonly idempotencyKey: string;
  readonly workerId: string;
  /** When the attempt must finish, or `null`. */
  readonly deadline: Date | null;
  /** The outputs of the earlier steps, by step name. */
  readonly results: StepResults;
  /**
   * The workflow's variables (its `vars:`) as they were when this task was scheduled; frozen.
   * Variables carry state across loops and steps (a counter, a cursor, the last error) and are
   * assigned by the workflow's `set`. A step cannot change them here: it returns a result, and
   * the workflow's `steps.<name>.set` reads that result to assign them. Empty when the workflow
   * declares no variables (or the engine predates them).
   */
  readonly vars: WorkflowVars;
  /**
   * The arguments the workflow step passes the handler (its `args:`, computed by the engine as
   * the task was scheduled), by name; frozen. So one handler serves many steps (`small` and
   * `large` both run `resize`, each with its own `width`). Empty when the step has none (or the
   * engine predates them).
   */
  readonly args: StepArgs;
  /**
   * The item this task runs for, when its workflow step is a `forEach` step: such a step runs its
   * handler once per item of a list the workflow computes at run time (the orders of a batch, the
   * pages to fetch), so the handler handles one item and never sees the list. The JSON value the
   * list holds there. `null` for any other step (or from an engine that predates `forEach`); an
   * item that is itself `null` is `null` too, and `index` tells the two apart.
   */
  readonly item: unknown;
  /**
   * The 0-based position of `item` in the list, or `null` when the step is not a `forEach` step.
   * Items may run concurrently and finish in any order; the index tells which one this is (to
   * label its output, or to read a sibling list). It is also the last part of `idempotencyKey`,
   * so the retries of one item share a key and no two items do.
   */
  readonly index: number | null;
  /**
   * How the execution ended, for a compensation or finally step; frozen. `null` for any other
   * step: only those run once the execution ends.
   */
  readonly outcome: ExecutionOutcome | null;
  /**
   * The progress the step's previous attempt last sent (`heartbeat`) before it failed or its
   * lease expired, so a retry can resume where it stopped; `null` on a first attempt or when no
   * earlier attempt sent any.
   */
  readonly lastProgress: unknown;
  /**
   * Aborted when the server asks to stop the step, its lease is lost (the engine said so, or a
   * step that must heartbeat did not within its heartbeat timeout), or the worker is shutting
   * down; its `reason` is a {@link CancelledError}. Pass it to `fetch`, timers and other APIs.
   */
  readonly signal: AbortSignal;
  readonly #controller: AbortController;
  #progressJson = "";
  #notify: (() => void) | undefined;
  readonly #outcomes = new OutcomeLedger();

  /** Made by the worker for each task it runs. */
  constructor(
    task: Task,
    workerId: string,
    results: StepResults,
    {
      vars = {},
      outcome = null,
      args = {},
      item = null,
      index = null,
    }: {
      vars?: WorkflowVars;
      outcome?: ExecutionOutcome | null;
      args?: StepArgs;
      item?: unknown;
      index?: number | null;
    } = {},
  ) {
    this.executionId = task.executionId;
    this.workflow = task.workflow;
    // `task.step` is the handler to run; `workflowStep` is empty from an engine that predates it.
    this.step = task.workflowStep || task.step;
    this.function = task.step;
    this.attempt = task.attempt;
    this.run = task.run;
    this.poll = task.poll;
    this.idempotencyKey = task.idempotencyKey;
    this.workerId = workerId;
    // The Timestamp; an engine before 0.2 sends only the deprecated milliseconds.
    this.deadline = task.attemptDeadline ?? (task.attemptDeadlineMs > 0 ? new Date(task.attemptDeadlineMs) : null);
    this.results = results;
    this.vars = Object.freeze({ ...vars });
    this.args = Object.freeze({ ...args });
    // Together or not at all: without an index the task is not an item's.
    this.index = index;
    this.item = index === null ? null : item;
    this.outcome = outcome === null ? null : Object.freeze({ ...outcome });
    this.lastProgress = loads(task.lastProgressJson);
    this.#controller = new AbortController();
    this.signal = this.#controller.signal;
  }

  /**
   * The output of the earlier step `step`. Throws a non-retryable `MissingArgument` failure when
   * that step has no output (a wrong name, or a step this one does not come after).
   */
  result<T = unknown>(step: string): T {
    if (!Object.hasOwn(this.results, step)) {
      throw new NonRetryableError(
        `step '${this.step}' needs the result of step '${step}', which has none ` +
          "(is the step name right, and does this step come after it?)",
        { type: "MissingArgument" },
      );
    }
    return this.results[step] as T;
  }

  // -- heartbeats -----------------------------------------------------------------------------

  /**
   * Records `progress` (any JSON value; `cerebelum describe` shows the latest progress of a
   * running step, and the next attempt gets it as `lastProgress` if this one fails) and asks
   * for a heartbeat soon. Never blocks. When the task requires heartbeats (the workflow set a
   * `heartbeatTimeout`), the lease is only extended while the step keeps calling this.
   *
   * Throws the {@link CancelledError} of `signal` once the lease is gone (reason `lease_lost` or
   * `heartbeat_timeout`): the task is no longer this worker's and its outcome would be dropped,
   * so a loop that heartbeats stops there. Cancellation (`cancel_requested`) does not throw here.
   */
  heartbeat(progress?: unknown): void {
    if (progress !== undefined) {
      this.#progressJson = dumps(progress);
    }
    this.#notify?.();
    if (this.signal.aborted && leaseGone((this.signal.reason as CancelledError).reason)) {
      throw this.signal.reason;
    }
  }

  /** The last progress recorded by {@link heartbeat}, as JSON text (`""` when none). */
  get progressJson(): string {
    return this.#progressJson;
  }

  // -- cancellation ---------------------------------------------------------------------------

  /** True once the server asked to stop the step (or its lease was lost, or the worker is stopping). */
  get cancelled(): boolean {
    return this.signal.aborted;
  }

  /** @internal */
  _setNotifier(notify: (() => void) | undefined): void {
    this.#notify = notify;
  }

  /** @internal */
  _cancel(reason: CancelReason): void {
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(new CancelledError(reason));
    }
  }

  // -- outcomes -------------------------------------------------------------------------------

  // An outcome takes effect only when the step returns it: one built here and not returned (a
  // call without `return`, or with `await`) fails the step as `OutcomeNotReturned`, naming it.

  /** Return this to run the step again after `delay` (milliseconds or `"30s"`); not a failure. */
  retryAfter(delay: Duration): RetryAfter {
    return buildRetryAfter(delay, "ctx.retryAfter", this.#outcomes);
  }

  /** Return this: the step succeeded with `output`, then the execution sleeps `duration` durably. */
  sleep<T = null>(duration: Duration, output?: T): Sleep<T | null> {
    return buildSleep(duration, output, "ctx.sleep", this.#outcomes);
  }

  /** Return this to wait for a human to approve or reject the step. */
  requestApproval<D = null>(options: ApprovalOptions<D> = {}): ApprovalRequest<D | null> {
    return buildApproval(options, "ctx.requestApproval", this.#outcomes);
  }

  /** @internal The outcomes this step built, checked against what it returned. */
  get _outcomes(): OutcomeLedger {
    return this.#outcomes;
  }
}
