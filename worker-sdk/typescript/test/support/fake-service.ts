/** An in-process fake of the engine's WorkerService for unit tests (not the real engine). */
import { type Metadata, Server, ServerCredentials, type ServiceError, status } from "@grpc/grpc-js";

import { Worker, type WorkerOptions } from "@cerebelum/worker";
import {
  type CompleteTaskRequest,
  type CompleteTaskResponse,
  CompleteTaskResponse_Disposition,
  type CompleteTaskResult,
  type CompleteTasksRequest,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type PollTaskRequest,
  type Task,
  type WorkAnswer,
  type WorkCall,
  WorkerServiceService,
  type WorkerServiceServer,
} from "@cerebelum/worker/proto/worker";

export interface TaskSpec {
  input?: unknown;
  results?: Record<string, unknown>;
  /** The task's `vars`; absent (as from a workflow without variables, or an older engine) unless given. */
  vars?: Record<string, unknown>;
  /** The task's `outcome`; absent (as for any step but a compensation or finally step) unless given. */
  outcome?: Record<string, unknown>;
  /** The task's `args`; absent (as for a step without args, or from an older engine) unless given. */
  args?: Record<string, unknown>;
  /**
   * The task's `item` and `index`, both there (and the key ending with the index) when `index` is
   * given, as for a `forEach` step's task; absent unless given.
   */
  item?: unknown;
  index?: number;
  /** The workflow's step (`Task.workflowStep`; `step` is the handler); empty, as from an older engine, unless given. */
  workflowStep?: string;
  token?: string;
  leaseMs?: number;
  heartbeatRequired?: boolean;
  attempt?: number;
  run?: number;
  poll?: number;
  argumentsJson?: string;
  lastProgressJson?: string;
  /** The deadline as an engine of this release sends it (both fields) unless overridden. */
  attemptDeadline?: Date | undefined;
  attemptDeadlineMs?: number;
}

export function makeTask(step: string, spec: TaskSpec = {}): Task {
  const attempt = spec.attempt ?? 1;
  const run = spec.run ?? 1;
  const poll = spec.poll ?? 0;
  const key = `ex-1/${spec.workflowStep || step}/${run}`;
  return {
    taskToken: spec.token ?? `token-${step}-${attempt}-${poll}-${Math.random().toString(16).slice(2, 8)}`,
    executionId: "ex-1",
    workflow: "wf",
    step,
    workflowStep: spec.workflowStep ?? "",
    attempt,
    run,
    idempotencyKey: spec.index === undefined ? key : `${key}/${spec.index}`,
    argumentsJson:
      spec.argumentsJson ??
      JSON.stringify({
        input: spec.input ?? null,
        results: spec.results ?? {},
        vars: spec.vars,
        args: spec.args,
        outcome: spec.outcome,
        item: spec.index === undefined ? undefined : (spec.item ?? null),
        index: spec.index,
      }),
    attemptDeadlineMs: spec.attemptDeadlineMs ?? 1_900_000_000_000,
    attemptDeadline: "attemptDeadline" in spec ? spec.attemptDeadline : new Date(1_900_000_000_000),
    leaseMs: spec.leaseMs ?? 30_000,
    heartbeatRequired: spec.heartbeatRequired ?? false,
    poll,
    lastProgressJson: spec.lastProgressJson ?? "",
    workflowTask: undefined,
  };
}

export async function eventually(predicate: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function fail(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as unknown as Metadata });
}

/** Hands out queued tasks, records heartbeats and completions, and fails on request. */
export class FakeWorkerService {
  readonly polls: PollTaskRequest[] = [];
  readonly pollMetadata: Array<Record<string, string>> = [];
  readonly heartbeats: Array<{ request: HeartbeatRequest; at: number }> = [];
  readonly completions: CompleteTaskRequest[] = [];
  heartbeatReply: HeartbeatResponse = { cancelRequested: false, leaseLost: false, leaseExpiresAtMs: 0, leaseExpiresAt: undefined };
  /** Answered to every Heartbeat while set (undefined: `heartbeatReply`). */
  heartbeatError: [status, string] | undefined;
  completeAttempts = 0;
  /** Whether the Work stream is served; false: it answers UNIMPLEMENTED, as an engine that predates it. */
  streamed = false;
  /** Work streams asked for (refused ones too), the metadata of each served, and what went on them. */
  streamsOpened = 0;
  readonly streamMetadata: Array<Record<string, string>> = [];
  streamPolls = 0;
  streamCancels = 0;
  /** Whether CompleteTasks is served; false: it answers UNIMPLEMENTED, as an engine that predates it. */
  batched = false;
  /** The CompleteTasks calls served, and how many were made (UNIMPLEMENTED ones too). */
  readonly batches: CompleteTasksRequest[] = [];
  completeTasksAttempts = 0;
  /** Each CompleteTasks call is answered once this settles (replace it to hold calls in flight). */
  batchGate: Promise<void> = Promise.resolve();
  /** [code, message] answered to the next CompleteTask calls, in order. */
  completeErrors: Array<[status, string]> = [];
  /** Answered to every PollTask while set (undefined: hand out tasks). */
  pollError: [status, string] | undefined;
  /** Answered to every CompleteTask carrying a success (undefined: accept). */
  rejectSuccess: [status, string] | undefined;
  /** The task handed back with the acknowledgement of a completion, by the completed task's token. */
  readonly nextTasks = new Map<string, Task>();
  address = "";
  readonly #server = new Server();
  readonly #tasks: Task[] = [];
  readonly #waiting: Array<(task: Task | undefined) => void> = [];

