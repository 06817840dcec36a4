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
 *
 * With `heartbeatRequired` (then `leaseMs` is the step's heartbeat timeout) it also tells the
 * step when it missed that timeout (`heartbeat_timeout`), which the engine would otherwise only
 * record: when the step has not called `ctx.heartbeat()` for `leaseMs`, or when a beat has been
 * in flight for longer than it can take (the step blocks the event loop, so nothing goes out).
 * Beats that fail while the step keeps calling do not count: in an outage the engine decides,
 * and a later reply says `lease_lost` if the lease is gone.
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
  /** When the beat in flight was sent. */
  #inflightSentAt = 0;
  readonly #leaseMs: number;
  /** How long a beat may be in flight before the event loop must have been blocked. */
  readonly #stuckMs: number;
  /** When the step last called `ctx.heartbeat()` (the task's arrival before that). */
  #lastCalled: number;
  #leaseTimer: NodeJS.Timeout | undefined;

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
    this.#leaseMs = options.task.leaseMs || DEFAULT_LEASE_MS;
    this.intervalMs = this.#leaseMs / 3;
    this.#auto = !options.task.heartbeatRequired;
    this.#stuckMs = Math.max(this.#leaseMs, this.#rpcTimeoutMs());
    const granted = performance.now(); // the lease was granted just now
    this.#lastCalled = granted;
    if (this.#auto) {
      this.#lastSent = granted;
      this.#schedule(this.#lastSent + this.intervalMs);
    } else {
      this.#lastSent = Number.NEGATIVE_INFINITY;
      this.#watchLease();
    }
    this.#ctx._setNotifier(() => this.request());
  }

  /** `ctx.heartbeat()` was called: beat now if allowed, else at the next interval. */
  request(): void {
    if (this.#stopped) {
      return;
    }
    // A step that blocks the event loop keeps timers from firing: look here too.
    if (!this.#auto && this.#overdue()) {
      this.#timedOut();
      return;
    }
    this.#lastCalled = performance.now();
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
    clearTimeout(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#inflight?.abort();
    this.#inflight = undefined;
  }

  /** When the step is overdue: its heartbeat timeout after its last call, or a beat stuck in flight. */
  #deadline(): number {
    const missed = this.#lastCalled + this.#leaseMs;
    return this.#inflight === undefined ? missed : Math.min(missed, this.#inflightSentAt + this.#stuckMs);
  }

  #overdue(): boolean {
    return performance.now() >= this.#deadline();
  }

  #rpcTimeoutMs(): number {
    return Math.max(1_000, this.intervalMs);
  }

  /** Arms the one timer that checks, at the deadline, whether the step is overdue. */
  #watchLease(): void {
    clearTimeout(this.#leaseTimer);
    this.#leaseTimer = setTimeout(
      () => {
        this.#leaseTimer = undefined;
        if (this.#stopped) {
          return;
        }
        if (this.#overdue()) {
          this.#timedOut();
        } else {
          this.#watchLease();
        }
      },
      Math.max(0, this.#deadline() - performance.now()),
    );
  }

  #timedOut(): void {
    this.#log.warn(
      `step ${this.#ctx.step} of execution ${this.#ctx.executionId} did not heartbeat within its heartbeat ` +
        `timeout of ${this.#leaseMs / 1000} s: its lease is lost, stopping it`,
    );
    this.stop();
    this.#onCancel("heartbeat_timeout");
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
    this.#inflightSentAt = this.#lastSent;
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
      reply = await this.#rpc(request, { timeoutMs: this.#rpcTimeoutMs(), signal: inflight.signal });
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
