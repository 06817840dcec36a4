/** Outcomes other than plain success that a step can return, and the check that it did return them. */
import { AsyncLocalStorage } from "node:async_hooks";

import { type Duration, durationMs } from "./durations.js";
import { NonRetryableError } from "./errors.js";

/** Tags outcomes so that they are recognised even across two copies of this package. */
export const OUTCOME: unique symbol = Symbol.for("cerebelum.outcome") as never;

/** Run this step again after `delayMs` without counting a failed attempt (the poll pattern). */
export class RetryAfter {
  readonly [OUTCOME] = "retryAfter" as const;
  constructor(readonly delayMs: number) {}
}

/** The step succeeded with `output`; the execution then sleeps `durationMs` durably. */
export class Sleep<T = unknown> {
  readonly [OUTCOME] = "sleep" as const;
  constructor(
    readonly durationMs: number,
    readonly output: T,
  ) {}
}

/** The step waits for a human: approving completes it, rejecting (or timing out) fails it. */
export class ApprovalRequest<D = unknown> {
  readonly [OUTCOME] = "approval" as const;
  /** `timeoutMs` of 0 waits forever. */
  constructor(
    readonly kind: string,
    readonly timeoutMs: number,
    readonly data: D,
  ) {}
}

export type Outcome = RetryAfter | Sleep | ApprovalRequest;

export interface ApprovalOptions<D = unknown> {
  /** What is being approved, shown to the approver; default `"approval"`. */
  kind?: string | undefined;
  /** How long to wait before the step fails with `ApprovalTimedOut`; omitted or `null`: forever. */
  timeout?: Duration | null | undefined;
  /** Any JSON value shown to the approver and passed on in the step's output. */
  data?: D | undefined;
}

/**
 * @internal The outcomes built while one step runs, each with the helper that built it. An
 * outcome only takes effect when the step returns it, so one built and not returned is a bug
 * (`ctx.sleep("1h")` without `return`, or `await ctx.sleep("1h")`) that would otherwise do nothing.
 */
export class OutcomeLedger {
  readonly #built: Array<{ outcome: Outcome; helper: string }> = [];

  record<O extends Outcome>(outcome: O, helper: string): O {
    this.#built.push({ outcome, helper });
    return outcome;
  }

  /**
   * Throws a non-retryable `OutcomeNotReturned` failure naming the helper when an outcome built
   * during the step is not the value `step` returned.
   */
  checkReturned(step: string, returned: unknown): void {
    const lost = this.#built.find((built) => built.outcome !== returned);
    if (lost === undefined) {
      return;
    }
    throw new NonRetryableError(
      `step '${step}' called ${lost.helper}(...) but returned ${describe(returned)}: an outcome only takes ` +
        `effect when the step returns it; write \`return ${lost.helper}(...)\` (not \`await ${lost.helper}(...)\` ` +
        "or a call whose result is dropped)",
      { type: "OutcomeNotReturned" },
    );
  }
}

function describe(value: unknown): string {
  if (value === undefined) {
    return "nothing";
  }
  const other = outcomeOf(value);
  if (other !== undefined) {
    return `another outcome (${other[OUTCOME]})`;
  }
  if (value === null || Array.isArray(value)) {
    return value === null ? "null" : "an array";
  }
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** The ledger of the step running in this asynchronous context, for the module-level builders. */
const running = new AsyncLocalStorage<OutcomeLedger>();

/** @internal Calls `body` with the module-level builders recording into `ledger`. */
export function withLedger<T>(ledger: OutcomeLedger, body: () => T): T {
  return running.run(ledger, body);
}

function record<O extends Outcome>(outcome: O, helper: string, ledger: OutcomeLedger | undefined): O {
  return (ledger ?? running.getStore())?.record(outcome, helper) ?? outcome;
}

/** @internal `retryAfter`, recorded as built by `helper` in `ledger` (default: the running step's). */
export function buildRetryAfter(delay: Duration, helper: string, ledger?: OutcomeLedger): RetryAfter {
  return record(new RetryAfter(durationMs(delay)), helper, ledger);
}

/** @internal `sleep`, recorded as built by `helper`. */
export function buildSleep<T>(duration: Duration, output: T | undefined, helper: string, ledger?: OutcomeLedger): Sleep<T | null> {
  return record(new Sleep(durationMs(duration), output === undefined ? null : output), helper, ledger);
}

/** @internal `requestApproval`, recorded as built by `helper`. */
export function buildApproval<D>(options: ApprovalOptions<D>, helper: string, ledger?: OutcomeLedger): ApprovalRequest<D | null> {
  const timeout = options.timeout ?? null;
  const request = new ApprovalRequest(
    options.kind || "approval",
    timeout === null ? 0 : durationMs(timeout),
    options.data === undefined ? null : options.data,
  );
  return record(request, helper, ledger);
}

/**
 * Return this from a step to run it again after `delay` (milliseconds or `"30s"`); not a failure.
 * Built and not returned, it fails the step (`OutcomeNotReturned`).
 */
export function retryAfter(delay: Duration): RetryAfter {
  return buildRetryAfter(delay, "retryAfter");
}

/** Return this from a step: it succeeded with `output`, then the execution sleeps `duration`. */
export function sleep<T = null>(duration: Duration, output?: T): Sleep<T | null> {
  return buildSleep(duration, output, "sleep");
}

/** Return this from a step to wait for a human to approve or reject it. */
export function requestApproval<D = null>(options: ApprovalOptions<D> = {}): ApprovalRequest<D | null> {
  return buildApproval(options, "requestApproval");
}

/** The outcome `value` is, or `undefined` when it is a plain result. */
export function outcomeOf(value: unknown): Outcome | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const tag = (value as { [OUTCOME]?: unknown })[OUTCOME];
  return tag === "retryAfter" || tag === "sleep" || tag === "approval" ? (value as Outcome) : undefined;
}
