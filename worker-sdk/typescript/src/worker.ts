/** `Worker`: registers steps, polls for their tasks, runs them and reports their outcomes. */
import { lookup } from "node:dns/promises";
import { performance } from "node:perf_hooks";

import { Backoff, pause } from "./backoff.js";
import { Completer, Reporter } from "./completion.js";
import { defaultWorkerId, dnsTarget, engineAddresses, resolveAddress } from "./config.js";
import { resolveTls, resolveTokenSource, type TlsOptions, WorkerConnection } from "./connection.js";
import { type Duration, durationMs } from "./durations.js";
import { TaskExecutor } from "./execution.js";
import type { PollTaskRequest, Task } from "./gen/cerebelum/v1/worker.js";
import { consoleLogger, type Logger } from "./log.js";
import { OutageLog } from "./outage.js";
import type { StepDefinition, StepHandler, StepOptions } from "./steps.js";

/** Milliseconds a long poll may take beyond its wait before it is abandoned. */
const POLL_MARGIN_MS = 10_000;
/** Milliseconds to report the steps cancelled when the drain timeout ran out. */
const SUBMIT_GRACE_MS = 5_000;
/** How often a `dns:` address is resolved again. */
const RESOLVE_EVERY_MS = 10_000;

export interface WorkerOptions {
  /** The queue the workflow's steps are routed to. */
  taskQueue: string;
  /** `host:port` of the engine; default `$CEREBELUM_ADDRESS`, else `127.0.0.1:7450`. */
  address?: string | undefined;
  /** Bearer token; default `$CEREBELUM_TOKEN`. Sent as `authorization: Bearer <token>` on every call. */
  token?: string | undefined;
  /** Else a token file, read again when it changes; default `$CEREBELUM_TOKEN_FILE`, else `/var/run/secrets/cerebelum/token` if present. */
  tokenFile?: string | undefined;
  /** `true`, or how to verify the server; default: on when `$CEREBELUM_TLS_CA` is set (or `$CEREBELUM_TLS` is true). */
  tls?: boolean | TlsOptions | undefined;
  /** Default `<hostname>-<pid>-<4 hex digits>`. */
  workerId?: string | undefined;
  /** Steps running at once (default 10); the worker polls only while it has room. */
  maxConcurrency?: number | undefined;
  /** Polls in flight at once (default 4); each waits a round trip per task it brings. */
  maxPollers?: number | undefined;
  /** How long one long poll may wait for a task (default `"10s"`). */
  pollWait?: Duration | undefined;
  /** How long running steps get to finish on shutdown (default `"30s"`). */
  drainTimeout?: Duration | undefined;
  /** Where log lines go; default {@link consoleLogger} (stderr, `$CEREBELUM_LOG_LEVEL` or `info`). */
  logger?: Logger | undefined;
}

export interface RunOptions {
  /** Drain on SIGTERM and SIGINT, stop at once on a second one (default true). */
  handleSignals?: boolean | undefined;
}

/** Counts free places for running steps; pollers wait here while the worker is full. */
class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Resolves `true` with a slot taken, or `false` when `signal` is aborted first. */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) {
      return Promise.resolve(false);
    }
    if (this.#free > 0) {
      this.#free -= 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(grant);
        if (index >= 0) {
          this.#waiters.splice(index, 1);
        }
        resolve(false);
      };
      const grant = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      };
      this.#waiters.push(grant);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) {
      next();
    } else {
      this.#free += 1;
    }
  }
}

/**
 * Runs the steps of one task queue.
 *
 * ```ts
 * const worker = new Worker({ taskQueue: "orders" });
 * worker.step("charge", async (ctx, input: Order): Promise<Receipt> => ({ ... }));
 * await worker.run(); // until SIGTERM / SIGINT, then drains
 * ```
 */
