/**
 * Delta heaps from an item group (spead2's `send.HeapGenerator` and
 * `send.ItemGroup`): each heap carries the descriptors and values that changed
 * since the previous one.
 */
import { checkInstance, describeValue, SpeadError } from "../errors.ts";
import { Flavour } from "../flavour.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Item } from "../item.ts";
import { ItemGroup as BaseItemGroup } from "../item_group.ts";
import { Heap } from "./heap.ts";

/** Which descriptors or values to put in a heap. */
export type HeapSelection = "stale" | "all" | "none";

/** Options of {@link HeapGenerator.getHeap} and {@link HeapGenerator.addToHeap}. */
export interface GetHeapOptions {
  /**
   * `'stale'` (default): descriptors never sent, sent for a replaced item, or
   * due again under `descriptorFrequency`; `'all'`: every descriptor (e.g. for a
   * receiver that joined late); `'none'`.
   */
  readonly descriptors?: HeapSelection;
  /** `'stale'` (default): values whose version changed since sent; `'all'`; `'none'`. */
  readonly data?: HeapSelection;
}

/** Options of the {@link HeapGenerator} and send {@link ItemGroup} constructors. */
export interface HeapGeneratorOptions {
  /** Resend every descriptor once per this many heaps built. Default: never. */
  readonly descriptorFrequency?: number | null;
  /** Flavour of the heaps built. Default SPEAD-64-40. */
  readonly flavour?: Flavour;
}

/** What {@link HeapGenerator.addToHeap} needs of a heap (satisfied by `send.Heap`). */
export interface HeapSink {
  /** Adds an item's current value. */
  addItem(item: Item): void;
  /** Adds a descriptor. */
  addDescriptor(descriptor: Descriptor): void;
}

interface ItemInfo {
  /** Version of the value last sent, or null. */
  version: number | null;
  /** Heap counter when the descriptor was last sent, or null. */
  descriptorCnt: number | null;
  /** The item object the info belongs to (a replacement is a different object). */
  item: WeakRef<Item>;
}

const FORMS = "ItemGroup(descriptorFrequency?, flavour?), ItemGroup(flavour) or ItemGroup({ descriptorFrequency, flavour })";

function resolveOptions(
  arg: number | null | HeapGeneratorOptions | Flavour | undefined,
  flavour: Flavour | undefined,
): { descriptorFrequency: number | null; flavour: Flavour } {
  if (flavour !== undefined) checkInstance("flavour", flavour, Flavour, `a Flavour (${FORMS})`);
  if (arg instanceof Flavour) {
    // A Flavour first (spead2 users write ItemGroup(flavour=...)): it is the flavour.
    if (flavour !== undefined) throw new SpeadError("invalid_argument", `two flavours given; use ${FORMS}`);
    return { descriptorFrequency: null, flavour: arg };
  }
  if (arg !== null && typeof arg === "object") {
    if (Object.getPrototypeOf(arg) !== Object.prototype) {
      throw new SpeadError("invalid_argument", `descriptorFrequency must be a number, null or options, not ${describeValue(arg)} (${FORMS})`);
    }
    for (const key of Object.keys(arg)) {
      if (key !== "descriptorFrequency" && key !== "flavour") {
        throw new SpeadError("invalid_argument", `unknown option ${key} (${FORMS})`);
      }
    }
    if (arg.flavour !== undefined) checkInstance("flavour", arg.flavour, Flavour, `a Flavour (${FORMS})`);
    return { descriptorFrequency: arg.descriptorFrequency ?? null, flavour: arg.flavour ?? flavour ?? new Flavour() };
  }
  if (arg !== undefined && arg !== null && typeof arg !== "number") {
    throw new SpeadError("invalid_argument", `descriptorFrequency must be a number, null or options, not ${describeValue(arg)} (${FORMS})`);
  }
  return { descriptorFrequency: arg ?? null, flavour: flavour ?? new Flavour() };
}

function checkSelection(value: HeapSelection, what: string): void {
  if (value !== "stale" && value !== "all" && value !== "none") {
    throw new SpeadError("invalid_argument", `${what} must be one of 'stale', 'all', 'none'`);
  }
}

/**
 * Tracks which descriptors and values of an item group have been sent, and
 * builds heaps with what changed. Within a heap, items are visited in the
 * group's insertion order, and each contributes its descriptor (if selected)
 * and then its value (if selected), as spead2 does.
 */
export class HeapGenerator {
  readonly #itemGroup: BaseItemGroup;
  readonly #info = new Map<number, ItemInfo>();
  readonly #descriptorFrequency: number | null;
  /** Heaps built so far (independent of the protocol's heap cnt). */
  #descriptorCnt = 0;
  /** Flavour of the heaps this generator builds. */
  readonly flavour: Flavour;