  constructor() {
    const implementation: WorkerServiceServer = {
      // Each WorkCall runs through this fake's own pollTask / completeTasks, as the engine runs the RPC.
      work: (call) => {
        this.streamsOpened += 1;
        if (!this.streamed) {
          call.emit("error", { code: status.UNIMPLEMENTED, details: "Method not found!" }); // as an engine before Work
          return;
        }
        this.streamMetadata.push(flatten(call.metadata));
        const open = new Map<number, () => void>();
        call.on("data", (message: WorkCall) => {
          const { id } = message;
          const kind = message.call;
          if (kind === undefined) {
            return;
          }
          if (kind.$case === "cancel") {
            this.streamCancels += 1;
            open.get(id)?.();
            open.delete(id);
            return;
          }
          const cancelled: Array<() => void> = [];
          open.set(id, () => cancelled.forEach((listener) => listener()));
          const unary = {
            request: kind.value,
            metadata: call.metadata,
            on: (event: string, listener: () => void) => {
              if (event === "cancelled") {
                cancelled.push(listener);
              }
            },
          };
          const answer = (error: ServiceError | null, reply?: unknown): void => {
            if (!open.delete(id)) {
              return; // cancelled: nobody waits
            }
            call.write(
              error
                ? { id, answer: { $case: "error", value: { code: error.code, message: error.details } } }
                : ({ id, answer: { $case: kind.$case, value: reply } } as WorkAnswer),
            );
          };
          if (kind.$case === "pollTask") {
            this.streamPolls += 1;
            implementation.pollTask(unary as never, answer as never);
          } else {
            implementation.completeTasks(unary as never, answer as never);
          }
        });
        const endAll = (): void => {
          for (const cancel of open.values()) {
            cancel();
          }
          open.clear();
        };
        call.on("cancelled", endAll);
        call.on("end", () => {
          endAll();
          call.end();
        });
      },
      pollTask: (call, callback) => {
        this.polls.push(call.request);
        this.pollMetadata.push(flatten(call.metadata));
        if (this.pollError !== undefined) {
          callback(fail(...this.pollError));
          return;
        }
        const task = this.#tasks.shift();
        if (task !== undefined) {
          callback(null, { task });
          return;
        }
        let done = false;
        const answer = (next: Task | undefined): void => {
          if (done) {
            return;
          }
          done = true;
          clearTimeout(timer);
          callback(null, next === undefined ? {} : { task: next });
        };
        const timer = setTimeout(() => {
          const index = this.#waiting.indexOf(answer);
          if (index >= 0) {
            this.#waiting.splice(index, 1);
          }
          answer(undefined);
        }, call.request.waitMs);
        call.on("cancelled", () => {
          const index = this.#waiting.indexOf(answer);
          if (index >= 0) {
            this.#waiting.splice(index, 1);
          }
          done = true;
          clearTimeout(timer);
        });
        this.#waiting.push(answer);
      },
      heartbeat: (call, callback) => {
        this.heartbeats.push({ request: call.request, at: performance.now() });
        if (this.heartbeatError !== undefined) {
          callback(fail(...this.heartbeatError));
          return;
        }
        callback(null, this.heartbeatReply);
      },
      getWorkflowHistory: (_call, callback) => {
        callback(fail(status.UNIMPLEMENTED, "this fake serves step tasks only"));
      },
      completeTask: (call, callback) => {
        const answer = this.#answer(call.request);
        if ("error" in answer) {
          callback(fail(...answer.error));
        } else {
          callback(null, answer.reply);
        }
      },
      completeTasks: (call, callback) => {
        this.completeTasksAttempts += 1;
        if (!this.batched) {
          callback(fail(status.UNIMPLEMENTED, "Method not found!")); // as an engine before CompleteTasks
          return;
        }
        this.batches.push(call.request);
        const gate = this.batchGate;
        void gate.then(() => {
          const results: CompleteTaskResult[] = call.request.reports.map((report) => {
            const answer = this.#answer(report);
            if ("error" in answer) {
              return { result: { $case: "error", value: { code: answer.error[0], message: answer.error[1] } } };
            }
            return { result: { $case: "reply", value: answer.reply } };
          });
          callback(null, { results });
        });
      },
    };
    this.#server.addService(WorkerServiceService, implementation);
  }

