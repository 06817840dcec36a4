/**
 * A worker's polls and reports to one engine on one `Work` stream instead of a gRPC call each.
 *
 * A unary call costs both ends more than the message it carries (a new HTTP/2 stream, its
 * metadata and status); a message on an open stream costs a fraction of it. Each `PollTask` or
 * `CompleteTasks` becomes a `WorkCall` with an id; the engine runs it as that RPC and answers with
 * a `WorkAnswer` of the same id. Callers get what the unary call would have given: its reply, or
 * a `ServiceError` with its code.
 *
 * The stream opens on the first call and again after it ends (the calls open on it then fail with
 * UNAVAILABLE, and their callers retry as after a lost connection). A call's timeout travels with
 * it; a call given up (timed out, or its signal aborted) is cancelled on the engine too, so a
 * poll nobody waits for leases no task. A renewed token opens a new stream; the old one ends once
 * its calls are answered. An engine that predates `Work` answers UNIMPLEMENTED: the unary calls
 * are made from then on.
 */
import { type ClientDuplexStream, Metadata, type ServiceError, status } from "@grpc/grpc-js";

import type {
  CompleteTasksRequest,
  CompleteTasksResponse,
  PollTaskRequest,
  PollTaskResponse,
  WorkAnswer,
  WorkCall,
} from "./gen/cerebelum/v1/worker.js";

/** The engine's own timeout for a call is a little later than the caller's, which then decides. */
const ENGINE_MARGIN_MS = 1_000;

/** @internal What the stream needs of a call's options (as `CallOptions`). */
export interface StreamCallOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

type Kind = "pollTask" | "completeTasks";
type Reply = PollTaskResponse | CompleteTasksResponse;

interface Waiting {
  kind: Kind;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

interface OpenStream {
  call: ClientDuplexStream<WorkCall, WorkAnswer>;
  key: string;
  waiting: Map<number, Waiting>;
  /** Task queues polled (with their steps) on this stream: its later reports refer to those steps. */
  polled: Set<string>;
}

/**
 * The reports as sent on a stream that polled `polled`: each `pollNext` of such a queue names no steps
 * and sets `streamSteps`, standing for the steps of the stream's poll (the caller's request is left as it was).
 */
function referToPolledSteps(request: CompleteTasksRequest, polled: Set<string>): CompleteTasksRequest {
  return {
    ...request,
    reports: request.reports.map((report) => {
      const next = report.pollNext;
      if (next === undefined || !polled.has(next.taskQueue) || next.steps.length === 0) {
        return report;
      }
      return { ...report, pollNext: { ...next, steps: [], streamSteps: true } };
    }),
  };
}

/** @internal An error as grpc-js gives a failed call's. */
export function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

class Unsupported extends Error {}

/** @internal The unary calls the stream stands in for, made when the engine has no `Work`. */
export interface UnaryCalls {
  pollTask: (request: PollTaskRequest, options: StreamCallOptions) => Promise<PollTaskResponse>;
  completeTasks: (request: CompleteTasksRequest, options: StreamCallOptions) => Promise<CompleteTasksResponse>;
}

/** @internal `pollTask` and `completeTasks` with the unary calls' contract, carried on one stream. */
export class WorkStream {
  /** False once the engine said it has no `Work`. */
  streamed = true;
  readonly #open: (metadata: Metadata) => ClientDuplexStream<WorkCall, WorkAnswer>;
  readonly #metadata: () => Metadata;
  readonly #unary: UnaryCalls;
  #current: OpenStream | undefined;
  readonly #streams = new Set<OpenStream>();
  #nextId = 1;

  constructor(
    open: (metadata: Metadata) => ClientDuplexStream<WorkCall, WorkAnswer>,
    unary: UnaryCalls,
    metadata: () => Metadata = () => new Metadata(),
  ) {
    this.#open = open;
    this.#unary = unary;
    this.#metadata = metadata;
  }

  /** Streams open now: the current one, and old ones still answering calls. */
  get opened(): number {
    return this.#streams.size;
  }