  /**
   * @param itemGroup the group to watch
   * @param descriptorFrequency resend descriptors once per this many heaps (or an options object)
   * @param flavour flavour of the heaps built (default SPEAD-64-40)
   */
  /** Tracks which descriptors and values are stale for an item group (spead2's `HeapGenerator`). */
  constructor(
    itemGroup: BaseItemGroup,
    descriptorFrequency?: number | null | HeapGeneratorOptions | Flavour,
    flavour?: Flavour,
  ) {
    const opts = resolveOptions(descriptorFrequency, flavour);
    if (opts.descriptorFrequency !== null && (!Number.isInteger(opts.descriptorFrequency) || opts.descriptorFrequency < 0)) {
      throw new SpeadError("invalid_argument", `descriptorFrequency must be a non-negative integer, not ${opts.descriptorFrequency}`);
    }
    this.#itemGroup = itemGroup;
    this.#descriptorFrequency = opts.descriptorFrequency;
    this.flavour = opts.flavour;
  }

  #getInfo(item: Item): ItemInfo {
    let info = this.#info.get(item.id);
    if (info === undefined) {
      info = { version: null, descriptorCnt: null, item: new WeakRef(item) };
      this.#info.set(item.id, info);
    }
    return info;
  }

  #descriptorStale(item: Item, info: ItemInfo): boolean {
    if (info.descriptorCnt === null) return true; // never sent
    if (this.#descriptorFrequency !== null && this.#descriptorCnt - info.descriptorCnt >= this.#descriptorFrequency) {
      return true; // due for a resend
    }
    if (info.item.deref() !== item) {
      // The item was replaced: its value must be resent too.
      info.version = null;
      info.item = new WeakRef(item);
      return true;
    }
    return false;
  }

  /**
   * Adds to `heap` the descriptors and values selected by `options` (spead2's
   * `add_to_heap`), records them as sent, and returns the heap.
   */
  addToHeap<H extends HeapSink>(heap: H, options: GetHeapOptions = {}): H {
    const descriptors = options.descriptors ?? "stale";
    const data = options.data ?? "stale";
    checkSelection(descriptors, "descriptors");
    checkSelection(data, "data");
    for (const item of this.#itemGroup.values()) {
      const info = this.#getInfo(item);
      if (descriptors === "all" || (descriptors === "stale" && this.#descriptorStale(item, info))) {
        heap.addDescriptor(item);
        info.descriptorCnt = this.#descriptorCnt;
      }
      if (item.value !== null && (data === "all" || (data === "stale" && info.version !== item.version))) {
        heap.addItem(item);
        info.version = item.version;
      }
    }
    this.#descriptorCnt++;
    return heap;
  }

  /** A new heap with the descriptors and values that changed since the last call (see {@link addToHeap}). */
  getHeap(options: GetHeapOptions = {}): Heap {
    return this.addToHeap(new Heap(this.flavour), options);
  }

  /** A heap holding only the start-of-stream control item. */
  getStart(): Heap {
    const heap = new Heap(this.flavour);
    heap.addStart();
    return heap;
  }

  /** A heap holding only the end-of-stream control item. */
  getEnd(): Heap {
    const heap = new Heap(this.flavour);
    heap.addEnd();
    return heap;
  }
}

/**
 * An item group that is also a heap generator over itself (spead2's
 * `send.ItemGroup`).
 */
export class ItemGroup extends BaseItemGroup {
  readonly #generator: HeapGenerator;

  /**
   * @param descriptorFrequency resend descriptors once per this many heaps (or an options object,
   *   or the Flavour itself: `new send.ItemGroup(new Flavour(4, 64, 48, 0))`)
   * @param flavour flavour of the heaps built (default SPEAD-64-40)
   */
  /** spead2's `send.ItemGroup(descriptor_frequency, flavour)`. */
  constructor(descriptorFrequency?: number | null | HeapGeneratorOptions | Flavour, flavour?: Flavour) {
    super();
    this.#generator = new HeapGenerator(this, descriptorFrequency, flavour);
  }

  /** Flavour of the heaps this group builds. */
  get flavour(): Flavour {
    return this.#generator.flavour;
  }

  /** See {@link HeapGenerator.addToHeap}. */
  addToHeap<H extends HeapSink>(heap: H, options: GetHeapOptions = {}): H {
    return this.#generator.addToHeap(heap, options);
  }

  /** See {@link HeapGenerator.getHeap}. */
  getHeap(options: GetHeapOptions = {}): Heap {
    return this.#generator.getHeap(options);
  }

  /** See {@link HeapGenerator.getStart}. */
  getStart(): Heap {
    return this.#generator.getStart();
  }

  /** See {@link HeapGenerator.getEnd}. */
  getEnd(): Heap {
    return this.#generator.getEnd();
  }
}
