/**
 * Submits task outcomes until the server acknowledges them: batched with `CompleteTasks` (reports that
 * become ready while the most calls are in flight go together in the next one), or one `CompleteTask` each.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";

import { Backoff, pause } from "./backoff.js";
import { describeError, isServiceError } from "./connection.js";
import type {
  CompleteTaskRequest,
  CompleteTaskResponse,
  CompleteTasksRequest,
  CompleteTasksResponse,
} from "./gen/cerebelum/v1/worker.js";
import { CompleteTaskRequest as CompleteTaskRequestCodec } from "./gen/cerebelum/v1/worker.js";
import type { Logger } from "./log.js";
import { OutageLog } from "./outage.js";
import { invalidPayloadReport } from "./reports.js";

export type CompleteRpc = (
  request: CompleteTaskRequest,
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
) => Promise<CompleteTaskResponse>;

export type CompleteTasksRpc = (
  request: CompleteTasksRequest,
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
) => Promise<CompleteTasksResponse>;

/** Bounds of one `CompleteTasks` call, far below the server's (256 reports; a message of 5 MiB by default). */
export const MAX_BATCH_REPORTS = 128;
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Calls in flight at once: with one, the worker's next reports waited while a call's were decided and
 * committed, and the engine waited while the worker ran what came back (as the Python SDK's).
 */
export const MAX_CALLS_IN_FLIGHT = 4;

interface Pending {
  request: CompleteTaskRequest;
  resolve: (reply: CompleteTaskResponse) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  settled: boolean;
}

/** A report's own error in a batched reply, as the error `CompleteTask` would have failed with. */
function refused(code: number, details: string): ServiceError {
  const error = new Error(`${status[code] ?? code}: ${details}`) as ServiceError;
  return Object.assign(error, { code, details, metadata: new Metadata() });
}

/**
 * Sends reports with `CompleteTasks`: at once while fewer than `maxCalls` calls are in flight; the
 * reports that become ready while that many are go together in the next call. So at low load a call
 * carries one report (no added latency) and under load one call carries many. Each report's result is its own: its reply, or the
 * error `CompleteTask` would have failed with. An engine that answers `UNIMPLEMENTED` (one older than
 * `CompleteTasks`) gets `CompleteTask` per report from then on.
 */
export class Reporter {
  readonly #batch: CompleteTasksRpc;
  readonly #single: CompleteRpc;
  readonly #log: Logger;
  readonly #maxReports: number;
  readonly #maxBytes: number;
  readonly #maxCalls: number;
  #batched = true;
  #queue: Pending[] = [];
  #sending = 0; // loops each sending one call at a time while reports wait

  constructor(
    batch: CompleteTasksRpc,
    single: CompleteRpc,
    log: Logger,
    bounds: { maxReports?: number; maxBytes?: number; maxCalls?: number } = {},
  ) {
    this.#batch = batch;
    this.#single = single;
    this.#log = log;
    this.#maxReports = bounds.maxReports ?? MAX_BATCH_REPORTS;
    this.#maxBytes = bounds.maxBytes ?? MAX_BATCH_BYTES;
    this.#maxCalls = bounds.maxCalls ?? MAX_CALLS_IN_FLIGHT;
    if (!Number.isInteger(this.#maxCalls) || this.#maxCalls < 1) {
      throw new RangeError(`maxCalls must be a whole number of at least 1, not ${this.#maxCalls}`);
    }
  }

  /** Calls in flight now (or about to go). */
  get callsInFlight(): number {
    return this.#sending;
  }

  /** False once the engine said it has no `CompleteTasks`. */
  get batched(): boolean {
    return this.#batched;
  }

  /** The reply to `request`; rejects as `CompleteTask` would. `signal` aborting drops a report not sent yet. */
  send(request: CompleteTaskRequest, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<CompleteTaskResponse> {
    if (!this.#batched) {
      return this.#single(request, options);
    }
    return new Promise<CompleteTaskResponse>((resolve, reject) => {
      const pending: Pending = { request, resolve, reject, signal: options.signal, settled: false };
      if (options.signal?.aborted) {
        reject(options.signal.reason);
        return;
      }
      options.signal?.addEventListener("abort", () => settle(pending, undefined, options.signal?.reason), { once: true });
      this.#queue.push(pending);
      if (this.#sending < this.#maxCalls) {
        this.#sending += 1;
        queueMicrotask(() => void this.#sendAll(options.timeoutMs));
      }
    });
  }

  async #sendAll(timeoutMs: number): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        await this.#send(this.#nextBatch(), timeoutMs);
      }
    } finally {
      this.#sending -= 1;
    }
  }

  /** The reports waiting, in order, up to the bounds (at least one, if any is still wanted). */
  #nextBatch(): Pending[] {
    const batch: Pending[] = [];
    let size = 0;
    while (this.#queue.length > 0 && batch.length < this.#maxReports) {
      const pending = this.#queue[0] as Pending;
      if (pending.settled) {
        this.#queue.shift();
        continue;
      }
      const weight = CompleteTaskRequestCodec.encode(pending.request).finish().length + 8;
      if (batch.length > 0 && size + weight > this.#maxBytes) {
        break;
      }
      batch.push(this.#queue.shift() as Pending);
      size += weight;
    }
    return batch;
  }

  async #send(batch: Pending[], timeoutMs: number): Promise<void> {
    if (batch.length === 0) {
      return;
    }
    let response: CompleteTasksResponse;
    try {
      response = await this.#batch({ reports: batch.map((p) => p.request) }, { timeoutMs });
    } catch (error) {
      const code = isServiceError(error) ? error.code : undefined;
      if (code === status.UNIMPLEMENTED && this.#batched) {
        // Once, though every call in flight hears it.
        this.#log.info("the engine has no CompleteTasks (an older version): reporting each outcome on its own");
        this.#batched = false;
      }
      if (code === status.UNIMPLEMENTED || (code !== undefined && REFUSED.has(code) && batch.length > 1)) {
        this.#alone(batch, timeoutMs);
        if (!this.#batched) {
          this.#alone(this.#queue.splice(0), timeoutMs);
        }
        return;
      }
      for (const pending of batch) {
        settle(pending, undefined, error);
      }
      return;
    }
    const results = response.results;
    if (results.length !== batch.length) {
      const error = refused(
        status.UNAVAILABLE,
        `CompleteTasks answered ${results.length} results for ${batch.length} reports`,
      );
      for (const pending of batch) {
        settle(pending, undefined, error);
      }
      return;
    }
    batch.forEach((pending, index) => {
      const result = results[index]?.result;
      if (result?.$case === "reply") {
        settle(pending, result.value);
      } else {
        const error = result?.$case === "error" ? result.value : { code: status.UNKNOWN, message: "no result" };
        settle(pending, undefined, refused(error.code, error.message));
      }
    });
  }

  /** Each report with `CompleteTask`, its caller answered by that call. */
  #alone(batch: Pending[], timeoutMs: number): void {
    for (const pending of batch) {
      if (!pending.settled) {
        this.#single(pending.request, { timeoutMs, signal: pending.signal }).then(
          (reply) => settle(pending, reply),
          (error: unknown) => settle(pending, undefined, error),
        );
      }
    }
  }
}

function settle(pending: Pending, reply: CompleteTaskResponse | undefined, error?: unknown): void {
  if (pending.settled) {
    return;
  }
  pending.settled = true;
  if (reply !== undefined) {
    pending.resolve(reply);
  } else {
    pending.reject(error);
  }
}

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