export class Worker {
  readonly taskQueue: string;
  readonly address: string;
  /** The engines polled: `address` split at commas (several engines sharing one store's shards). */
  readonly addresses: readonly string[];
  readonly workerId: string;
  readonly maxConcurrency: number;
  readonly maxPollers: number;
  readonly pollWaitMs: number;
  readonly drainTimeoutMs: number;
  readonly #log: Logger;
  readonly #tls: TlsOptions | undefined;
  readonly #tokenOption: string | undefined;
  readonly #tokenFileOption: string | undefined;
  readonly #steps = new Map<string, StepDefinition>();
  readonly #running = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly #resolvedBefore = new Map<string, string[]>(); // a dns: address's last non-empty answer
  readonly #giveUp = new AbortController();
  #started = false;
  #hasToken = false;
  #finished: Promise<void> | undefined;
  readonly #executors: TaskExecutor[] = [];

  constructor(options: WorkerOptions) {
    if (!options.taskQueue) {
      throw new RangeError("taskQueue must not be empty");
    }
    const maxConcurrency = options.maxConcurrency ?? 10;
    const maxPollers = options.maxPollers ?? 4;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      throw new RangeError("maxConcurrency must be an integer of at least 1");
    }
    if (!Number.isInteger(maxPollers) || maxPollers < 1) {
      throw new RangeError("maxPollers must be an integer of at least 1");
    }
    this.pollWaitMs = durationMs(options.pollWait ?? "10s");
    if (this.pollWaitMs <= 0) {
      throw new RangeError("pollWait must be positive");
    }
    this.drainTimeoutMs = durationMs(options.drainTimeout ?? "30s");
    this.taskQueue = options.taskQueue;
    this.address = resolveAddress(options.address);
    this.addresses = engineAddresses(this.address);
    if (this.addresses.length === 0) {
      throw new RangeError(`address ${JSON.stringify(options.address)} names no engine`);
    }
    this.workerId = options.workerId || defaultWorkerId();
    this.maxConcurrency = maxConcurrency;
    this.maxPollers = maxPollers;
    this.#log = options.logger ?? consoleLogger();
    this.#tls = resolveTls(options.tls);
    this.#tokenOption = options.token;
    this.#tokenFileOption = options.tokenFile;
  }

  // -- registration ---------------------------------------------------------------------------

  /**
   * Registers `handler` as the step `name`; returns the worker, so calls chain. The worker only
   * asks for tasks of registered steps. Type the input and output on the handler:
   * `worker.step("charge", async (ctx, input: Order): Promise<Receipt> => ...)`.
   */
  step<I = unknown, O = unknown>(name: string, handler: StepHandler<I, O>, options: StepOptions<I> = {}): this {
    if (!name) {
      throw new RangeError("a step needs a name");
    }
    if (typeof handler !== "function") {
      throw new TypeError(`step '${name}' must be a function`);
    }
    if (this.#steps.has(name)) {
      throw new RangeError(`step '${name}' is already registered`);
    }
    if (this.#started) {
      throw new Error("steps must be registered before the worker starts");
    }
    this.#steps.set(name, { name, handler: handler as StepHandler<never, unknown>, parseInput: options.parseInput });
    return this;
  }

  /** Names of the registered steps, in registration order. */
  get stepNames(): readonly string[] {
    return [...this.#steps.keys()];
  }

  /** How many tasks are running now. */
  get activeSteps(): number {
    return this.#running.size;
  }

  // -- running --------------------------------------------------------------------------------

  /**
   * Polls and runs tasks until {@link shutdown} (or, by default, SIGTERM or SIGINT), then stops
   * polling, lets running steps finish (up to `drainTimeout`), reports them and resolves. A second
   * signal stops without waiting for running steps.
   */
  async run(options: RunOptions = {}): Promise<void> {
    if (this.#started) {
      throw new Error("this worker is already running (or has run)");
    }
    if (this.#steps.size === 0) {
      throw new Error("register at least one step before running the worker");
    }
    this.#started = true;
    let finish!: () => void;
    this.#finished = new Promise((resolve) => {
      finish = resolve;
    });
    const signals: NodeJS.Signals[] = options.handleSignals === false ? [] : ["SIGTERM", "SIGINT"];
    const onSignal = (signal: NodeJS.Signals): void => this.#onSignal(signal);
    for (const signal of signals) {
      process.on(signal, onSignal);
    }
    try {
      if (!this.#stop.signal.aborted) {
        await this.#serve();
      }
    } finally {
      for (const signal of signals) {
        process.off(signal, onSignal);
      }
      finish();
    }
  }

  /**
   * Stops polling at once, lets running steps finish (up to `drainTimeout`), reports them and
   * resolves once {@link run} has returned. Do not await it from inside a step.
   */
  async shutdown(): Promise<void> {
    this.#stop.abort();
    await this.#finished;
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#stop.signal.aborted) {
      this.#log.warn(`${signal} again: stopping without waiting for running steps`);
      for (const executor of this.#executors) {
        executor.cancelAll("shutdown");
      }
      return;
    }
    this.#log.info(
      `${signal}: draining (up to ${this.drainTimeoutMs / 1000} s for ${this.#running.size} running steps)`,
    );
    void this.shutdown();
  }

  async #serve(): Promise<void> {
    const tokens = resolveTokenSource(this.#tokenOption, this.#tokenFileOption);
    this.#hasToken = tokens !== undefined;
    const connections: WorkerConnection[] = [];
    const loops = new Map<string, { stop: AbortController; done: Promise<void> }>();
    const finished: Promise<void>[] = [];
    const slots = new Slots(this.maxConcurrency); // shared: the step slots are this process's
    const open = (address: string): void => {
      const connection = new WorkerConnection(address, { tls: this.#tls, tokens });
      connections.push(connection);
      // Per engine: a step heartbeats and reports to the engine that gave it.
      const executor = new TaskExecutor({
        steps: this.#steps,
        workerId: this.workerId,
        heartbeatRpc: (request, options) => connection.heartbeat(request, options),
        log: this.#log,
      });
      this.#executors.push(executor);
      const reporter = new Reporter(
        (request, options) => connection.completeTasks(request, options),
        (request, options) => connection.complete(request, options),
        this.#log,
      );
      const completer = new Completer((request, options) => reporter.send(request, options), this.#log);
      const stop = new AbortController();
      const signal = AbortSignal.any([this.#stop.signal, stop.signal]);
      const done = this.#pollLoop(connection, address, slots, executor, completer, signal);
      loops.set(address, { stop, done });
      finished.push(done);
    };
    try {
      this.#log.info(this.#startLine());
      const names = this.addresses.map((address) => dnsTarget(address));
      while (!this.#stop.signal.aborted) {
        const wanted = await this.#resolved(names);
        for (const address of wanted) {
          if (!loops.has(address)) {
            open(address);
          }
        }
        for (const [address, loop] of [...loops]) {
          if (wanted.length > 0 && !wanted.includes(address)) {
            loop.stop.abort(); // its steps running here still report through its connection
            loops.delete(address);
            this.#log.info(`engine ${address} left ${this.addresses.join(", ")}: no longer polled`);
          }
        }
        if (!names.some((name) => name !== undefined)) {
          break; // a fixed list: nothing to resolve again
        }
        await pause(RESOLVE_EVERY_MS, this.#stop.signal);
      }
      await Promise.all(finished);
      await this.#drain();
    } finally {
      for (const connection of connections) {
        connection.close();
      }
      this.#log.info(`worker ${this.workerId} stopped`);
    }
  }

  /**
   * Each address to poll now: the list as given, each `dns:` name's current addresses (a name that
   * does not resolve for now keeps what it had: an empty answer is a DNS hiccup, not no replica).
   */
  async #resolved(names: ({ host: string; port: number } | undefined)[]): Promise<string[]> {
    const found: string[] = [];
    for (const [index, address] of this.addresses.entries()) {
      const name = names[index];
      if (name === undefined) {
        found.push(address);
        continue;
      }
      let current: string[] = [];
      try {
        const answers = await lookup(name.host, { all: true });
        current = answers.map((answer) =>
          answer.family === 6 ? `[${answer.address}]:${name.port}` : `${answer.address}:${name.port}`,
        );
      } catch (error) {
        this.#log.warn(`cannot resolve ${address} (${String(error)}); polling what it resolved to before`);
      }
      if (current.length > 0) {
        this.#resolvedBefore.set(address, current);
      }
      found.push(...(this.#resolvedBefore.get(address) ?? []));
    }
    return [...new Set(found)];
  }

  /** The line logged at start-up: where the worker polls, for what, and how much at once. */
  #startLine(): string {
    const pollers = Math.min(this.maxPollers, this.maxConcurrency);
    const security = `${this.#tls === undefined ? "plaintext" : "TLS"}, ${this.#hasToken ? "with a token" : "no token"}`;
    return (
      `worker ${this.workerId} started: task queue ${this.taskQueue} at ${this.addresses.join(", ")} (${security}); ` +
      `steps ${this.stepNames.join(", ")}; up to ${this.maxConcurrency} at once, ${pollers} pollers`
    );
  }

  async #pollLoop(
    connection: WorkerConnection,
    address: string,
    slots: Slots,
    executor: TaskExecutor,
    completer: Completer,
    signal: AbortSignal,
  ): Promise<void> {
    const pollers = Math.min(this.maxPollers, this.maxConcurrency);
    const outage = new OutageLog(this.#log, `cannot poll ${this.taskQueue} at ${address}`);
    const request: PollTaskRequest = {
      workerId: this.workerId,
      taskQueue: this.taskQueue,
      steps: this.stepNames.slice(),
      waitMs: this.pollWaitMs,
      workflows: [], // code workflows run on the Python SDK for now (docs/code-workflows-protocol.md)
      streamSteps: false,
    };
    // What a step's report asks for: the next task for the slot it frees, handed back in the reply.
    const next: PollTaskRequest = { ...request, waitMs: 0 };
    const pollOne = async (): Promise<void> => {
      const stop = signal;
      const backoff = new Backoff();
      while (!stop.aborted) {
        if (!(await slots.acquire(stop))) {
          return;
        }
        let task: Task | undefined;
        try {
          ({ task } = await connection.poll(request, { timeoutMs: this.pollWaitMs + POLL_MARGIN_MS, signal: stop }));
        } catch (error) {
          slots.release();
          if (stop.aborted) {
            return;
          }
          outage.failed(error);
          await pause(backoff.next(), stop);
          continue;
        }
        backoff.reset();
        const seconds = outage.recovered();
        if (seconds !== undefined) {
          this.#log.info(`polling ${this.taskQueue} again after ${seconds.toFixed(1)} s`);
        }
        if (task === undefined) {
          slots.release();
          continue;
        }
        const handled: Promise<void> = this.#handle(task, executor, completer, next)
          .catch((error: unknown) => this.#log.error("a task handler failed", error))
          .finally(() => {
            this.#running.delete(handled);
            slots.release();
          });
        this.#running.add(handled);
      }
    };
    await Promise.all(Array.from({ length: pollers }, pollOne));
  }

  /**
   * Runs a task and reports it; the report asks for this slot's next task (`pollNext`), and a task
   * that comes back with the acknowledgement runs here in turn: one round trip per step.
   */
  async #handle(first: Task, executor: TaskExecutor, completer: Completer, next: PollTaskRequest): Promise<void> {
    let task: Task | undefined = first;
    while (task !== undefined) {
      const report = await executor.run(task);
      if (report === null) {
        return;
      }
      if (!this.#stop.signal.aborted) {
        report.pollNext = next;
      }
      const reply = await completer.submit(report, this.#giveUp.signal);
      task = reply?.nextTask; // leased to this worker: run even if a stop began meanwhile (the drain waits)
    }
  }

  async #drain(): Promise<void> {
    if (this.#running.size === 0) {
      return;
    }
    this.#log.info(`waiting up to ${this.drainTimeoutMs / 1000} s for ${this.#running.size} running steps`);
    if (await this.#settle(this.drainTimeoutMs)) {
      return;
    }
    this.#log.warn(
      `${this.#running.size} steps still running after ${this.drainTimeoutMs / 1000} s: cancelling them`,
    );
    for (const executor of this.#executors) {
      executor.cancelAll("shutdown");
    }
    if (!(await this.#settle(SUBMIT_GRACE_MS))) {
      this.#giveUp.abort(); // stop re-submitting reports the server does not take
      await this.#settle(SUBMIT_GRACE_MS);
    }
  }

  /** Waits up to `timeoutMs` for the running tasks; true when none is left. */
  async #settle(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.#running.size > 0) {
      const left = deadline - performance.now();
      if (left <= 0) {
        return false;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
      });
      await Promise.race([Promise.allSettled([...this.#running]), timeout]);
      clearTimeout(timer);
    }
    return true;
  }
}
