/**
 * Tutorial pair benchmark (issue #4): tut_8 sender -> tut_9 receiver over
 * 127.0.0.1, ours (Bun, Deno) against spead2's own Python pair on the same
 * machine, e.g. `-n 100 -H 67108864 -p 9000` as in the tutorial. Counts the
 * heaps the receiver reports. Not a test. Run: `bun bench/tut_pair.ts`.
 */
import { bunBin as bun, denoBin as deno, loadAverage as load, median, pairTrial, python, root } from "./common.ts";

const trials = Number(process.env.RUNS ?? 3);
const configs = [
  { heaps: 100, heapSize: 67108864, packet: 9000 },
  { heaps: 100, heapSize: 8388608, packet: 9000 },
  { heaps: 100, heapSize: 1048576, packet: 9000 },
];

type Pair = { name: string; recv: (h: number, port: number) => string[]; send: (c: typeof configs[0], port: number) => string[] };
const pairs: Pair[] = [
  {
    name: "ours, Bun",
    recv: (h, p) => [bun, `${root}/examples/tut_9_recv_memory_pool.ts`, "-H", String(h), "--bind", "127.0.0.1", String(p)],
    send: (c, p) => [bun, `${root}/examples/tut_8_send_reuse_memory.ts`, "-n", String(c.heaps), "-H", String(c.heapSize), "-p", String(c.packet), "127.0.0.1", String(p)],
  },
  {
    name: "ours, Deno",
    recv: (h, p) => [deno, "run", "--allow-ffi", "--allow-env", `${root}/examples/tut_9_recv_memory_pool.ts`, "-H", String(h), "--bind", "127.0.0.1", String(p)],
    send: (c, p) => [deno, "run", "--allow-ffi", "--allow-env", `${root}/examples/tut_8_send_reuse_memory.ts`, "-n", String(c.heaps), "-H", String(c.heapSize), "-p", String(c.packet), "127.0.0.1", String(p)],
  },
  {
    name: "spead2 (Python)",
    recv: (h, p) => [python, `${root}/bench/spead2_tut9_recv.py`, "-H", String(h), "--bind", "127.0.0.1", String(p)],
    send: (c, p) => [python, `${root}/bench/spead2_tut8_send.py`, "-n", String(c.heaps), "-H", String(c.heapSize), "-p", String(c.packet), "127.0.0.1", String(p)],
  },
];

/** One trial: the receiver started and bound first, then the sender; returns heaps received. */
async function trial(pair: Pair, c: typeof configs[0], port: number): Promise<number> {
  return (await pairTrial(pair.recv(c.heapSize, port), pair.send(c, port), port)).heaps;
}

console.log("## tut_8 -> tut_9 over 127.0.0.1: heaps received (bench/tut_pair.ts)\n");
console.log(`2 CPUs, load average ${load()} at start; rate 0 (as the tutorial); median of ${trials} trials, each: receiver started and bound first, then the sender.\n`);
console.log(`| -n / -H / -p | ${pairs.map((p) => p.name).join(" | ")} |`);
console.log(`|---|${pairs.map(() => "---:").join("|")}|`);
let port = 19100;
for (const c of configs) {
  const cells: string[] = [];
  for (const pair of pairs) {
    const got: number[] = [];
    for (let t = 0; t < trials; t++) got.push(await trial(pair, c, port++));
    cells.push(`${median(got)} of ${c.heaps} (${got.join(", ")})`);
  }
  console.log(`| ${c.heaps} / ${c.heapSize} / ${c.packet} | ${cells.join(" | ")} |`);
}
console.log(`\nload average at end ${load()}`);
