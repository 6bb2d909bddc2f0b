//! SPEAD wire constants, defined once (docs/PROTOCOL.md). The receive decoder
//! (zig/recv/packet.zig), the packetiser (zig/send/packetiser.zig) and the
//! descriptor codec (zig/send/descriptor.zig) use these; `zig build gen` copies
//! them into ffi/abi.gen.ts and include/spead.h.

/// Magic byte 0x53 and version 4: the top 16 bits of every packet header.
pub const magic_version = 0x5304;
/// The 8-byte header: magic, version, item pointer width, heap address width, 2 reserved bytes, item_count.
pub const header_size = 8;
/// Every item pointer is 64 bits.
pub const pointer_size = 8;

pub const id_null: u64 = 0x00;
pub const id_heap_cnt: u64 = 0x01;
pub const id_heap_length: u64 = 0x02;
pub const id_payload_offset: u64 = 0x03;
pub const id_payload_length: u64 = 0x04;
pub const id_descriptor: u64 = 0x05;
pub const id_stream_ctrl: u64 = 0x06;

/// Item ids inside a descriptor heap.
pub const id_descriptor_name: u64 = 0x10;
pub const id_descriptor_description: u64 = 0x11;
pub const id_descriptor_shape: u64 = 0x12;
pub const id_descriptor_format: u64 = 0x13;
pub const id_descriptor_id: u64 = 0x14;
pub const id_descriptor_dtype: u64 = 0x15;

/// STREAM_CTRL values.
pub const ctrl_stream_start: u64 = 0;
pub const ctrl_stream_stop: u64 = 2;
