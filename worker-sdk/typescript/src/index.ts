/**
 * `@cerebelum/worker`: run the steps of Cerebelum workflows in TypeScript, and start, signal and
 * wait for their executions with `Client`.
 *
 * ```ts
 * import { Worker } from "@cerebelum/worker";
 *
 * const worker = new Worker({ taskQueue: "orders" });
 * worker.step("charge", async (ctx, input: Order): Promise<Receipt> => ({ order: input.id }));
 * await worker.run();
 * ```
 */
export {
  type ChildExecution,
  CerebelumError,
  Client,
  type ClientOptions,
  type Execution,
  type ExecutionPage,
  type ExecutionPause,
  type JumpLimit,
  type ListExecutionsOptions,
  type PendingApproval,
  type QueuedSignal,
  type SignalWait,
  type SignalWithStartOptions,
  type StepStatus,
  TERMINAL_PHASES,
  WaitTimeoutError,
} from "./client.js";
export { ADDRESS_ENV, DEFAULT_ADDRESS } from "./config.js";
export {
  DEFAULT_TOKEN_FILE,
  TLS_CA_ENV,
  TLS_ENV,
  TLS_SERVER_NAME_ENV,
  TOKEN_ENV,
  TOKEN_FILE_ENV,
  type TlsOptions,
} from "./connection.js";
export {
  type ExecutionOutcome,
  type StepArgs,
  StepContext,
  type StepResults,
  type WorkflowVars,
} from "./context.js";
export { type Duration, durationMs, parseDuration } from "./durations.js";
export {
  ApplicationError,
  type ApplicationErrorOptions,
  CancelledError,
  type CancelReason,
  NonRetryableError,
} from "./errors.js";
export { consoleLogger, type Logger, type LogLevel } from "./log.js";
export {
  type ApprovalOptions,
  ApprovalRequest,
  type Outcome,
  RetryAfter,
  requestApproval,
  retryAfter,
  Sleep,
  sleep,
} from "./outcomes.js";
export type { StepHandler, StepOptions, StepReturn } from "./steps.js";
export { type RunOptions, Worker, type WorkerOptions } from "./worker.js";
