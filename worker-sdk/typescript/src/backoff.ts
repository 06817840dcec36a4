/** Exponential backoff with full jitter for reconnecting and re-submitting. */

export interface BackoffOptions {
  /** The ceiling of the first delay (default 100 ms). */
  initialMs?: number | undefined;
  /** The ceiling never grows past this (default 5 s). */
  maximumMs?: number | undefined;
  /** A source of numbers in [0, 1), as `Math.random` (the default); tests pass a fixed one. */
  random?: (() => number) | undefined;
}

/**
 * Delays with "full jitter": each is a random duration between 0 and a ceiling that starts at
 * `initialMs` and doubles up to `maximumMs`. Without the randomness, hundreds of workers cut off
 * by the same engine restart would retry in lockstep and hit it together every time.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maximumMs: number;
  readonly #random: () => number;
  #ceiling: number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maximumMs = options.maximumMs ?? 5_000;
    if (!(this.initialMs > 0 && this.maximumMs >= this.initialMs)) {
      throw new RangeError("a backoff needs 0 < initialMs <= maximumMs");
    }
    this.#random = options.random ?? Math.random;
    this.#ceiling = this.initialMs;
  }

  /** The delay to wait now, in [0, ceiling); the ceiling then doubles (up to `maximumMs`). */
  next(): number {
    const ceiling = this.#ceiling;
    this.#ceiling = Math.min(ceiling * 2, this.maximumMs);
    const fraction = Math.min(Math.max(this.#random(), 0), 1);
    return fraction * ceiling;
  }

  reset(): void {
    this.#ceiling = this.initialMs;
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
