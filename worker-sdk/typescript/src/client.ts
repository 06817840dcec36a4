/**
 * `Client`: start executions, read them, wait for them, signal, approve and cancel them from
 * TypeScript, over the engine's `WorkflowService` (the Python SDK's `Client`, in the TypeScript
 * SDK's style: options objects, durations as milliseconds or text, times as `Date`).
 */
import { type ServiceError, status } from "@grpc/grpc-js";

import { resolveAddress } from "./config.js";
import {
  callUnary,
  channelCredentials,
  channelOptions,
  isServiceError,
  resolveTls,
  resolveTokenSource,
  type TlsOptions,
  type TokenSource,
  type Unary,
} from "./connection.js";
import { type Duration, durationMs } from "./durations.js";
import {
  type ChildExecution as ChildExecutionInfo,
  type ExecutionInfo,
  type ListExecutionsRequest,
  type QueuedSignal as QueuedSignalInfo,
  type SignalWait as SignalWaitInfo,
  type StepInfo,
  WorkflowServiceClient,
} from "./gen/cerebelum/v1/workflow.js";
import { dumps, loads } from "./jsoncodec.js";

/** Phases after which an execution changes no more (a run that continued as new goes on in `continuedAs`). */
export const TERMINAL_PHASES: ReadonlySet<string> = new Set(["Succeeded", "Failed", "Cancelled", "ContinuedAsNew"]);

/** The longest one `WaitExecution` waits on the engine; `waitExecution` asks again until its own timeout. */
const MAX_WAIT_MS = 30_000;
/** Milliseconds a `WaitExecution` may take beyond its wait before it is abandoned. */
const WAIT_MARGIN_MS = 10_000;

export interface ClientOptions {
  /** `host:port` of the engine; default `$CEREBELUM_ADDRESS`, else `127.0.0.1:7450`. */
  address?: string | undefined;
  /** Bearer token; default `$CEREBELUM_TOKEN`. */
  token?: string | undefined;
  /** Else a token file, read again when it changes; default `$CEREBELUM_TOKEN_FILE`, else `/var/run/secrets/cerebelum/token` if present. */
  tokenFile?: string | undefined;
  /** `true`, or how to verify the server; default: on when `$CEREBELUM_TLS_CA` is set (or `$CEREBELUM_TLS` is true). */
  tls?: boolean | TlsOptions | undefined;
  /** How long one call may take (default `"30s"`); `waitExecution` has its own `timeout`. */
  timeout?: Duration | undefined;
}

/** One step of an execution, as `cerebelum describe` shows it. */
export interface StepStatus {
  readonly name: string;
  /** Pending, Scheduled, Running, Retrying, WaitingForApproval, WaitingForSignal, Succeeded, Failed, Skipped or Cancelled. */
  readonly phase: string;
  readonly attempts: number;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly lastError: string | null;
  readonly lastStacktrace: string | null;
  /** The running attempt's latest heartbeat progress. */
  readonly progress: unknown;
  /** Why a step that waits long for a worker may never get one. */
  readonly waitingHint: string | null;
  /** A running forEach step's items; `null` for any other step, and once it ended. */
  readonly items: { readonly total: number; readonly done: number; readonly failed: number; readonly inFlight: number } | null;
}

/** A step waiting for `approve` or `reject`. */
export interface PendingApproval {
  readonly step: string;
  readonly kind: string;
  readonly data: unknown;
  readonly timeoutAt: Date | null;
}

/** A loop cut at its `maxIterations`. */
export interface JumpLimit {
  readonly rule: string;
  readonly step: string;
  readonly target: string;
  readonly bound: number;
  readonly times: number;
}

/** A signal received and not yet taken by a signal step; `sender` is the authenticated identity that sent it. */
export interface QueuedSignal {
  readonly name: string;
  readonly data: unknown;
  readonly sender: string;
  readonly receivedAt: Date | null;
}

/** A signal step waiting now for the signal `name`; `timeoutAt` is `null` without a timeout. */
export interface SignalWait {
  readonly step: string;
  readonly name: string;
  readonly timeoutAt: Date | null;
}

/** An execution the step `step` started as a child; `phase` is Running, Succeeded, Failed, Cancelled or Abandoned as the parent last heard. */
export interface ChildExecution {
  readonly step: string;
  readonly id: string;
  readonly workflow: string;
  readonly phase: string;
}

