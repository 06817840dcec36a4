/**
 * The channel to the engine: TLS when asked, and a bearer token on every call.
 *
 * In a pod the token is the projected ServiceAccount token the Helm chart mounts; the kubelet
 * rotates it, so the file is read again whenever it changes rather than once at start.
 */
import { existsSync, readFileSync, statSync } from "node:fs";

import { type ChannelCredentials, type ClientUnaryCall, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";

import { CHANNEL_OPTIONS, isReplicaSet } from "./config.js";
import {
  type CompleteTaskRequest,
  type CompleteTaskResponse,
  type CompleteTasksRequest,
  type CompleteTasksResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type PollTaskRequest,
  type PollTaskResponse,
  WorkerServiceClient,
} from "./gen/cerebelum/v1/worker.js";
import { WorkStream } from "./workstream.js";

export const TOKEN_ENV = "CEREBELUM_TOKEN";
export const TOKEN_FILE_ENV = "CEREBELUM_TOKEN_FILE";
export const TLS_ENV = "CEREBELUM_TLS";
export const TLS_CA_ENV = "CEREBELUM_TLS_CA";
export const TLS_SERVER_NAME_ENV = "CEREBELUM_TLS_SERVER_NAME";
export const DEFAULT_TOKEN_FILE = "/var/run/secrets/cerebelum/token";

/** A bearer token: fixed, or read from a file and read again when the file changes. */
export class TokenSource {
  readonly path: string | undefined;
  #token: string | undefined;
  #seen: string | undefined;

  private constructor(token: string | undefined, path: string | undefined) {
    this.#token = token;
    this.path = path;
  }

  static fixed(token: string): TokenSource {
    return new TokenSource(token, undefined);
  }

  static file(path: string): TokenSource {
    return new TokenSource(undefined, path);
  }

  /** The current token; a file is read again when its modification time or size changed. */
  token(): string {
    if (this.path === undefined) {
      return this.#token ?? "";
    }
    try {
      const stat = statSync(this.path);
      const seen = `${stat.mtimeMs}/${stat.size}`;
      if (this.#seen !== seen || this.#token === undefined) {
        this.#token = readFileSync(this.path, "utf8").trim();
        this.#seen = seen;
      }
    } catch (error) {
      if (this.#token === undefined) {
        throw new Error(`cannot read the token file ${this.path}: ${(error as Error).message}`);
      }
    }
    return this.#token;
  }

  metadata(): Metadata {
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${this.token()}`);
    return metadata;
  }
}

/** `token`, `$CEREBELUM_TOKEN`, `tokenFile`, `$CEREBELUM_TOKEN_FILE`, then the chart's mount. */
export function resolveTokenSource(token?: string, tokenFile?: string): TokenSource | undefined {
  const fixed = token || process.env[TOKEN_ENV];
  if (fixed) {
    return TokenSource.fixed(fixed);
  }
  const path = tokenFile || process.env[TOKEN_FILE_ENV];
  if (path) {
    return TokenSource.file(path);
  }
  return existsSync(DEFAULT_TOKEN_FILE) ? TokenSource.file(DEFAULT_TOKEN_FILE) : undefined;
}

/** Verify the server against `caFile` (PEM; omitted: the system roots) as `serverName`. */
export interface TlsOptions {
  caFile?: string | undefined;
  serverName?: string | undefined;
  /** A client certificate and key (PEM) for mutual TLS. */
  clientCertFile?: string | undefined;
  clientKeyFile?: string | undefined;
}

/** `tls`; when omitted, TLS is on if `$CEREBELUM_TLS` is true or `$CEREBELUM_TLS_CA` is set. */
export function resolveTls(tls?: boolean | TlsOptions): TlsOptions | undefined {
  if (typeof tls === "object") {
    return tls;
  }
  const caFile = process.env[TLS_CA_ENV] || undefined;
  const on = tls ?? (caFile !== undefined || ["1", "true", "yes"].includes((process.env[TLS_ENV] ?? "").toLowerCase()));
  if (!on) {
    return undefined;
  }
  return { caFile, serverName: process.env[TLS_SERVER_NAME_ENV] || undefined };
}

/** @internal The credentials of a channel: plaintext, or TLS verifying the server (and a client certificate for mTLS). */
export function channelCredentials(tls: TlsOptions | undefined): ChannelCredentials {
  if (tls === undefined) {
    return credentials.createInsecure();
  }
  const read = (path: string | undefined): Buffer | null => (path ? readFileSync(path) : null);
  return credentials.createSsl(read(tls.caFile), read(tls.clientKeyFile), read(tls.clientCertFile));
}

/** True when `error` is a gRPC status error (rather than, say, a token file that cannot be read). */
export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number" && "details" in error;
}

/** `"UNAVAILABLE: connection refused"`, or the error's name and message. */
export function describeError(error: unknown): string {
  if (isServiceError(error)) {
    return `${status[error.code] ?? error.code}: ${error.details}`;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export interface CallOptions {
  timeoutMs: number;
  /** Aborting cancels the call, which then rejects with `CANCELLED`. */
  signal?: AbortSignal | undefined;
}

/** @internal A generated client's unary method, as grpc-js types it. */
export type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** @internal The options of a channel to `tls`'s server (its name overridden when `serverName` is set). */
export function channelOptions(tls: TlsOptions | undefined, address = ""): Record<string, number | string> {
  const options: Record<string, number | string> = { ...CHANNEL_OPTIONS };
  if (isReplicaSet(address)) {
    options["grpc.lb_policy_name"] = "round_robin";
  }
  const serverName = tls?.serverName;
  if (serverName) {
    options["grpc.ssl_target_name_override"] = serverName;
    options["grpc.default_authority"] = serverName;
  }
  return options;
}

/**
 * @internal One unary call of a generated `client` as a promise: the bearer token of `tokens`,
 * the deadline of `options`, cancelled when its signal aborts.
 */
export function callUnary<Req, Res>(
  client: object,
  method: Unary<Req, Res>,
  request: Req,
  tokens: TokenSource | undefined,
  options: CallOptions,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let metadata: Metadata;
    try {
      metadata = tokens?.metadata() ?? new Metadata();
    } catch (error) {
      reject(error);
      return;
    }
    const onAbort = (): void => call.cancel();
    const call = method.call(client, request, metadata, { deadline: Date.now() + options.timeoutMs }, (error, response) => {
      signal?.removeEventListener("abort", onAbort);
      if (error) {
        reject(error);
      } else {
        resolve(response);
      }
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The worker service's calls as promises, each with the bearer token and a deadline. */
export class WorkerConnection {
  readonly address: string;
  readonly #client: WorkerServiceClient;
  readonly #tokens: TokenSource | undefined;
  readonly #stream: WorkStream;

  constructor(address: string, options: { tls?: TlsOptions | undefined; tokens?: TokenSource | undefined } = {}) {
    this.address = address;
    this.#tokens = options.tokens;
    this.#client = new WorkerServiceClient(address, channelCredentials(options.tls), channelOptions(options.tls, address));
    this.#stream = new WorkStream(
      (metadata) => this.#client.work(metadata),
      {
        pollTask: (request, callOptions) => this.#unary(this.#client.pollTask, request, callOptions),
        completeTasks: (request, callOptions) => this.#unary(this.#client.completeTasks, request, callOptions),
      },
      () => this.#tokens?.metadata() ?? new Metadata(),
    );
  }

  /** Whether polls and reports go on the `Work` stream (false once the engine said it has none). */
  get streamed(): boolean {
    return this.#stream.streamed;
  }

  poll(request: PollTaskRequest, options: CallOptions): Promise<PollTaskResponse> {
    return this.#stream.pollTask(request, options);
  }

  heartbeat(request: HeartbeatRequest, options: CallOptions): Promise<HeartbeatResponse> {
    return this.#unary(this.#client.heartbeat, request, options);
  }

  complete(request: CompleteTaskRequest, options: CallOptions): Promise<CompleteTaskResponse> {
    return this.#unary(this.#client.completeTask, request, options);
  }

  /** Several reports in one call; an engine that predates it answers UNIMPLEMENTED. */
  completeTasks(request: CompleteTasksRequest, options: CallOptions): Promise<CompleteTasksResponse> {
    return this.#stream.completeTasks(request, options);
  }

  close(): void {
    this.#stream.close();
    this.#client.close();
  }

  #unary<Req, Res>(method: Unary<Req, Res>, request: Req, options: CallOptions): Promise<Res> {
    return callUnary(this.#client, method, request, this.#tokens, options);
  }
}
