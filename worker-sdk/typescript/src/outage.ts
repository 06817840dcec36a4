/** Log lines for a call that keeps failing: each distinct reason once, not every retry. */
import { performance } from "node:perf_hooks";

import { status } from "@grpc/grpc-js";

import { describeError, isServiceError } from "./connection.js";
import type { Logger } from "./log.js";

/** Distinct reasons logged per outage at most; past it the rest go to `debug`. */
const MAX_REASONS = 16;

const HINTS: ReadonlyMap<number, string> = new Map([
  [status.UNAUTHENTICATED, "the engine wants a valid bearer token: set `token`, `tokenFile` or $CEREBELUM_TOKEN"],
  [status.PERMISSION_DENIED, "the token is valid but may not serve this task queue"],
]);

/** What makes two failures "the same": the status code, or the error's name and message. */
export function reasonOf(error: unknown): string {
  if (isServiceError(error)) {
    return status[error.code] ?? String(error.code);
  }
  return describeError(error);
}

/**
 * Tracks one outage of a repeated call. The first failure and every failure with a reason not
 * seen yet in this outage are logged, so an engine that comes back requiring a token
 * (UNAVAILABLE, then UNAUTHENTICATED) shows both; identical repeats are not.
 */
export class OutageLog {
  readonly #log: Logger;
  readonly #what: string;
  readonly #reasons = new Set<string>();
  #since: number | undefined;

  /** `what` starts each line: `"cannot poll orders at 127.0.0.1:7450"`. */
  constructor(log: Logger, what: string) {
    this.#log = log;
    this.#what = what;
  }

  get ongoing(): boolean {
    return this.#since !== undefined;
  }

  failed(error: unknown): void {
    this.#since ??= performance.now();
    const reason = reasonOf(error);
    if (this.#reasons.has(reason)) {
      return;
    }
    if (this.#reasons.size >= MAX_REASONS) {
      this.#log.debug(`${this.#what} (${describeError(error)}); retrying`);
      return;
    }
    this.#reasons.add(reason);
    const hint = isServiceError(error) ? HINTS.get(error.code) : undefined;
    this.#log.warn(`${this.#what} (${describeError(error)}${hint ? `; ${hint}` : ""}); retrying`);
  }

  /** The call worked: the outage's length in seconds (`undefined` when there was none); resets. */
  recovered(): number | undefined {
    if (this.#since === undefined) {
      return undefined;
    }
    const seconds = (performance.now() - this.#since) / 1000;
    this.#since = undefined;
    this.#reasons.clear();
    return seconds;
  }
}
