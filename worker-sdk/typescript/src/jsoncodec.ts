/** JSON encoding of step outputs and payloads, strict where `JSON.stringify` is lenient. */

/**
 * Encodes `value` as compact JSON text (`undefined` as `null`). Throws `TypeError` for what JSON
 * cannot hold: `NaN` and infinities (which `JSON.stringify` would turn into `null`), bigints,
 * functions and symbols at the top, and cycles.
 */
export function dumps(value: unknown): string {
  const text = JSON.stringify(value === undefined ? null : value, (_key, item: unknown) => {
    if (typeof item === "number" && !Number.isFinite(item)) {
      throw new TypeError(`${item} is not a JSON number`);
    }
    if (typeof item === "bigint") {
      throw new TypeError(`a bigint (${item}n) is not a JSON number`);
    }
    return item;
  }) as string | undefined;
  if (text === undefined) {
    throw new TypeError(`a ${typeof value} cannot be encoded as JSON`);
  }
  return text;
}

/** Decodes server JSON text; the empty string means `null`. */
export function loads(text: string): unknown {
  return text === "" ? null : (JSON.parse(text) as unknown);
}
