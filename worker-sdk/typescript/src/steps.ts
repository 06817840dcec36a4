/** Step definitions: a name, a handler and how the workflow input is checked. */
import type { StepContext } from "./context.js";
import type { Outcome } from "./outcomes.js";

/** What a step may return: its output, or an outcome built with `retryAfter`, `sleep` or `requestApproval`. */
export type StepReturn<O> = O | Outcome;

/**
 * A step: called with its context and the workflow input; returns (or resolves to) its output,
 * which later steps read as `ctx.results[<this step's name>]`.
 */
export type StepHandler<I = unknown, O = unknown> = (
  ctx: StepContext,
  input: I,
) => StepReturn<O> | Promise<StepReturn<O>>;

export interface StepOptions<I> {
  /**
   * Checks and converts the workflow input before the step runs (a zod schema's `parse`, or any
   * function that throws on bad input). A throw fails the attempt with a non-retryable
   * `InvalidArgument` failure naming the step. Without it the input is passed as parsed JSON.
   */
  parseInput?: ((value: unknown) => I) | undefined;
}

/** @internal */
export interface StepDefinition {
  readonly name: string;
  readonly handler: StepHandler<never, unknown>;
  readonly parseInput: ((value: unknown) => unknown) | undefined;
}