  #answer(request: CompleteTaskRequest): { reply: CompleteTaskResponse } | { error: [status, string] } {
    this.completeAttempts += 1;
    const error = this.completeErrors.shift();
    if (error !== undefined) {
      return { error };
    }
    if (this.rejectSuccess !== undefined && request.outcome?.$case === "success") {
      return { error: this.rejectSuccess };
    }
    this.completions.push(request);
    const nextTask = this.nextTasks.get(request.taskToken);
    this.nextTasks.delete(request.taskToken);
    return { reply: { disposition: CompleteTaskResponse_Disposition.ACCEPTED, workflowTask: undefined, nextTask } };
  }

  async start(port = 0, host = "127.0.0.1"): Promise<this> {
    const bound = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, actual) =>
        error ? reject(error) : resolve(actual),
      );
    });
    this.address = `${host}:${bound}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const answer of this.#waiting.splice(0)) {
      answer(undefined);
    }
    await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    this.#server.forceShutdown();
  }

  /** Queue `task` for the next poll. */
  push(task: Task): void {
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      waiter(task);
    } else {
      this.#tasks.push(task);
    }
  }

  /** Polls parked here waiting for a task. */
  get waitingPolls(): number {
    return this.#waiting.length;
  }

  completion(token: string): CompleteTaskRequest | undefined {
    return this.completions.find((c) => c.taskToken === token);
  }

  /** Queue `task` and return its completion. */
  async runTask(task: Task, timeoutMs = 5_000): Promise<CompleteTaskRequest> {
    this.push(task);
    await eventually(() => this.completion(task.taskToken) !== undefined, timeoutMs, "the task's completion");
    return this.completion(task.taskToken)!;
  }

  heartbeatsOf(token: string): Array<{ request: HeartbeatRequest; at: number }> {
    return this.heartbeats.filter((beat) => beat.request.taskToken === token);
  }
}

function flatten(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata.getMap())) {
    out[key] = String(value);
  }
  return out;
}

/** Records log lines (and the errors logged with them) instead of printing them. */
export class MemoryLogger {
  readonly lines: Array<{ level: string; message: string; error?: unknown }> = [];
  debug(message: string): void {
    this.lines.push({ level: "debug", message });
  }
  info(message: string): void {
    this.lines.push({ level: "info", message });
  }
  warn(message: string, error?: unknown): void {
    this.lines.push({ level: "warn", message, error });
  }
  error(message: string, error?: unknown): void {
    this.lines.push({ level: "error", message, error });
  }
  matching(level: string, text: string): string[] {
    return this.lines.filter((l) => l.level === level && l.message.includes(text)).map((l) => l.message);
  }
  /** The error logged with the first `level` line containing `text`. */
  errorOf(level: string, text: string): unknown {
    return this.lines.find((l) => l.level === level && l.message.includes(text))?.error;
  }
}

/** A worker for `service` with quiet logs, short polls and no signal handlers. */
export function testWorker(
  service: FakeWorkerService,
  options: Partial<WorkerOptions> = {},
): { worker: Worker; log: MemoryLogger } {
  const log = new MemoryLogger();
  const worker = new Worker({
    taskQueue: "test",
    address: service.address,
    pollWait: 200,
    drainTimeout: "5s",
    logger: log,
    ...options,
  });
  return { worker, log };
}

/** Run `worker` in the background while `body` runs; shut it down (bounded) afterwards. */
export async function running<T>(worker: Worker, body: () => Promise<T>): Promise<T> {
  const done = worker.run({ handleSignals: false });
  try {
    return await body();
  } finally {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error("the worker did not stop")), 15_000);
    });
    try {
      await Promise.race([worker.shutdown().then(() => done), stuck]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export function outputOf(completion: CompleteTaskRequest): unknown {
  if (completion.outcome?.$case !== "success") {
    throw new Error(`expected a success, got ${JSON.stringify(completion.outcome)}`);
  }
  return JSON.parse(completion.outcome.value.outputJson);
}