/** One run of a workflow: JSON parsed (`null` when empty), times as `Date` (`null` when unset). */
export interface Execution {
  readonly id: string;
  readonly workflow: string;
  /**
   * Pending, Running, Sleeping, WaitingForApproval, WaitingForSignal, Paused, Queued, Succeeded, Failed,
   * Cancelled or ContinuedAsNew.
   */
  readonly phase: string;
  /** True in the phases of {@link TERMINAL_PHASES}. */
  readonly isTerminal: boolean;
  readonly currentSteps: readonly string[];
  readonly input: unknown;
  readonly output: unknown;
  readonly error: string | null;
  readonly createdAt: Date | null;
  readonly updatedAt: Date | null;
  readonly wakeAt: Date | null;
  /** When the workflow's `timeout` fails the execution; `null` without one, or once it ended. */
  readonly deadline: Date | null;
  readonly eventCount: number;
  readonly steps: readonly StepStatus[];
  readonly pendingApprovals: readonly PendingApproval[];
  readonly jumpLimits: readonly JumpLimit[];
  /** The workflow variables now; `null` when the workflow declares none. */
  readonly vars: unknown;
  /** While compensation and finally steps run: how it will end; `null` otherwise. */
  readonly ending: string | null;
  /** Signals received and not yet taken by a signal step, oldest first (the order steps take them). */
  readonly queuedSignals: readonly QueuedSignal[];
  /** The signal steps waiting now. */
  readonly signalWaits: readonly SignalWait[];
  /** The execution that started this one as a child, and its step; `null` for a top-level execution. */
  readonly parentId: string | null;
  readonly parentStep: string | null;
  /** The child executions this one started, oldest first. */
  readonly children: readonly ChildExecution[];
  /** The run this one continued from; `null` for a chain's first run. */
  readonly continuedFrom: string | null;
  /** The run this one continued as (phase ContinuedAsNew); `null` otherwise. */
  readonly continuedAs: string | null;
  /** The first run of the continue-as-new chain (this run's own id when it is the first). */
  readonly firstRunId: string;
  /** This run's number in its chain, 1 for the first. */
  readonly run: number;
  /** The pauses holding it (phase Paused or Queued), by source: "user", "workflow", "concurrency", "Execution". */
  readonly pauses: readonly ExecutionPause[];
  /** A reset run: the execution it was reset from; `null` otherwise. */
  readonly resetFrom: string | null;
  /**
   * The labels it was started with (`startExecution`'s `labels`); a continue-as-new run has its
   * chain's, a child execution none. Empty from an engine before labels.
   */
  readonly labels: Readonly<Record<string, string>>;
}

/** Why an execution is held, who held it (the authenticated caller, "" without a token) and when. */
export interface ExecutionPause {
  readonly source: string;
  readonly reason: string;
  readonly by: string;
  readonly at: Date | null;
}

/** An error answered by the engine: `code` is the gRPC status in CamelCase (`"NotFound"`), `message` the server's. */
export class CerebelumError extends Error {
  readonly code: string;
  readonly grpcCode: number;

  constructor(code: number, message: string) {
    super(message);
    this.name = "CerebelumError";
    this.grpcCode = code;
    this.code = codeName(code);
  }
}

/** `waitExecution` gave up: the execution (`execution`, as last seen) had not ended within its timeout. */
export class WaitTimeoutError extends Error {
  readonly execution: Execution;

  constructor(execution: Execution, timeoutMs: number) {
    super(`execution '${execution.id}' is still ${execution.phase} after ${timeoutMs} ms`);
    this.name = "WaitTimeoutError";
    this.execution = execution;
  }
}

export interface SignalWithStartOptions {
  workflow: string;
  /** Required: the execution to signal, started under this id unless it exists. */
  executionId: string;
  /** The input when it is started here. */
  input?: unknown;
  /** The signal's name. */
  signal: string;
  /** The signal's payload (any JSON value; default `null`). */
  data?: unknown;
  /** A signal sent again with the same request id is delivered once. */
  requestId?: string | undefined;
  /** The labels of the execution when it is started here (as `startExecution`'s). */
  labels?: Record<string, string> | undefined;
}

/** What {@link Client.listExecutionsPage} and {@link Client.listExecutions} ask for; every filter given must hold. */
export interface ListExecutionsOptions {
  /** Executions of this workflow. */
  workflow?: string | undefined;
  /** Executions in any of these phases. */
  phases?: readonly string[] | undefined;
  /** Executions with every one of these labels (key and value). */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Executions created at or after this time (inclusive). */
  createdAfter?: Date | undefined;
  /** Executions created before this time (exclusive). */
  createdBefore?: Date | undefined;
  /** Executions whose id contains this text (ASCII case ignored; `%` and `_` are literal), at most 128 characters. */
  idContains?: string | undefined;
  /** A page's size: default 100, at most 1000 (the engine answers at most 1000). */
  limit?: number | undefined;
  /** The `nextPageToken` of the previous page, with the same filters; absent for the first page. */
  pageToken?: string | null | undefined;
}

