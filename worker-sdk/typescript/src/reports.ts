/** Turn what a step returned or threw into the `CompleteTaskRequest` that reports it. */
import { ApplicationError } from "./errors.js";
import type { CompleteTaskRequest } from "./gen/cerebelum/v1/worker.js";
import { dumps } from "./jsoncodec.js";
import { OUTCOME as OUTCOME_TAG, outcomeOf } from "./outcomes.js";

type Outcome = NonNullable<CompleteTaskRequest["outcome"]>;

function report(taskToken: string, workerId: string, outcome: Outcome): CompleteTaskRequest {
  return { taskToken, workerId, outcome, workflowContinuation: undefined, pollNext: undefined };
}

/** Report a returned value: an outcome (`RetryAfter`, `Sleep`, `ApprovalRequest`) or a success. */
export function valueReport(token: string, workerId: string, value: unknown): CompleteTaskRequest {
  try {
    const outcome = outcomeOf(value);
    switch (outcome?.[OUTCOME_TAG]) {
      case undefined:
        return report(token, workerId, { $case: "success", value: { outputJson: dumps(value) } });
      case "retryAfter":
        return report(token, workerId, { $case: "retryAfter", value: { delayMs: outcome.delayMs } });
      case "sleep":
        return report(token, workerId, {
          $case: "sleep",
          value: { durationMs: outcome.durationMs, outputJson: dumps(outcome.output) },
        });
      case "approval":
        return report(token, workerId, {
          $case: "approval",
          value: { kind: outcome.kind, timeoutMs: outcome.timeoutMs, dataJson: dumps(outcome.data) },
        });
    }
  } catch (error) {
    const message = `the step's result cannot be encoded as JSON: ${error instanceof Error ? error.message : String(error)}`;
    return failure(token, workerId, "InvalidOutput", message, true);
  }
}

/** Report a thrown error: typed by its name and retryable, unless it is an `ApplicationError`. */
export function failureReport(token: string, workerId: string, error: unknown): CompleteTaskRequest {
  if (error instanceof ApplicationError) {
    return failure(token, workerId, error.type, error.message, error.nonRetryable, error.stack ?? "");
  }
  if (error instanceof Error) {
    return failure(token, workerId, errorType(error), error.message, false, error.stack ?? "");
  }
  return failure(token, workerId, "Error", String(error), false);
}

export function cancelledReport(token: string, workerId: string, message: string): CompleteTaskRequest {
  return report(token, workerId, { $case: "cancelled", value: { message } });
}

/** The non-retryable failure that replaces an outcome the server refused (too large, invalid). */
export function invalidPayloadReport(request: CompleteTaskRequest, kind: string, message: string): CompleteTaskRequest {
  return failure(request.taskToken, request.workerId, kind, message, true);
}

export function failure(
  token: string,
  workerId: string,
  type: string,
  message: string,
  nonRetryable: boolean,
  stacktrace = "",
): CompleteTaskRequest {
  return report(token, workerId, { $case: "failure", value: { type, message, nonRetryable, stacktrace } });
}

/**
 * The failure type of an error: its `name` when it was given one (`TypeError`, or a class that
 * sets `this.name`), else its class name (`class QuotaExceeded extends Error {}`).
 */
export function errorType(error: Error): string {
  if (error.name && error.name !== "Error") {
    return error.name;
  }
  const constructorName = (error.constructor as { name?: unknown } | undefined)?.name;
  return typeof constructorName === "string" && constructorName !== "" ? constructorName : "Error";
}
