/** Errors a step throws to control how its attempt fails, and the reason a step was cancelled. */

export interface ApplicationErrorOptions {
  /** The failure type that diverge rules and `nonRetryableErrors` match; default: the class name. */
  type?: string | undefined;
  /** When true the attempt is not retried. */
  nonRetryable?: boolean | undefined;
  cause?: unknown;
}

/**
 * Thrown by a step to fail its attempt with a chosen `type` and retryability.
 *
 * Any other thrown error fails the attempt too (retryably, typed by its name); this one lets the
 * step name the failure type and mark it non-retryable.
 */
export class ApplicationError extends Error {
  readonly type: string;
  readonly nonRetryable: boolean;

  constructor(message: string, options: ApplicationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.type = options.type || new.target.name;
    this.nonRetryable = options.nonRetryable ?? false;
  }
}

/** An {@link ApplicationError} that is never retried. */
export class NonRetryableError extends ApplicationError {
  constructor(message: string, options: Omit<ApplicationErrorOptions, "nonRetryable"> = {}) {
    super(message, { ...options, nonRetryable: true });
  }
}

/**
 * Why a running step is being stopped: the execution or step was cancelled, the engine said the
 * lease is gone, the step did not heartbeat within its heartbeat timeout, or the worker is
 * shutting down.
 */
export type CancelReason = "cancel_requested" | "lease_lost" | "heartbeat_timeout" | "shutdown";

const MESSAGES: Readonly<Record<CancelReason, string>> = {
  cancel_requested: "the step was cancelled",
  lease_lost: "the step's lease was lost",
  heartbeat_timeout: "the step did not heartbeat within its heartbeat timeout, so its lease is lost",
  shutdown: "the worker is shutting down",
};

/** True for the reasons after which the task is no longer this worker's (its outcome is dropped). */
export function leaseGone(reason: CancelReason | undefined): boolean {
  return reason === "lease_lost" || reason === "heartbeat_timeout";
}

/**
 * The reason of `ctx.signal` once it is aborted (`ctx.signal.throwIfAborted()` throws it, and
 * so does `ctx.heartbeat()` once the lease is gone); `reason` says why.
 */
export class CancelledError extends Error {
  readonly reason: CancelReason;

  constructor(reason: CancelReason) {
    super(MESSAGES[reason]);
    this.name = "CancelledError";
    this.reason = reason;
  }
}
