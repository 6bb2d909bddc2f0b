/**
 * What the command-line tools share: spead2-style option parsing
 * (`--name value`, `--name=value`, flags without a value), host:port
 * endpoints, the live progress line and the exit on a clear error.
 * @module
 */
import process from "node:process";
import { SpeadError } from "../mod.ts";

/** Exit status for bad usage and for errors the user can fix (spead2 uses 2). */
export const EXIT_USAGE = 2;

/** One option: its kind, default and help text. */
export interface OptionSpec {
  /** `flag` takes no value; the others parse their value. */
  readonly kind: "flag" | "int" | "number" | "string";
  /** Help text (spead2's wording where the option is spead2's). */
  readonly help: string;
  /** Default value shown in `--help` and used when absent. */
  readonly default?: number | string | boolean;
  /** Lowest accepted value for numbers. */
  readonly min?: number;
  /** Highest accepted value for numbers. */
  readonly max?: number;
}

/** A tool's command line: options by name, and positional arguments. */
export interface ToolSpec {
  readonly name: string;
  readonly usage: string;
  readonly description: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly examples: readonly string[];
}

/** Parsed values by option name, and the positional arguments. */
export interface Parsed {
  readonly values: Record<string, number | string | boolean | undefined>;
  readonly positional: string[];
}

/** A usage error: printed with the usage line, exit status 2. */
export class UsageError extends Error {}

/** The `--help` text. */
export function helpText(spec: ToolSpec): string {
  const lines = [`usage: ${spec.name} ${spec.usage}`, "", spec.description, "", "options:"];
  const width = Math.max(...Object.keys(spec.options).map((n) => n.length)) + 4;
  for (const [name, o] of Object.entries(spec.options)) {
    const arg = o.kind === "flag" ? "" : ` ${o.kind === "string" ? "TEXT" : "N"}`;
    const def = o.default !== undefined && o.kind !== "flag" ? ` [${o.default}]` : "";
    lines.push(`  --${(name + arg).padEnd(width)} ${o.help}${def}`);
  }
  lines.push(`  --${"help".padEnd(width)} show this help`);
  lines.push("", "examples:", ...spec.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

/** Parses `argv` (without the runtime and script). Throws {@link UsageError}. */
export function parseArgs(spec: ToolSpec, argv: readonly string[]): Parsed | "help" {
  const values: Record<string, number | string | boolean | undefined> = {};
  for (const [name, o] of Object.entries(spec.options)) values[name] = o.default ?? (o.kind === "flag" ? false : undefined);
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return "help";
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const o = spec.options[name];
    if (!o) throw new UsageError(`unrecognised option '--${name}'`);
    if (o.kind === "flag") {
      if (eq >= 0) throw new UsageError(`option '--${name}' takes no value`);
      values[name] = true;
      continue;
    }
    let text: string | undefined;
    if (eq >= 0) text = arg.slice(eq + 1);
    else {
      text = argv[++i];
      if (text === undefined) throw new UsageError(`option '--${name}' needs a value`);
    }
    values[name] = parseValue(name, o, text);
  }
  return { values, positional };
}

function parseValue(name: string, o: OptionSpec, text: string): number | string {
  if (o.kind === "string") return text;
  const v = Number(text);
  const range = `${o.min ?? "-inf"}..${o.max ?? "inf"}`;
  if (text.trim() === "" || !Number.isFinite(v) || (o.kind === "int" && !Number.isInteger(v))) {
    throw new UsageError(`option '--${name}': '${text}' is not ${o.kind === "int" ? "an integer" : "a number"}`);
  }
  if ((o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max)) {
    throw new UsageError(`option '--${name}': ${text} is outside ${range}`);
  }
  return v;
}

/** `host:port`, `:port` or `port` (host defaults to `defaultHost`). IPv6 as `[::1]:8888`. */
export function parseEndpoint(text: string, defaultHost: string | undefined): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  if (!m) throw new UsageError(`'${text}' is not of the form host:port`);
  const host = m[1] || m[2] || defaultHost;
  if (!host) throw new UsageError(`'${text}' has no host (host:port)`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`'${text}': port ${port} is outside 0..65535`);
  return [host, port];
}

