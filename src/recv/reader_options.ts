/** What UDP and TCP readers take and report (recv.Stream and chunk streams). */

/** Options of {@link Stream.addUdpReader}; defaults are spead2's. */
export interface UdpReaderOptions {
  /** Local address to bind (IPv4/IPv6 literal); default all IPv4 interfaces. Multicast groups are joined. */
  bindHostname?: string;
  /** Largest datagram accepted (default 9200); longer ones are dropped and counted. */
  maxSize?: number;
  /** Socket receive buffer to ask for (default 8 MiB; the kernel may cap it at rmem_max). */
  bufferSize?: number;
  /** IPv4 interface address for multicast (or the bind address with 0.0.0.0). */
  interfaceAddress?: string;
  /** IPv6 interface index for multicast. */
  interfaceIndex?: number;
}

/** What the UDP reader got from the kernel. */
export interface UdpReaderInfo {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** SO_RCVBUF as the kernel reports it. */
  readonly bufferSize: number;
  /** Whether UDP GRO is enabled on the socket. */
  readonly gro: boolean;
  /**
   * Whether the buffer went past `net.core.rmem_max` (SO_RCVBUFFORCE, allowed
   * with CAP_NET_ADMIN). Without that right the kernel caps it silently;
   * compare `bufferSize` (which Linux reports doubled) with what was asked.
   */
  readonly bufferForced: boolean;
}

/** Options of `addUdpPcapFileReader`. */
export interface PcapFileReaderOptions {
  /**
   * Keep only UDP datagrams to this destination port (default: every UDP
   * datagram in the capture). spead2 takes a libpcap (BPF) filter expression
   * here; this library reads captures without libpcap and offers this filter,
   * the one a capture of several streams usually needs.
   */
  port?: number;
}

/** Options of {@link Stream.addTcpReader}; defaults are spead2's. */
export interface TcpReaderOptions {
  /** Local address to listen on (IPv4/IPv6 literal); default all IPv4 interfaces. */
  bindHostname?: string;
  /**
   * Largest packet accepted (default 65536); a longer one is counted in
   * `stats.packets_rejected_oversize` and its bytes are passed over.
   */
  maxSize?: number;
  /** Socket receive buffer to ask for (default 208 KiB; 0: the kernel's default; the kernel may cap it at rmem_max). */
  bufferSize?: number;
}

/** What the TCP reader got from the kernel. */
export interface TcpReaderInfo {
  /** The listening port (useful with port 0). */
  readonly port: number;
  /** SO_RCVBUF as the kernel reports it (Linux reports double the size granted). */
  readonly bufferSize: number;
}