/** One page of executions, newest first, and the token of the next page (`null` when this is the last). */
export interface ExecutionPage {
  readonly executions: readonly Execution[];
  readonly nextPageToken: string | null;
}

/**
 * A client of the engine's `WorkflowService`.
 *
 * ```ts
 * const client = new Client(); // $CEREBELUM_ADDRESS, token and TLS as for the Worker
 * const execution = await client.startExecution("greet", { lang: "en" }, { executionId: "greet-1" });
 * await client.signal(execution.id, "name", "Ann");
 * const done = await client.waitExecution(execution.id, { timeout: "5m" });
 * client.close();
 * ```
 *
 * Every call rejects with a {@link CerebelumError} when the engine refuses it.
 */
export class Client {
  readonly address: string;
  readonly timeoutMs: number;
  readonly #client: WorkflowServiceClient;
  readonly #tokens: TokenSource | undefined;

  constructor(options: ClientOptions = {}) {
    this.address = resolveAddress(options.address);
    this.timeoutMs = durationMs(options.timeout ?? "30s");
    this.#tokens = resolveTokenSource(options.token, options.tokenFile);
    const tls = resolveTls(options.tls);
    this.#client = new WorkflowServiceClient(this.address, channelCredentials(tls), channelOptions(tls, this.address));
  }

