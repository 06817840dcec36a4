/** Submits task outcomes with `CompleteTask` until the server acknowledges them. */
import { status } from "@grpc/grpc-js";

import { Backoff, pause } from "./backoff.js";
import { describeError, isServiceError } from "./connection.js";
import type { CompleteTaskRequest, CompleteTaskResponse } from "./gen/cerebelum/v1/worker.js";
import type { Logger } from "./log.js";
import { OutageLog } from "./outage.js";
import { invalidPayloadReport } from "./reports.js";

export type CompleteRpc = (
  request: CompleteTaskRequest,
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
) => Promise<CompleteTaskResponse>;

/** Codes after which the same request is sent again (the server may not have seen it). */
const TRANSIENT: ReadonlySet<number> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED]);
/** Codes that mean "this outcome's payload is unacceptable": report a failure instead. */
const REFUSED: ReadonlyMap<number, string> = new Map([
  [status.RESOURCE_EXHAUSTED, "PayloadTooLarge"],
  [status.INVALID_ARGUMENT, "InvalidOutput"],
]);
const MAX_FALLBACK_MESSAGE = 2_000;

/**
 * Sends one `CompleteTaskRequest` until it is acknowledged.
 *
 * ACCEPTED, DUPLICATE and STALE all count as acknowledged. Transient errors (and a token file
 * that cannot be read) are retried with jittered backoff (below 100 ms doubling to 5 s) without limit; aborting
 * `signal` gives up. An outcome refused as too large or invalid is replaced by a non-retryable
 * failure carrying the server's message.
 */
export class Completer {
  readonly #rpc: CompleteRpc;
  readonly #timeoutMs: number;
  readonly #log: Logger;

  constructor(rpc: CompleteRpc, log: Logger, timeoutMs = 10_000) {
    this.#rpc = rpc;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  /** The acknowledgement, or `null` when the server refused the report for good or `signal` gave up. */
  async submit(request: CompleteTaskRequest, signal?: AbortSignal): Promise<CompleteTaskResponse | null> {
    let backoff: Backoff | undefined;
    let outage: OutageLog | undefined;
    let current = request;
    while (!signal?.aborted) {
      try {
        return await this.#rpc(current, { timeoutMs: this.#timeoutMs, signal });
      } catch (error) {
        if (signal?.aborted) {
          break;
        }
        if (!isServiceError(error) || TRANSIENT.has(error.code)) {
          backoff ??= new Backoff();
          outage ??= new OutageLog(this.#log, `cannot report ${what(current)}`);
          outage.failed(error);
          await pause(backoff.next(), signal);
          continue;
        }
        const replacement = replace(current, error.code, error.details);
        if (replacement === undefined) {
          this.#log.error(`the server refused the report of ${what(current)}: ${describeError(error)}`);
          return null;
        }
        this.#log.warn(`the server refused ${what(current)} (${describeError(error)}); reporting a failure instead`);
        current = replacement;
      }
    }
    this.#log.warn(`gave up reporting ${what(current)}: the worker is stopping`);
    return null;
  }
}

function replace(request: CompleteTaskRequest, code: number, details: string): CompleteTaskRequest | undefined {
  const kind = REFUSED.get(code);
  const outcome = request.outcome;
  if (kind === undefined || outcome === undefined) {
    return undefined;
  }
  if (outcome.$case === "success" || outcome.$case === "sleep" || outcome.$case === "approval") {
    return invalidPayloadReport(request, kind, details || `the server refused the step's ${outcome.$case}`);
  }
  if (
    outcome.$case === "failure" &&
    (outcome.value.stacktrace !== "" || outcome.value.message.length > MAX_FALLBACK_MESSAGE)
  ) {
    return {
      ...request,
      outcome: {
        $case: "failure",
        value: { ...outcome.value, stacktrace: "", message: outcome.value.message.slice(0, MAX_FALLBACK_MESSAGE) },
      },
    };
  }
  return undefined;
}

function what(request: CompleteTaskRequest): string {
  return `the ${request.outcome?.$case ?? "empty outcome"} of task ${request.taskToken.slice(0, 16)}`;
}
