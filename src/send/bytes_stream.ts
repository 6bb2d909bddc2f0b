import { checkInstance, checkOptions, SpeadError } from "../errors.ts";
import { ThreadPool } from "../thread_pool.ts";
import type { Heap } from "./heap.ts";
import { encodeHeap } from "./encode.ts";
import { PacketGenerator } from "./packet_generator.ts";
import { GroupMode, StreamConfig } from "./stream_config.ts";

/** A heap plus its send options, for {@link BytesStream.sendHeaps} (spead2's `HeapReference`). */
export class HeapReference {
  /** The heap to send. */
  readonly heap: Heap;
  /** Heap cnt to use; negative: the stream's next automatic cnt. */
  readonly cnt: bigint;
  /** Substream (destination) index. */
  readonly substreamIndex: number;
  /** Rate for this heap in bytes/s; negative: the stream's rate. */
  readonly rate: number;

  /** A heap with its send options (defaults: automatic cnt, substream 0, the stream's rate). */
  constructor(heap: Heap, options: { cnt?: bigint | number; substreamIndex?: number; rate?: number } = {}) {
    checkOptions("options", options, "{ cnt, substreamIndex, rate }");
    this.heap = heap;
    this.cnt = BigInt(options.cnt ?? -1);
    this.substreamIndex = options.substreamIndex ?? 0;
    this.rate = options.rate ?? -1;
  }
}

/**
 * A send stream that appends every packet to memory (spead2's
 * `send.BytesStream`); `getValue()` returns the concatenated packets, which a
 * receiver reads back with `addBufferReader`.
 */
export class BytesStream {
  /** The stream configuration it was created with. */
  readonly config: StreamConfig;
  readonly #chunks: Uint8Array[] = [];
  #length = 0;
  readonly #cnt = new CntSequence();

  /** An empty in-memory stream; every send appends its packets. */
  constructor(config?: StreamConfig);
  /** spead2's positional form: `send.BytesStream(thread_pool, config)` (the pool is not needed). */
  constructor(threadPool: ThreadPool, config?: StreamConfig);
  constructor(a?: StreamConfig | ThreadPool, b?: StreamConfig) {
    const config = (a instanceof ThreadPool ? b : a) ?? new StreamConfig();
    this.config = checkInstance(
      "config",
      config,
      StreamConfig,
      "a send.StreamConfig (send.BytesStream(config?) or send.BytesStream(threadPool, config?))",
    );
  }

  /** Sets the automatic heap cnt sequence (spead2's `set_cnt_sequence`). */
  setCntSequence(next: bigint | number, step: bigint | number): void {
    this.#cnt.set(next, step);
  }

  /** Encodes one heap. `cnt` < 0 (the default) takes the next automatic cnt. Returns bytes written. */
  sendHeap(heap: Heap, cnt: bigint | number = -1, substreamIndex = 0): number {
    if (substreamIndex !== 0) throw new SpeadError("invalid_argument", "BytesStream has a single substream");
    const bytes = encodeHeap(heap, this.#cnt.take(cnt, heap.flavour.heapAddressBits), this.config.maxPacketSize);
    this.#chunks.push(bytes);
    this.#length += bytes.byteLength;
    return bytes.byteLength;
  }

  /** Sends a group of heaps in `mode` order; all cnts are assigned first. Returns bytes written. */
  sendHeaps(
    group: readonly HeapReference[] | { readonly references: readonly HeapReference[] },
    mode: GroupMode = GroupMode.ROUND_ROBIN,
  ): number {
    const heaps = "references" in group ? group.references : group;
    if (heaps.length === 0) throw new SpeadError("invalid_argument", "sendHeaps needs at least one heap");
    if (mode === GroupMode.SERIAL) {
      let n = 0;
      for (const h of heaps) n += this.sendHeap(h.heap, h.cnt, h.substreamIndex);
      return n;
    }
    const iters = heaps.map((h) =>
      new PacketGenerator(h.heap, this.#cnt.take(h.cnt, h.heap.flavour.heapAddressBits), this.config.maxPacketSize)[
        Symbol.iterator
      ]()
    );
    let n = 0;
    let live = iters.length;
    const done = new Array<boolean>(iters.length).fill(false);
    while (live > 0) {
      for (let i = 0; i < iters.length; i++) {
        if (done[i]) continue;
        const r = iters[i].next();
        if (r.done) {
          done[i] = true;
          live--;
          continue;
        }
        this.#chunks.push(r.value);
        this.#length += r.value.byteLength;
        n += r.value.byteLength;
      }
    }
    return n;
  }

  /** All packets written so far, concatenated. */
  getValue(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }
}

/** spead2's heap cnt sequence: next/step, masked to the flavour's address bits. */
class CntSequence {
  #next = 1n;
  #step = 1n;

  set(next: bigint | number, step: bigint | number): void {
    const s = BigInt(step);
    const n = BigInt(next);
    if (s === 0n) throw new SpeadError("invalid_argument", "cnt sequence step must not be 0");
    if (n < 0n || s < 0n) throw new SpeadError("invalid_argument", "cnt sequence values must be >= 0");
    this.#next = n;
    this.#step = s;
  }

  /** Returns the cnt to use: the explicit one (not advancing the sequence) or the next in sequence. */
  take(explicit: bigint | number | undefined, heapAddressBits: number): bigint {
    const mask = (1n << BigInt(heapAddressBits)) - 1n;
    if (explicit !== undefined && BigInt(explicit) >= 0n) {
      const cnt = BigInt(explicit);
      if (cnt > mask) throw new SpeadError("invalid_cnt", `heap cnt ${cnt} does not fit ${heapAddressBits} bits`);
      return cnt;
    }
    const cnt = this.#next & mask;
    this.#next = (this.#next + this.#step) & mask;
    return cnt;
  }
}
