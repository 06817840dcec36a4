import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../../src/backoff.js";

test("each delay is the random fraction of a ceiling that doubles from 100 ms up to 5 s", () => {
  const fractions = [0.5, 0.25, 1, 0, 0.999, 0.5, 0.5, 0.5, 0.5];
  const backoff = new Backoff({ random: () => fractions.shift() ?? 0.5 });
  const delays = Array.from({ length: 9 }, () => backoff.next());
  assert.deepEqual(delays, [50, 50, 400, 0, 1598.4, 1600, 2500, 2500, 2500]);
});

test("reset starts the ceiling again from the first delay", () => {
  const backoff = new Backoff({ initialMs: 10, maximumMs: 40, random: () => 1 });
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next()], [10, 20, 40, 40]);
  backoff.reset();
  assert.equal(backoff.next(), 10);
});

test("two workers' backoffs with the default random source do not retry in lockstep", () => {
  const first = new Backoff();
  const second = new Backoff();
  const a = Array.from({ length: 20 }, () => first.next());
  const b = Array.from({ length: 20 }, () => second.next());
  assert.notDeepEqual(a, b);
  assert.ok(a.every((delay) => delay >= 0 && delay <= 5_000));
  assert.ok(new Set(a.slice(8)).size > 1, "past the cap the delays still vary");
});

test("a random source outside [0, 1) is clamped and bad bounds are refused", () => {
  assert.equal(new Backoff({ random: () => 7 }).next(), 100);
  assert.equal(new Backoff({ random: () => -1 }).next(), 0);
  assert.throws(() => new Backoff({ initialMs: 0 }), /initialMs/);
  assert.throws(() => new Backoff({ initialMs: 10, maximumMs: 5 }), /initialMs/);
});