/**
 * Runs a tool's main: usage errors and SpeadErrors (busy port, bad address)
 * print one line `tool: message` and exit 2; anything else is a crash (exit 1).
 */
export async function runTool(spec: ToolSpec, main: (args: Parsed) => Promise<number>): Promise<never> {
  let code: number;
  try {
    const parsed = parseArgs(spec, process.argv.slice(2));
    if (parsed === "help") {
      console.log(helpText(spec));
      code = 0;
    } else {
      code = await main(parsed);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${spec.name}: ${err.message}\nusage: ${spec.name} ${spec.usage} (--help for more)`);
      code = EXIT_USAGE;
    } else if (err instanceof SpeadError) {
      console.error(`${spec.name}: ${err.message}`);
      code = EXIT_USAGE;
    } else {
      console.error(`${spec.name}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      code = 1;
    }
  }
  process.exit(code);
}

/**
 * A line of progress on stderr every `intervalS` seconds: rewritten in place
 * on a terminal, one plain line each time otherwise. `line()` gives the text.
 */
export class Progress {
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  readonly #tty: boolean;
  #shown = false;

  constructor(intervalS: number, line: (elapsedS: number) => string) {
    this.#tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY);
    if (intervalS <= 0) return;
    const start = performance.now();
    this.#timer = setInterval(() => {
      const text = line((performance.now() - start) / 1e3);
      if (this.#tty) process.stderr.write(`\r\x1b[K${text}`);
      else process.stderr.write(`${text}\n`);
      this.#shown = true;
    }, intervalS * 1e3);
  }

  /** Stops the timer and ends the live line. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#tty && this.#shown) process.stderr.write("\r\x1b[K");
  }
}

/** Bytes per second as MB/s with one decimal. */
export function mbps(bytes: number, seconds: number): string {
  return seconds > 0 ? (bytes / seconds / 1e6).toFixed(1) : "0.0";
}

/** Calls `fn` on SIGINT (Ctrl-C), once; returns the remover. */
export function onInterrupt(fn: () => void): () => void {
  const handler = () => fn();
  process.once("SIGINT", handler);
  return () => process.off("SIGINT", handler);
}

/**
 * spead2's `--verify` payload: the values of C++ `std::minstd_rand` (seed 1),
 * as big-endian u32, numbered across all data items of all heaps in order.
 */
export class VerifySequence {
  static readonly #a = 48271;
  static readonly #m = 2147483647;
  #x: number;

  /** Starts at value number `position` (0 = the first). */
  constructor(position = 0) {
    // x_n = a^n (mod m), by square-and-multiply in BigInt (n can exceed 2^32).
    let result = 1n;
    let base = BigInt(VerifySequence.#a);
    let n = BigInt(position);
    const m = BigInt(VerifySequence.#m);
    while (n > 0n) {
      if (n & 1n) result = (result * base) % m;
      base = (base * base) % m;
      n >>= 1n;
    }
    this.#x = Number(result);
  }

  /** The next value. */
  next(): number {
    this.#x = (this.#x * VerifySequence.#a) % VerifySequence.#m;
    return this.#x;
  }

  /** Fills `view` with the next values, big-endian. */
  fill(view: DataView): void {
    for (let o = 0; o + 4 <= view.byteLength; o += 4) view.setUint32(o, this.next(), false);
  }

  /** Checks `view` against the next values; the element index of the first mismatch, or -1. */
  check(view: DataView): { index: number; expected: number; actual: number } | undefined {
    for (let o = 0; o + 4 <= view.byteLength; o += 4) {
      const expected = this.next();
      const actual = view.getUint32(o, false);
      if (expected !== actual) return { index: o / 4, expected, actual };
    }
    return undefined;
  }
}
