/**
 * Shared pieces of the tutorial senders (examples/tut_*_send*.ts): a small
 * argparse-like command-line parser, the tutorial's two items, and the
 * throughput line. Runs under Bun and Deno.
 */
import { Flavour, send } from "../mod.ts";

type DenoLike = { args: string[]; exit(code: number): never };
type ProcessLike = { argv: string[]; exit(code: number): never };

const deno = (globalThis as { Deno?: DenoLike }).Deno;
const proc = (globalThis as { process?: ProcessLike }).process;

/** The command-line arguments after the script name. */
export function scriptArgs(): string[] {
  return deno ? deno.args : proc!.argv.slice(2);
}

/** Ends the process with `code`. */
export function exit(code: number): never {
  if (deno) deno.exit(code);
  return proc!.exit(code);
}

/** Which runtime runs this script, with its version. */
export function runtimeName(): string {
  const bun = (globalThis as { Bun?: { version: string } }).Bun;
  if (bun) return `Bun ${bun.version}`;
  const d = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  return d ? `Deno ${d.version.deno}` : "unknown runtime";
}

/** One option of {@link parseArgs}. */
export interface OptionSpec {
  /** Short form, e.g. "-n". */
  short: string;
  /** Long form, e.g. "--heaps"; the result key is its camelCase name ("heaps"). */
  long: string;
  /** Default when absent; `undefined` means "not given". */
  default?: number;
  /** Placeholder in the usage line. */
  metavar: string;
}

/** Parsed options plus the positional arguments. */
export interface ParsedArgs {
  options: Record<string, number | undefined>;
  positionals: string[];
}

function camel(long: string): string {
  return long.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses `argv` the way the Python tutorials' argparse setup does: integer
 * options (`-n 5`, `-n5`, `--heaps 5`, `--heaps=5`), then positionals.
 * `positionals` names the required ones, `optionalPositionals` those that may
 * be left out. Prints usage and exits 2 on an error, 0 on -h/--help.
 */
export function parseArgs(
  prog: string,
  specs: readonly OptionSpec[],
  positionals: readonly string[],
  argv: readonly string[] = scriptArgs(),
  optionalPositionals: readonly string[] = [],
): ParsedArgs {
  const usage = `usage: ${prog} [-h]` +
    specs.map((s) => ` [${s.short} ${s.metavar}]`).join("") +
    positionals.map((p) => ` ${p}`).join("") +
    optionalPositionals.map((p) => ` [${p}]`).join("");
  const fail = (msg: string): never => {
    console.error(usage);
    console.error(`${prog}: error: ${msg}`);
    return exit(2);
  };
  const options: Record<string, number | undefined> = {};
  for (const s of specs) options[camel(s.long)] = s.default;
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      console.log(usage);
      return exit(0);
    }
    if (a === "--") {
      pos.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a.length > 1 && !/^-\d/.test(a)) {
      let spec: OptionSpec | undefined;
      let value: string | undefined;
      if (a.startsWith("--")) {
        const eq = a.indexOf("=");
        const name = eq >= 0 ? a.slice(0, eq) : a;
        spec = specs.find((s) => s.long === name);
        if (eq >= 0) value = a.slice(eq + 1);
      } else {
        spec = specs.find((s) => s.short === a.slice(0, 2));
        if (a.length > 2) value = a.slice(2);
      }
      if (!spec) return fail(`unrecognized argument: ${a}`);
      if (value === undefined) {
        if (i + 1 >= argv.length) return fail(`argument ${spec.short}/${spec.long}: expected one argument`);
        value = argv[++i];
      }
      if (!/^[-+]?\d+$/.test(value)) return fail(`argument ${spec.short}/${spec.long}: invalid int value: '${value}'`);
      options[camel(spec.long)] = Number(value);
      continue;
    }
    pos.push(a);
  }
  if (pos.length < positionals.length) {
    return fail(`missing required argument(s): ${positionals.slice(pos.length).join(", ")}`);
  }
  if (pos.length > positionals.length + optionalPositionals.length) {
    return fail(`unrecognized arguments: ${pos.slice(positionals.length + optionalPositionals.length).join(" ")}`);
  }
  return { options, positionals: pos };
}

