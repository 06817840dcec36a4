/** Outcomes other than plain success that a step can return. */
import { type Duration, durationMs } from "./durations.js";

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

/** Return this from a step to run it again after `delay` (milliseconds or `"30s"`); not a failure. */
export function retryAfter(delay: Duration): RetryAfter {
  return new RetryAfter(durationMs(delay));
}

/** Return this from a step: it succeeded with `output`, then the execution sleeps `duration`. */
export function sleep<T = null>(duration: Duration, output?: T): Sleep<T | null> {
  return new Sleep(durationMs(duration), output === undefined ? null : output);
}

/** Return this from a step to wait for a human to approve or reject it. */
export function requestApproval<D = null>(options: ApprovalOptions<D> = {}): ApprovalRequest<D | null> {
  const timeout = options.timeout ?? null;
  return new ApprovalRequest(
    options.kind || "approval",
    timeout === null ? 0 : durationMs(timeout),
    options.data === undefined ? null : options.data,
  );
}

/** The outcome `value` is, or `undefined` when it is a plain result. */
export function outcomeOf(value: unknown): Outcome | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const tag = (value as { [OUTCOME]?: unknown })[OUTCOME];
  return tag === "retryAfter" || tag === "sleep" || tag === "approval" ? (value as Outcome) : undefined;
}
