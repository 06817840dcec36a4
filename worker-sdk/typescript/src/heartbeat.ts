/** Keeps one task's lease alive while its step runs, and notices cancellation and lost leases. */
import { performance } from "node:perf_hooks";

import { describeError } from "./connection.js";
import type { StepContext } from "./context.js";
import type { CancelReason } from "./errors.js";
import type { HeartbeatRequest, HeartbeatResponse, Task } from "./gen/cerebelum/v1/worker.js";
import type { Logger } from "./log.js";

/** Lease assumed when a task carries none. */
export const DEFAULT_LEASE_MS = 30_000;

export type HeartbeatRpc = (
  request: HeartbeatRequest,
  options: { timeoutMs: number; signal: AbortSignal },
) => Promise<HeartbeatResponse>;

/**
 * Sends `Heartbeat` for one task every `leaseMs / 3`, exactly as the Python SDK does.
 *
 * Without `heartbeatRequired` it beats on its own for as long as the step runs. With it, it only
 * beats after the step called `ctx.heartbeat()` since the last beat, so a stuck step loses its
 * lease. Requests from `ctx.heartbeat()` are sent at once when the last beat is at least one
 * interval old, otherwise at the next interval. Between beats there is only one timer.
 */
export class Heartbeater {
  readonly intervalMs: number;
  readonly #rpc: HeartbeatRpc;
  readonly #token: string;
  readonly #workerId: string;
  readonly #ctx: StepContext;
  readonly #onCancel: (reason: CancelReason) => void;
  readonly #log: Logger;
  readonly #auto: boolean;
  #dirty = false;
  #stopped = false;
  #lastSent: number;
  #timer: NodeJS.Timeout | undefined;
  #inflight: AbortController | undefined;

  constructor(options: {
    rpc: HeartbeatRpc;
    task: Task;
    workerId: string;
    ctx: StepContext;
    onCancel: (reason: CancelReason) => void;
    log: Logger;
  }) {
    this.#rpc = options.rpc;
    this.#token = options.task.taskToken;
    this.#workerId = options.workerId;
    this.#ctx = options.ctx;
    this.#onCancel = options.onCancel;
    this.#log = options.log;
    this.intervalMs = (options.task.leaseMs || DEFAULT_LEASE_MS) / 3;
    this.#auto = !options.task.heartbeatRequired;
    if (this.#auto) {
      this.#lastSent = performance.now(); // the lease was granted just now
      this.#schedule(this.#lastSent + this.intervalMs);
    } else {
      this.#lastSent = Number.NEGATIVE_INFINITY;
    }
    this.#ctx._setNotifier(() => this.request());
  }

  /** `ctx.heartbeat()` was called: beat now if allowed, else at the next interval. */
  request(): void {
    if (this.#stopped) {
      return;
    }
    this.#dirty = true;
    if (this.#inflight !== undefined) {
      return; // rescheduled when the beat in flight finishes
    }
    const due = this.#lastSent + this.intervalMs;
    if (performance.now() >= due) {
      this.#cancelTimer();
      this.#send();
    } else if (this.#timer === undefined) {
      this.#schedule(due);
    }
  }

  /** The step is over: no more beats. */
  stop(): void {
    this.#stopped = true;
    this.#ctx._setNotifier(undefined);
    this.#cancelTimer();
    this.#inflight?.abort();
    this.#inflight = undefined;
  }

  #schedule(at: number): void {
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - performance.now()));
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#stopped || this.#inflight !== undefined) {
      return;
    }
    if (this.#auto || this.#dirty) {
      this.#send();
    }
  }

  #send(): void {
    this.#dirty = false;
    this.#lastSent = performance.now();
    const request: HeartbeatRequest = {
      taskToken: this.#token,
      workerId: this.#workerId,
      progressJson: this.#ctx.progressJson,
    };
    const inflight = new AbortController();
    this.#inflight = inflight;
    void this.#beat(request, inflight);
  }

  async #beat(request: HeartbeatRequest, inflight: AbortController): Promise<void> {
    let reply: HeartbeatResponse | undefined;
    try {
      reply = await this.#rpc(request, { timeoutMs: Math.max(1_000, this.intervalMs), signal: inflight.signal });
    } catch (error) {
      this.#log.debug(`heartbeat for ${this.#ctx.step} failed: ${describeError(error)}`);
    }
    if (this.#stopped || inflight.signal.aborted) {
      return;
    }
    this.#inflight = undefined;
    if (reply !== undefined) {
      if (reply.leaseLost) {
        this.stop();
        this.#onCancel("lease_lost");
        return;
      }
      if (reply.cancelRequested) {
        this.#onCancel("cancel_requested");
      }
    }
    if (this.#auto || this.#dirty) {
      this.#schedule(this.#lastSent + this.intervalMs);
    }
  }
}
