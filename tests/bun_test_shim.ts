/**
 * Lets the bun:test suites run unchanged under `deno test`: deno.json maps
 * "bun:test" to this file. It covers exactly the parts of bun:test the suites
 * use; add a matcher here when a test needs a new one.
 */
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";

export { after as afterAll, afterEach, before as beforeAll, beforeEach, describe };

/**
 * With `--v8-flags=--expose-gc` (scripts/test.sh's forced-GC pass, issue #8),
 * every test is followed by a full collection, so finalizers of whatever a test
 * dropped run while the next tests use the library (Bun: tests/gc_preload.ts).
 */
const forcedGc = (globalThis as { gc?: () => void }).gc;
function gcAfter(fn: unknown): unknown {
  if (typeof fn !== "function") return fn;
  return async function (this: unknown, ...args: unknown[]) {
    try {
      return await (fn as (...a: unknown[]) => unknown).apply(this, args);
    } finally {
      forcedGc!();
    }
  };
}
const testWithGc = ((name: string, ...rest: unknown[]) =>
  (it as unknown as (...a: unknown[]) => unknown)(name, ...rest.map(gcAfter))) as unknown as typeof it;
const test: typeof it = forcedGc ? testWithGc : it;
export { test, test as it };

type Matchers = {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toStrictEqual(expected: unknown): void;
  toThrow(expected?: unknown): void;
  toBeInstanceOf(cls: abstract new (...args: never[]) => unknown): void;
  toBeCloseTo(expected: number, digits?: number): void;
  toBeTruthy(): void;
  toBeFalsy(): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toBeNull(): void;
  toHaveLength(n: number): void;
  toBeGreaterThan(n: number | bigint): void;
  toBeGreaterThanOrEqual(n: number | bigint): void;
  toBeLessThan(n: number | bigint): void;
  toBeLessThanOrEqual(n: number | bigint): void;
  toContain(item: unknown): void;
  toMatch(re: RegExp | string): void;
};

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function matchesExpected(err: unknown, expected: unknown): boolean {
  if (expected === undefined) return true;
  const msg = err instanceof Error ? err.message : String(err);
  if (typeof expected === "string") return msg.includes(expected);
  if (expected instanceof RegExp) return expected.test(msg);
  if (typeof expected === "function") return err instanceof (expected as new () => unknown);
  return false;
}

function deepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

function makeMatchers(actual: unknown, negate: boolean): Matchers {
  const ok = (cond: boolean, what: string) => {
    if (cond === negate) {
      throw new assert.AssertionError({ message: `expected ${String(actual)} ${negate ? "not " : ""}${what}` });
    }
  };
  return {
    toBe: (e) => ok(Object.is(actual, e), `to be ${String(e)}`),
    toEqual: (e) => ok(deepEqual(actual, e), `to equal ${JSON.stringify(e, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`),
    toStrictEqual: (e) => ok(deepEqual(actual, e), "to strictly equal"),
    toThrow: (e) => {
      const err = thrown(actual as () => unknown);
      ok(err !== undefined && matchesExpected(err, e), `to throw ${String(e ?? "")} (got ${String(err)})`);
    },
    toBeInstanceOf: (cls) => ok(actual instanceof cls, `to be an instance of ${cls.name}`),
    toBeCloseTo: (e, digits = 2) => ok(Math.abs((actual as number) - e) < 10 ** -digits / 2, `to be close to ${e}`),
    toBeTruthy: () => ok(Boolean(actual), "to be truthy"),
    toBeFalsy: () => ok(!actual, "to be falsy"),
    toBeUndefined: () => ok(actual === undefined, "to be undefined"),
    toBeDefined: () => ok(actual !== undefined, "to be defined"),
    toBeNull: () => ok(actual === null, "to be null"),
    toHaveLength: (n) => ok((actual as { length: number }).length === n, `to have length ${n}`),
    toBeGreaterThan: (n) => ok((actual as number) > n, `to be > ${n}`),
    toBeGreaterThanOrEqual: (n) => ok((actual as number) >= n, `to be >= ${n}`),
    toBeLessThan: (n) => ok((actual as number) < n, `to be < ${n}`),
    toBeLessThanOrEqual: (n) => ok((actual as number) <= n, `to be <= ${n}`),
    toContain: (item) =>
      ok(
        typeof actual === "string" ? actual.includes(String(item)) : (actual as unknown[]).includes(item),
        `to contain ${String(item)}`,
      ),
    toMatch: (re) => ok(typeof re === "string" ? String(actual).includes(re) : re.test(String(actual)), `to match ${re}`),
  };
}

export function expect(actual: unknown): Matchers & {
  not: Matchers;
  rejects: { toThrow(expected?: unknown): Promise<void> };
} {
  return Object.assign(makeMatchers(actual, false), {
    not: makeMatchers(actual, true),
    rejects: {
      async toThrow(expected?: unknown): Promise<void> {
        let err: unknown;
        try {
          await (actual as Promise<unknown>);
        } catch (e) {
          err = e ?? new Error("rejected");
        }
        if (err === undefined || !matchesExpected(err, expected)) {
          throw new assert.AssertionError({ message: `expected rejection ${String(expected ?? "")}, got ${String(err)}` });
        }
      },
    },
  });
}