  async pollTask(request: PollTaskRequest, options: StreamCallOptions): Promise<PollTaskResponse> {
    if (this.streamed) {
      try {
        return (await this.#streamed("pollTask", request, options)) as PollTaskResponse;
      } catch (error) {
        if (!(error instanceof Unsupported)) {
          throw error;
        }
      }
    }
    return this.#unary.pollTask(request, options);
  }

  async completeTasks(request: CompleteTasksRequest, options: StreamCallOptions): Promise<CompleteTasksResponse> {
    if (this.streamed) {
      try {
        return (await this.#streamed("completeTasks", request, options)) as CompleteTasksResponse;
      } catch (error) {
        if (!(error instanceof Unsupported)) {
          throw error;
        }
      }
    }
    return this.#unary.completeTasks(request, options);
  }

  /** End every stream; the calls open on them fail with UNAVAILABLE. */
  close(): void {
    this.#current = undefined;
    for (const stream of [...this.#streams]) {
      stream.call.cancel();
    }
  }

  #streamed(kind: Kind, request: PollTaskRequest | CompleteTasksRequest, options: StreamCallOptions): Promise<Reply> {
    const { signal } = options;
    if (signal?.aborted) {
      return Promise.reject(signal.reason);
    }
    let stream: OpenStream;
    try {
      stream = this.#stream();
    } catch (error) {
      return Promise.reject(error);
    }
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const giveUp = (error: unknown): void => {
        cleanup();
        if (stream.waiting.delete(id) && this.#streams.has(stream)) {
          stream.call.write({ id, timeoutMs: 0, call: { $case: "cancel", value: true } });
        }
        reject(error);
      };
      const timer = setTimeout(
        () => giveUp(serviceError(status.DEADLINE_EXCEEDED, "no answer on the work stream in time")),
        options.timeoutMs,
      );
      const onAbort = (): void => giveUp(signal?.reason);
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      stream.waiting.set(id, {
        kind,
        resolve: (reply) => {
          cleanup();
          resolve(reply);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      // Writes go out in the order made: a report written after a poll of its queue may refer to its steps.
      const call: WorkCall["call"] =
        kind === "pollTask"
          ? { $case: "pollTask", value: request as PollTaskRequest }
          : { $case: "completeTasks", value: referToPolledSteps(request as CompleteTasksRequest, stream.polled) };
      stream.call.write({ id, timeoutMs: options.timeoutMs + ENGINE_MARGIN_MS, call });
      if (kind === "pollTask" && (request as PollTaskRequest).steps.length > 0) {
        stream.polled.add((request as PollTaskRequest).taskQueue);
      }
    });
  }

  #stream(): OpenStream {
    const metadata = this.#metadata();
    const key = JSON.stringify(metadata.toJSON());
    const current = this.#current;
    if (current !== undefined && current.key === key) {
      return current;
    }
    if (current !== undefined) {
      current.call.end(); // a new token: the old stream answers what it holds, then ends
    }
    const stream: OpenStream = { call: this.#open(metadata), key, waiting: new Map(), polled: new Set() };
    this.#current = stream;
    this.#streams.add(stream);
    stream.call.on("data", (answer: WorkAnswer) => this.#answered(stream, answer));
    stream.call.on("error", (error: ServiceError) => this.#ended(stream, error));
    stream.call.on("end", () => this.#ended(stream, undefined));
    return stream;
  }

  #answered(stream: OpenStream, answer: WorkAnswer): void {
    const waiting = stream.waiting.get(answer.id);
    if (waiting === undefined) {
      return; // given up meanwhile
    }
    stream.waiting.delete(answer.id);
    const result = answer.answer;
    if (result?.$case === "error") {
      waiting.reject(serviceError(result.value.code as status, result.value.message));
    } else if (result !== undefined && result.$case === waiting.kind) {
      waiting.resolve(result.value);
    } else {
      waiting.reject(serviceError(status.INTERNAL, `the engine answered a ${waiting.kind} call with ${result?.$case ?? "nothing"}`));
    }
  }

  #ended(stream: OpenStream, error: ServiceError | undefined): void {
    if (!this.#streams.delete(stream)) {
      return;
    }
    if (this.#current === stream) {
      this.#current = undefined;
    }
    let reason: Error;
    if (error?.code === status.UNIMPLEMENTED) {
      this.streamed = false;
      reason = new Unsupported("the engine has no Work stream");
    } else {
      const why = error === undefined || error.code === status.CANCELLED ? "the work stream ended" : error.details;
      reason = serviceError(error === undefined || error.code === status.CANCELLED ? status.UNAVAILABLE : error.code, why);
    }
    for (const waiting of stream.waiting.values()) {
      waiting.reject(reason);
    }
    stream.waiting.clear();
  }
}
