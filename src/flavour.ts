import { SpeadError } from "./errors.ts";

/** PySPEAD 0.5.2 compatibility flags (spead2's `BUG_COMPAT_*`). */
export const BUG_COMPAT_DESCRIPTOR_WIDTHS = 1;
/** Shapes have bit 1 (not bit 0) set for variable dimensions. */
export const BUG_COMPAT_SHAPE_BIT_1 = 2;
/** numpy arrays are sent with the opposite byte order to the one declared. */
export const BUG_COMPAT_SWAP_ENDIAN = 4;
/** All of PySPEAD 0.5.2's quirks (the three flags above). */
export const BUG_COMPAT_PYSPEAD_0_5_2 = 7;

/**
 * A SPEAD flavour: protocol version, item pointer width, heap address width
 * and bug-compatibility flags. Only SPEAD-64-XX flavours exist (as in spead2);
 * the default is SPEAD-64-40 with no bug compatibility.
 */
export class Flavour {
  /** SPEAD protocol version (always 4). */
  readonly version: number;
  /** Width of an item pointer in bits (always 64). */
  readonly itemPointerBits: number;
  /** Bits of an item pointer used for addresses and immediates (8..56, a multiple of 8). */
  readonly heapAddressBits: number;
  /** `BUG_COMPAT_*` flags (0..7). */
  readonly bugCompat: number;
  readonly #maxId: bigint;
  readonly #maxIdNumber: number;

  /** Checks the flavour as spead2 does; throws `invalid_flavour` for one spead2 would refuse. */
  constructor(version = 4, itemPointerBits = 64, heapAddressBits = 40, bugCompat = 0) {
    if (version !== 4) throw new SpeadError("invalid_flavour", `version ${version} is not supported (only 4)`);
    if (itemPointerBits !== 64) {
      throw new SpeadError("invalid_flavour", `item pointer bits ${itemPointerBits} is not supported (only 64)`);
    }
    if (
      !Number.isInteger(heapAddressBits) || heapAddressBits <= 0 || heapAddressBits >= 64 ||
      heapAddressBits % 8 !== 0
    ) {
      throw new SpeadError("invalid_flavour", `heap address bits ${heapAddressBits} must be a multiple of 8 in 8..56`);
    }
    if (!Number.isInteger(bugCompat) || bugCompat < 0 || (bugCompat & ~BUG_COMPAT_PYSPEAD_0_5_2) !== 0) {
      throw new SpeadError("invalid_flavour", `bug_compat ${bugCompat} has bits outside 0x7`);
    }
    this.version = version;
    this.itemPointerBits = itemPointerBits;
    this.heapAddressBits = heapAddressBits;
    this.bugCompat = bugCompat;
    this.#maxId = (1n << BigInt(63 - heapAddressBits)) - 1n;
    this.#maxIdNumber = Number(this.#maxId);
  }

  /**
   * @internal Whether `id` is an item ID this flavour can carry: an integer in
   * 0..maxId (compared as a number below 2^53, without a BigInt per call).
   */
  fitsId(id: number): boolean {
    if (!Number.isInteger(id) || id < 0) return false;
    return id <= Number.MAX_SAFE_INTEGER ? id <= this.#maxIdNumber : BigInt(id) <= this.#maxId;
  }

  /** Bytes of the address / immediate field of an item pointer. */
  get addressBytes(): number {
    return this.heapAddressBits / 8;
  }

  /** Largest item ID this flavour can carry. */
  get maxId(): bigint {
    return this.#maxId;
  }

  /** Largest heap cnt / immediate value this flavour can carry. */
  get maxValue(): bigint {
    return (1n << BigInt(this.heapAddressBits)) - 1n;
  }

  /** Whether both flavours have the same four fields. */
  equals(other: Flavour): boolean {
    return this.version === other.version && this.itemPointerBits === other.itemPointerBits &&
      this.heapAddressBits === other.heapAddressBits && this.bugCompat === other.bugCompat;
  }

  /** spead2's text form, e.g. `SPEAD-64-40`. */
  toString(): string {
    return `SPEAD-${this.itemPointerBits}-${this.heapAddressBits}` +
      (this.bugCompat ? ` (bug_compat ${this.bugCompat})` : "");
  }
}
