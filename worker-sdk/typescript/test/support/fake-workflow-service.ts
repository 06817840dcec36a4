/** An in-process fake of the engine's WorkflowService for the client's unit tests (not the real engine). */
import { type handleUnaryCall, type Metadata, Server, ServerCredentials, type ServiceError, status } from "@grpc/grpc-js";

import {
  ExecutionInfo,
  type PauseExecutionRequest,
  type SignalExecutionRequest,
  WorkflowServiceService,
  type WorkflowServiceServer,
} from "@cerebelum/worker/proto/workflow";

function fail(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as unknown as Metadata });
}

function flatten(metadata: Metadata): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata.getMap()).map(([key, value]) => [key, String(value)]));
}


/** Answers from `executions` and canned replies, and records every request with its metadata. */
export class FakeWorkflowService {
  readonly requests: Array<{ method: string; request: unknown; metadata: Record<string, string> }> = [];
  readonly executions = new Map<string, ExecutionInfo>();
  /** Answered to the next WaitExecution calls, in order; then the execution, after holding `waitMs`. */
  waitReplies: ExecutionInfo[] = [];
  address = "";
  readonly #server = new Server();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor() {
    const unimplemented = <Req, Res>(): handleUnaryCall<Req, Res> => (_call, callback) =>
      callback(fail(status.UNIMPLEMENTED, "not in the fake"));
    /** A call on an existing execution: recorded, NOT_FOUND unless it exists, then `change` applied. */
    const execution =
      <Req extends { id: string }>(method: string, change?: (info: ExecutionInfo, request: Req) => void): handleUnaryCall<Req, ExecutionInfo> =>
      (call, callback) => {
        this.requests.push({ method, request: call.request, metadata: flatten(call.metadata) });
        const info = this.executions.get(call.request.id);
        if (info === undefined) {
          callback(fail(status.NOT_FOUND, `execution '${call.request.id}' not found`));
          return;
        }
        change?.(info, call.request);
        callback(null, info);
      };
    const implementation: WorkflowServiceServer = {
      applyWorkflow: unimplemented(),
      getWorkflow: unimplemented(),
      listWorkflows: unimplemented(),
      listExecutions: (call, callback) => {
        this.requests.push({ method: "listExecutions", request: call.request, metadata: flatten(call.metadata) });
        // Not the engine's order or filters: `executions` in insertion order, those of the workflow
        // and labels asked for, `limit` a page, and the offset of the next page as its token.
        const { workflow, labels, limit, pageToken } = call.request;
        const matching = [...this.executions.values()].filter(
          (info) =>
            (workflow === "" || info.workflow === workflow) &&
            Object.entries(labels).every(([key, value]) => info.labels[key] === value),
        );
        const from = pageToken === "" ? 0 : Number(pageToken);
        const to = from + (limit || 100);
        callback(null, { executions: matching.slice(from, to), nextPageToken: to < matching.length ? String(to) : "" });
      },
      getHistory: unimplemented(),
      reject: unimplemented(),
      listDeadLetters: unimplemented(),
      redriveDeadLetter: unimplemented(),
      bulkExecutions: unimplemented(),
      resetExecution: unimplemented(),
      pauseWorkflow: unimplemented(),
      resumeWorkflow: unimplemented(),
      pauseExecution: execution<PauseExecutionRequest>("pauseExecution", (info, request) => {
        info.phase = "Paused";
        info.pauses.push({ source: "user", reason: request.reason, by: "", at: new Date(1_700_000_003_000) });
      }),
      resumeExecution: execution("resumeExecution", (info) => {
        info.phase = "Running";
        info.pauses.splice(0);
      }),
      startExecution: (call, callback) => {
        this.requests.push({ method: "startExecution", request: call.request, metadata: flatten(call.metadata) });
        const info = ExecutionInfo.fromPartial({
          id: call.request.executionId || "generated-1",
          workflow: call.request.workflow,
          phase: "Pending",
          inputJson: call.request.inputJson,
          createdAt: new Date(1_700_000_000_000),
          labels: call.request.labels,
        });
        this.executions.set(info.id, info);
        callback(null, info);
      },
      getExecution: execution("getExecution"),
      approve: execution("approve"),
      cancelExecution: execution("cancelExecution", (info) => {
        info.phase = "Cancelled";
      }),
      signalExecution: execution<SignalExecutionRequest>("signalExecution", (info, request) => {
        const { name, dataJson } = request;
        info.queuedSignals.push({ name, dataJson, sender: "fake", receivedAt: new Date(1_700_000_002_000) });
      }),
      signalWithStart: (call, callback) => {
        this.requests.push({ method: "signalWithStart", request: call.request, metadata: flatten(call.metadata) });
        const { executionId, workflow, inputJson, name, dataJson } = call.request;
        const info =
          this.executions.get(executionId) ?? ExecutionInfo.fromPartial({ id: executionId, workflow, phase: "Pending", inputJson });
        this.executions.set(executionId, info);
        info.queuedSignals.push({ name, dataJson, sender: "fake", receivedAt: undefined });
        callback(null, info);
      },
      waitExecution: (call, callback) => {
        this.requests.push({ method: "waitExecution", request: call.request, metadata: flatten(call.metadata) });
        const next = this.waitReplies.shift();
        if (next !== undefined) {
          callback(null, next);
          return;
        }
        const info = this.executions.get(call.request.id);
        if (info === undefined) {
          callback(fail(status.NOT_FOUND, `execution '${call.request.id}' not found`));
          return;
        }
        // As the engine: hold the request for its wait, then answer with the execution as it is.
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          callback(null, info);
        }, call.request.waitMs);
        this.#timers.add(timer);
      },
    };
    this.#server.addService(WorkflowServiceService, implementation);
  }

  /** The requests made to `method`, in order. */
  sent<T>(method: string): T[] {
    return this.requests.filter((r) => r.method === method).map((r) => r.request as T);
  }

  async start(): Promise<this> {
    const bound = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, actual) =>
        error ? reject(error) : resolve(actual),
      );
    });
    this.address = `127.0.0.1:${bound}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) {
      clearTimeout(timer);
    }
    this.#server.forceShutdown();
  }
}