  /**
   * Start an execution; the same `executionId`, workflow and input again returns the first one.
   * `labels`: what listings filter it by (Kubernetes label syntax, at most 32).
   */
  async startExecution(
    workflow: string,
    input?: unknown,
    options: { executionId?: string | undefined; labels?: Record<string, string> | undefined } = {},
  ): Promise<Execution> {
    const request = { workflow, inputJson: payload(input), executionId: options.executionId ?? "", labels: options.labels ?? {} };
    return executionFromProto(await this.#call(this.#client.startExecution, request));
  }

  /**
   * The execution `id`; with `latestRun`, the latest run of the continue-as-new chain `id`
   * belongs to (any run's id finds it), so a caller that kept the first id sees where it is now.
   */
  async getExecution(id: string, options: { latestRun?: boolean | undefined } = {}): Promise<Execution> {
    return executionFromProto(await this.#call(this.#client.getExecution, { id, latestRun: options.latestRun ?? false }));
  }

  /**
   * One page of executions, newest first (by creation time, then id), and the token of the next
   * one; every filter given must hold. Pass `nextPageToken` back as `pageToken`, with the same
   * filters, for the next page: pages never skip or repeat an execution, even while new ones
   * start. {@link listExecutions} follows the pages for you.
   *
   * ```ts
   * const failed = { workflow: "orders", phases: ["Failed"], limit: 20 };
   * const first = await client.listExecutionsPage(failed);
   * if (first.nextPageToken !== null) {
   *   const second = await client.listExecutionsPage({ ...failed, pageToken: first.nextPageToken });
   * }
   * ```
   *
   * Rejects with a `TypeError`, before sending anything, when `createdAfter` or `createdBefore`
   * is an invalid `Date` or `limit` is not a whole number from 0 (0 is the engine's default, 100).
   */
  async listExecutionsPage(options: ListExecutionsOptions = {}): Promise<ExecutionPage> {
    const reply = await this.#call(this.#client.listExecutions, listRequest(options));
    return { executions: reply.executions.map(executionFromProto), nextPageToken: reply.nextPageToken || null };
  }

  /**
   * Every execution the filters match, newest first, fetched a page (`limit`, default 100) at a
   * time as the loop asks for them: {@link listExecutionsPage} following `nextPageToken` from
   * `pageToken` (the first page without one) to the last page. Stopping the loop early
   * (`break`) fetches no more pages.
   *
   * ```ts
   * for await (const execution of client.listExecutions({ labels: { customer: "acme" } })) {
   *   console.log(execution.id, execution.phase);
   * }
   * ```
   */
  async *listExecutions(options: ListExecutionsOptions = {}): AsyncGenerator<Execution, void, undefined> {
    let pageToken = options.pageToken ?? null;
    do {
      const page = await this.listExecutionsPage({ ...options, pageToken });
      yield* page.executions;
      pageToken = page.nextPageToken;
    } while (pageToken !== null);
  }

  /**
   * Resolves with the execution once it is terminal; rejects with {@link WaitTimeoutError} after
   * `timeout` (default: waits as long as it takes). The engine holds each request up to 30 s and
   * answers at once when the execution ends, so this is no polling loop. A run that continued as
   * new is terminal (`continuedAs` names the next); with `followRuns` the wait goes on to the end
   * of the whole chain and resolves with its last run.
   */
  async waitExecution(
    id: string,
    options: { timeout?: Duration | undefined; followRuns?: boolean | undefined } = {},
  ): Promise<Execution> {
    const followRuns = options.followRuns ?? false;
    const timeoutMs = options.timeout === undefined ? undefined : durationMs(options.timeout);
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      const waitMs = deadline === undefined ? MAX_WAIT_MS : Math.min(MAX_WAIT_MS, Math.max(0, deadline - Date.now()));
      const info = await this.#call(this.#client.waitExecution, { id, waitMs, followRuns }, waitMs + WAIT_MARGIN_MS);
      const execution = executionFromProto(info);
      // Following runs, a run that continued as new is not the end: its next run may not exist yet.
      if (execution.isTerminal && !(followRuns && execution.phase === "ContinuedAsNew")) {
        return execution;
      }
      if (deadline !== undefined && Date.now() >= deadline) {
        throw new WaitTimeoutError(execution, timeoutMs ?? 0);
      }
    }
  }

  /**
   * Send the signal `name` with `data` (any JSON value) to a running execution. The engine queues
   * it, in order, until a signal step waiting for `name` takes it, so it is not lost when no step
   * waits yet. Give `requestId` when the call may be retried: the same id again delivers it once.
   */
  async signal(id: string, name: string, data?: unknown, options: { requestId?: string | undefined } = {}): Promise<Execution> {
    const request = { id, name, dataJson: payload(data), requestId: options.requestId ?? "" };
    return executionFromProto(await this.#call(this.#client.signalExecution, request));
  }

  /**
   * Signal `executionId`, starting it first (`workflow` with `input`) unless it exists: one call
   * where a start and a signal would race another sender; when it is started here, the start and
   * the signal are one transaction.
   */
  async signalWithStart(options: SignalWithStartOptions): Promise<Execution> {
    const request = {
      workflow: options.workflow,
      executionId: options.executionId,
      inputJson: payload(options.input),
      name: options.signal,
      dataJson: payload(options.data),
      requestId: options.requestId ?? "",
      labels: options.labels ?? {},
    };
    return executionFromProto(await this.#call(this.#client.signalWithStart, request));
  }

  /** Approve a step that waits for approval; `payload` is given to later steps. */
  async approve(id: string, step: string, options: { approver: string; payload?: unknown }): Promise<Execution> {
    const request = { id, step, approver: options.approver, payloadJson: payload(options.payload) };
    return executionFromProto(await this.#call(this.#client.approve, request));
  }

  /**
   * Hold an execution: it starts nothing new (steps, retries, timers, children) until {@link resume};
   * steps already running finish. Pausing a paused execution changes nothing.
   */
  async pause(id: string, options: { reason?: string | undefined } = {}): Promise<Execution> {
    return executionFromProto(await this.#call(this.#client.pauseExecution, { id, reason: options.reason ?? "" }));
  }

  /** Lift {@link pause}'s hold: the steps it held start in the order they were reached. */
  async resume(id: string): Promise<Execution> {
    return executionFromProto(await this.#call(this.#client.resumeExecution, { id }));
  }

  /** Cancel an execution; its running steps are told at their next heartbeat. */
  async cancel(id: string, options: { reason?: string | undefined } = {}): Promise<Execution> {
    return executionFromProto(await this.#call(this.#client.cancelExecution, { id, reason: options.reason ?? "" }));
  }

  close(): void {
    this.#client.close();
  }

  async #call<Req, Res>(method: Unary<Req, Res>, request: Req, timeoutMs = this.timeoutMs): Promise<Res> {
    try {
      return await callUnary(this.#client, method, request, this.#tokens, { timeoutMs });
    } catch (error) {
      throw isServiceError(error) ? fromServiceError(error) : error;
    }
  }
}

/** JSON text of a payload; `undefined` and `null` are "" (the engine reads "" as null). */
function payload(value: unknown): string {
  return value === undefined || value === null ? "" : dumps(value);
}

function codeName(code: number): string {
  const name = status[code];
  if (typeof name !== "string") {
    return `Code${code}`;
  }
  return name
    .toLowerCase()
    .split("_")
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
}

function fromServiceError(error: ServiceError): CerebelumError {
  return new CerebelumError(error.code, error.details || error.message);
}

/** The `ListExecutionsRequest` of `options`, checked before anything is sent. */
function listRequest(options: ListExecutionsOptions): ListExecutionsRequest {
  const limit = options.limit ?? 100;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new TypeError(`limit must be a whole number from 0, not ${String(limit)}`);
  }
  const phases = [...new Set(options.phases ?? [])];
  return {
    workflow: options.workflow ?? "",
    // One phase goes in the field engines before `phases` read too, so they still filter by it.
    phase: phases.length === 1 ? (phases[0] ?? "") : "",
    phases: phases.length > 1 ? phases : [],
    limit,
    labels: { ...options.labels },
    createdAfter: validTime("createdAfter", options.createdAfter),
    createdBefore: validTime("createdBefore", options.createdBefore),
    idContains: options.idContains ?? "",
    pageToken: options.pageToken ?? "",
  };
}

/** `at` when it is a valid `Date` (sent as a Timestamp), else a `TypeError`. */
function validTime(name: string, at: Date | undefined): Date | undefined {
  if (at !== undefined && !(at instanceof Date && Number.isFinite(at.getTime()))) {
    throw new TypeError(`${name} must be a valid Date, not ${String(at)}`);
  }
  return at;
}

/** The Timestamp, else the epoch milliseconds an engine before 0.2 sends (0 for never). */
function instant(stamp: Date | undefined, ms = 0): Date | null {
  return stamp ?? (ms > 0 ? new Date(ms) : null);
}

function stepFromProto(step: StepInfo): StepStatus {
  return {
    name: step.name,
    phase: step.phase,
    attempts: step.attempts,
    startedAt: instant(step.startedAt, step.startedAtMs),
    finishedAt: instant(step.finishedAt, step.finishedAtMs),
    lastError: step.lastError || null,
    lastStacktrace: step.lastStacktrace || null,
    progress: loads(step.progressJson),
    waitingHint: step.waitingHint || null,
    items: step.items === undefined ? null : { ...step.items },
  };
}

function queuedSignalFromProto(signal: QueuedSignalInfo): QueuedSignal {
  return { name: signal.name, data: loads(signal.dataJson), sender: signal.sender, receivedAt: instant(signal.receivedAt) };
}

function signalWaitFromProto(wait: SignalWaitInfo): SignalWait {
  return { step: wait.step, name: wait.name, timeoutAt: instant(wait.timeoutAt) };
}

function childFromProto(child: ChildExecutionInfo): ChildExecution {
  return { step: child.step, id: child.id, workflow: child.workflow, phase: child.phase };
}

/** @internal The client's view of an `ExecutionInfo`. */
export function executionFromProto(info: ExecutionInfo): Execution {
  return {
    id: info.id,
    workflow: info.workflow,
    phase: info.phase,
    isTerminal: TERMINAL_PHASES.has(info.phase),
    currentSteps: [...info.currentSteps],
    input: loads(info.inputJson),
    output: loads(info.outputJson),
    error: info.error || null,
    createdAt: instant(info.createdAt, info.createdAtMs),
    updatedAt: instant(info.updatedAt, info.updatedAtMs),
    wakeAt: instant(info.wakeAt, info.wakeAtMs),
    deadline: instant(info.deadline),
    eventCount: info.eventCount,
    steps: info.steps.map(stepFromProto),
    pendingApprovals: info.pendingApprovals.map((approval) => ({
      step: approval.step,
      kind: approval.kind,
      data: loads(approval.dataJson),
      timeoutAt: instant(approval.timeoutAt, approval.timeoutAtMs),
    })),
    jumpLimits: info.jumpLimits.map((cut) => ({ ...cut })),
    vars: loads(info.varsJson),
    ending: info.ending || null,
    queuedSignals: info.queuedSignals.map(queuedSignalFromProto),
    signalWaits: info.signalWaits.map(signalWaitFromProto),
    parentId: info.parentId || null,
    parentStep: info.parentStep || null,
    children: info.children.map(childFromProto),
    continuedFrom: info.continuedFrom || null,
    continuedAs: info.continuedAs || null,
    // An engine before signals sends neither: no chain then, so every run is its own first.
    firstRunId: info.firstRunId || info.id,
    run: info.run || 1,
    pauses: info.pauses.map((pause) => ({
      source: pause.source,
      reason: pause.reason,
      by: pause.by,
      at: instant(pause.at),
    })),
    resetFrom: info.resetFrom || null,
    labels: { ...info.labels },
  };
}