/** The options the tutorials use. */
export const HEAPS: OptionSpec = { short: "-n", long: "--heaps", default: 1000, metavar: "HEAPS" };
export const PACKET_SIZE: OptionSpec = { short: "-p", long: "--packet-size", metavar: "PACKET_SIZE" };
export const HEAP_SIZE: OptionSpec = { short: "-H", long: "--heap-size", default: 1024 * 1024, metavar: "HEAP_SIZE" };

/** `host port` positionals as a `[host, port]` endpoint; exits 2 on a bad port. */
export function endpoint(prog: string, positionals: readonly string[]): [string, number] {
  const port = Number(positionals[1]);
  if (!/^\d+$/.test(positionals[1]) || port > 65535) {
    console.error(`${prog}: error: argument port: invalid int value: '${positionals[1]}'`);
    exit(2);
  }
  return [positionals[0], port];
}

/** Item IDs of the tutorial. */
export const TIMESTAMP_ID = 0x1600;
export const ADC_SAMPLES_ID = 0x3300;

/**
 * The tutorial's item group: `timestamp` (0x1600, an unsigned integer as wide
 * as the flavour's heap address, so it is sent as an immediate) and
 * `adc_samples` (0x3300, int8[heapSize]).
 */
export function tutorialItemGroup(heapSize: number): send.ItemGroup {
  const ig = new send.ItemGroup();
  ig.addItem({
    id: TIMESTAMP_ID,
    name: "timestamp",
    description: "Index of the first sample",
    shape: [],
    format: [["u", new Flavour().heapAddressBits]],
  });
  ig.addItem({
    id: ADC_SAMPLES_ID,
    name: "adc_samples",
    description: "ADC converter output",
    shape: [heapSize],
    dtype: "i1",
  });
  return ig;
}

/** The tutorials' result line: payload megabytes per second, two decimals. */
export function printRate(bytes: number, seconds: number): void {
  console.log(`${(bytes / seconds / 1e6).toFixed(2)} MB/s`);
}

/** Seconds from a monotonic clock. */
export function seconds(): number {
  return performance.now() / 1e3;
}

/**
 * Builds a reusable heap from the tutorial item group whose timestamp
 * immediate is read from `timestamp` (a big-endian u64; its last
 * heapAddressBits/8 bytes are the value) each time the heap is sent, as C++
 * `heap::add_item(id, (char *) &ts + 3, 5, true)` does in tutorials 10 and 11.
 * `send.Heap.addRaw(id, bytes, true)` references the bytes, so updating them
 * in place between sends changes what the same heap object sends. Update them
 * only while the heap is not in flight, as with spead2.
 */
export function timestampRefHeap(
  itemGroup: send.ItemGroup,
  timestamp: DataView,
  options: { descriptors: "all" | "none" },
): send.Heap {
  if (timestamp.byteLength !== 8) throw new RangeError("timestamp must be an 8-byte view");
  const flavour = itemGroup.flavour;
  const draft = itemGroup.addToHeap(new send.Heap(flavour), { descriptors: options.descriptors, data: "all" });
  const heap = new send.Heap(flavour);
  const width = flavour.heapAddressBits / 8;
  const tsBytes = new Uint8Array(timestamp.buffer, timestamp.byteOffset + 8 - width, width);
  for (const e of draft.entries) {
    if (e.id === TIMESTAMP_ID && e.immediate) heap.addRaw(TIMESTAMP_ID, tsBytes, true);
    else if (e.immediate) heap.addImmediate(e.id, e.value ?? 0n);
    else heap.addRaw(e.id, e.bytes);
  }
  return heap;
}
