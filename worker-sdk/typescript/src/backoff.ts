/** Exponential backoff for reconnecting and re-submitting. */
export class Backoff {
  readonly initialMs: number;
  readonly maximumMs: number;
  #next: number;

  /** Delays that start at `initialMs` and double up to `maximumMs` until {@link reset}. */
  constructor(initialMs = 100, maximumMs = 5_000) {
    this.initialMs = initialMs;
    this.maximumMs = maximumMs;
    this.#next = initialMs;
  }

  /** The delay to wait now; the following one is twice as long (capped). */
  next(): number {
    const delay = this.#next;
    this.#next = Math.min(delay * 2, this.maximumMs);
    return delay;
  }

  reset(): void {
    this.#next = this.initialMs;
  }
}

/** Resolves after `ms`, or at once (without throwing) when `signal` is aborted. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
