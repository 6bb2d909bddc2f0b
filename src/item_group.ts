/**
 * Item groups (spead2's `ItemGroup`): items indexed by ID and by name, updated
 * from received heaps.
 */
import type { Flavour } from "./flavour.ts";
import type { Descriptor } from "./descriptor.ts";
import { Item, type ItemOptions, type NewOrder, type RawItem } from "./item.ts";

/** First ID handed out when `addItem` is called without one (spead2's `_UNRESERVED_ID`). */
export const UNRESERVED_ID = 0x1000;
/** Raw items with IDs up to this one (STREAM_CTRL) are protocol fields, not user items. */
const STREAM_CTRL_ID = 0x06;

/** What {@link ItemGroup.update} needs of a received heap (satisfied by `recv.Heap`). */
export interface HeapLike {
  /** The heap's flavour. */
  readonly flavour: Flavour;
  /** The heap's items, in order. */
  getItems(): RawItem[];
  /** The descriptors the heap carries. */
  getDescriptors(): Descriptor[];
}

/** Options of {@link ItemGroup.addItem}: an item, with the ID optional. */
export interface AddItemOptions extends Omit<ItemOptions, "id"> {
  /** Item ID; omitted or `null` picks the lowest free ID from 0x1000. */
  id?: number | null;
}

/** Options of {@link ItemGroup.update}. */
export interface UpdateOptions {
  /** Copy every array out of the heap instead of viewing the heap's memory. */
  readonly copy?: boolean;
}

/**
 * Items indexed by ID and by name.
 *
 * Re-issued descriptors: one identical to the known descriptor for its ID
 * changes nothing. Any other replaces every item with the same ID or the same
 * name (possibly two items); the new item's value is `null`, and its version is
 * set above those of the items it replaced, so that consumers who only compare
 * versions see the change.
 */
export class ItemGroup {
  readonly #byId = new Map<number, Item>();
  readonly #byName = new Map<string, Item>();
  /** Receives warnings (an item without a descriptor). Defaults to `console.warn`. */
  onWarning: (message: string) => void = (message) => console.warn(`spead: ${message}`);

  #remove(item: Item): void {
    this.#byId.delete(item.id);
    this.#byName.delete(item.name);
  }

  /** Installs an item with spead2's replacement rules; returns the item now in the group. */
  #add(item: Item): Item {
    const old = this.#byId.get(item.id);
    const oldByName = this.#byName.get(item.name);
    if (old !== undefined && old.sameAs(item)) {
      // Same descriptor: keep the existing item, and take over a new value if there is one.
      if (item.value !== null) old.value = item.value;
      return old;
    }
    let version = item.version;
    if (old !== undefined) version = Math.max(version, old.version + 1);
    if (oldByName !== undefined) version = Math.max(version, oldByName.version + 1);
    item.version = version;
    if (old !== undefined) this.#remove(old);
    if (oldByName !== undefined && oldByName !== old) this.#remove(oldByName);
    this.#byId.set(item.id, item);
    this.#byName.set(item.name, item);
    return item;
  }

  /**
   * Adds an item (spead2's `add_item`). Without an `id`, the lowest unused ID
   * from 0x1000 is taken. An item with the same ID or name is replaced as the
   * class documentation describes; if the descriptor is identical to the
   * existing one, the existing item is kept and takes the new value (if any).
   *
   * Returns the item that is in the group afterwards. (spead2 returns the
   * argument-built item even when it was not installed; returning the live one
   * is what callers need to assign values later.)
   */
  addItem(options: AddItemOptions): Item {
    let id = options.id ?? null;
    if (id === null) {
      id = UNRESERVED_ID;
      while (this.#byId.has(id)) id++;
    }
    return this.#add(new Item({ ...options, id }));
  }

  /** The item with this name (string) or ID (number), like spead2's `ig[key]`. */
  get(key: string | number): Item | undefined {
    return typeof key === "number" ? this.#byId.get(key) : this.#byName.get(key);
  }

  /** The item with this ID. */
  getById(id: number): Item | undefined {
    return this.#byId.get(id);
  }

  /** Whether an item with this name (string) or ID (number) exists. */
  has(key: string | number): boolean {
    return typeof key === "number" ? this.#byId.has(key) : this.#byName.has(key);
  }

  /** Item names, in insertion order. */
  keys(): IterableIterator<string> {
    return this.#byName.keys();
  }

  /** Item IDs. */
  ids(): IterableIterator<number> {
    return this.#byId.keys();
  }

  /** The items, in insertion order (by name). */
  values(): IterableIterator<Item> {
    return this.#byName.values();
  }

  /** `[name, item]` pairs, in insertion order. */
  items(): IterableIterator<[string, Item]> {
    return this.#byName.entries();
  }

  /** `[name, item]` pairs, as `items()`. */
  [Symbol.iterator](): IterableIterator<[string, Item]> {
    return this.items();
  }

  /** Number of items. */
  get size(): number {
    return this.#byName.size;
  }

  /**
   * Updates descriptors and values from a received heap (spead2's `update`):
   * first every descriptor in the heap is applied (identical ones change
   * nothing), then every raw item with an ID above 6 is decoded into the item
   * with that ID; an item without a descriptor is reported through
   * {@link ItemGroup.onWarning} and skipped. Each decoded item's version goes
   * up (by 2, as in spead2: once for the assignment, once for the update).
   *
   * Arrays are views on the heap's memory where possible
   * (`item.valueIsView`); pass `{ copy: true }` to copy them instead.
   *
   * Returns the items updated by this heap, keyed by name.
   * Throws `SpeadError` when a value cannot be decoded.
   */
  update(heap: HeapLike, newOrder: NewOrder = "=", options: UpdateOptions = {}): Map<string, Item> {
    for (const descriptor of heap.getDescriptors()) {
      this.#add(Item.fromDescriptor(descriptor));
    }
    const updated = new Map<string, Item>();
    for (const raw of heap.getItems()) {
      if (raw.id <= STREAM_CTRL_ID) continue;
      const item = this.#byId.get(raw.id);
      if (item === undefined) {
        this.onWarning(`item with ID 0x${raw.id.toString(16)} received but there is no descriptor`);
        continue;
      }
      item.setFromRaw(raw, newOrder, { copy: options.copy });
      item.version++;
      updated.set(item.name, item);
    }
    return updated;
  }
}
