import { checkOptions, SpeadError } from "../errors.ts";

/** How the send rate is enforced (spead2's `RateMethod`); only software exists here. */
export enum RateMethod {
  SW = 0,
  HW = 1,
  AUTO = 2,
}

/** Order in which the packets of a group of heaps are sent (spead2's `GroupMode`). */
export enum GroupMode {
  ROUND_ROBIN = 0,
  SERIAL = 1,
}

/** Options of {@link StreamConfig}; every field defaults to spead2's default. */
export interface StreamConfigOptions {
  /** Largest packet, in bytes (default 1472). */
  maxPacketSize?: number;
  /** Rate limit in bytes/s; 0 = unlimited (default). */
  rate?: number;
  /** Bytes sent as one burst before the rate limiter waits (default 65536). */
  burstSize?: number;
  /** Heaps in flight at most (default 4). */
  maxHeaps?: number;
  /** Hard rate limit relative to `rate`, for catching up after a stall (default 1.05). */
  burstRateRatio?: number;
  /** How the rate is enforced; only software exists here (default AUTO). */
  rateMethod?: RateMethod;
}

/** Send stream configuration (spead2's `send.StreamConfig`). */
export class StreamConfig {
  /** spead2's default packet size. */
  static readonly DEFAULT_MAX_PACKET_SIZE = 1472;
  /** spead2's default burst size. */
  static readonly DEFAULT_BURST_SIZE = 65536;
  /** spead2's default heaps in flight. */
  static readonly DEFAULT_MAX_HEAPS = 4;
  /** spead2's default burst rate ratio. */
  static readonly DEFAULT_BURST_RATE_RATIO = 1.05;

  /** Largest packet, rounded down to a multiple of 8 when packetising. */
  readonly maxPacketSize: number;
  /** Bytes per second of SPEAD packets (headers included); 0 = unlimited. */
  readonly rate: number;
  /** Bytes per burst. */
  readonly burstSize: number;
  /** Heaps that may be in flight at once; more are refused (`queue_full`). */
  readonly maxHeaps: number;
  /** Hard rate limit relative to `rate`. */
  readonly burstRateRatio: number;
  /** How the rate is enforced. */
  readonly rateMethod: RateMethod;

  /** Checks the options; throws `invalid_argument` naming a value outside its range. */
  constructor(options: StreamConfigOptions = {}) {
    checkOptions("options", options, "send.StreamConfigOptions ({ maxPacketSize, rate, maxHeaps, ... })");
    this.maxPacketSize = options.maxPacketSize ?? StreamConfig.DEFAULT_MAX_PACKET_SIZE;
    this.rate = options.rate ?? 0;
    this.burstSize = options.burstSize ?? StreamConfig.DEFAULT_BURST_SIZE;
    this.maxHeaps = options.maxHeaps ?? StreamConfig.DEFAULT_MAX_HEAPS;
    this.burstRateRatio = options.burstRateRatio ?? StreamConfig.DEFAULT_BURST_RATE_RATIO;
    this.rateMethod = options.rateMethod ?? RateMethod.AUTO;
    const bad = (what: string) => new SpeadError("invalid_argument", what);
    if (!Number.isInteger(this.maxPacketSize) || this.maxPacketSize < 56 || this.maxPacketSize > 0xffff_ffff) {
      throw bad(`maxPacketSize ${this.maxPacketSize} must be an integer >= 56`);
    }
    if (!(this.rate >= 0) || !Number.isFinite(this.rate)) throw bad(`rate ${this.rate} must be >= 0`);
    if (!Number.isInteger(this.burstSize) || this.burstSize < 0) throw bad(`burstSize ${this.burstSize}`);
    if (!Number.isInteger(this.maxHeaps) || this.maxHeaps < 1) throw bad(`maxHeaps ${this.maxHeaps} must be >= 1`);
    if (!(this.burstRateRatio >= 1)) throw bad(`burstRateRatio ${this.burstRateRatio} must be >= 1`);
  }
}
