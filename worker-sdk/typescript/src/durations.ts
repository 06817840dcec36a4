/** Durations as the SDK accepts them: milliseconds, or text such as `"500ms"`, `"30s"`, `"1h30m"`, `"3d"`. */

/** Milliseconds (a `number`, as for `setTimeout`) or text with units `ms`, `s`, `m`, `h`, `d`. */
export type Duration = number | string;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Returns `value` in milliseconds (not rounded). Throws `RangeError` for a negative, infinite or
 * malformed duration and `TypeError` for anything that is not a number or a string.
 *
 * Text is one or more `<number><unit>` parts, as in the Python SDK: `"500ms"`, `"3d"`, `"1h30m"`.
 */
export function parseDuration(value: Duration): number {
  let ms: number;
  if (typeof value === "string") {
    ms = parseText(value);
  } else if (typeof value === "number") {
    ms = value;
  } else {
    throw new TypeError(`a duration must be milliseconds or a string like '1h30m', not ${String(value)}`);
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`a duration must be finite and not negative, not ${JSON.stringify(value)}`);
  }
  return ms;
}

/** Returns `value` in whole milliseconds (rounded), as the engine receives it. */
export function durationMs(value: Duration): number {
  return Math.round(parseDuration(value));
}

function parseText(text: string): number {
  const compact = text.replaceAll(" ", "");
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < compact.length) {
    const match = PART.exec(compact);
    if (match === null) {
      break;
    }
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? Number.NaN);
  }
  if (compact === "" || PART.lastIndex !== compact.length) {
    throw new RangeError(
      `invalid duration ${JSON.stringify(text)}: expected parts like '500ms', '30s', '5m', '1h30m' or '3d'`,
    );
  }
  return total;
}
