/** SPEAD's reserved item IDs and stream control values (docs/PROTOCOL.md), as spead2 names them. */
/** Reserved item IDs (spead2's `*_ID` constants). */
export const NULL_ID = 0x00;
/** Item ID of the heap counter. */
export const HEAP_CNT_ID = 0x01;
/** Item ID of the total heap payload length. */
export const HEAP_LENGTH_ID = 0x02;
/** Item ID of a packet's payload offset within the heap. */
export const PAYLOAD_OFFSET_ID = 0x03;
/** Item ID of a packet's payload length. */
export const PAYLOAD_LENGTH_ID = 0x04;
/** Item ID of an item descriptor. */
export const DESCRIPTOR_ID = 0x05;
/** Item ID of stream control (start, stop, descriptor reissue/update). */
export const STREAM_CTRL_ID = 0x06;
export const DESCRIPTOR_NAME_ID = 0x10;
export const DESCRIPTOR_DESCRIPTION_ID = 0x11;
export const DESCRIPTOR_SHAPE_ID = 0x12;
export const DESCRIPTOR_FORMAT_ID = 0x13;
export const DESCRIPTOR_ID_ID = 0x14;
export const DESCRIPTOR_DTYPE_ID = 0x15;

/** Stream control values carried by STREAM_CTRL. */
export const CTRL_STREAM_START = 0;
/** Stream control value: descriptors are being reissued. */
export const CTRL_DESCRIPTOR_REISSUE = 1;
/** Stream control value: the stream ends. */
export const CTRL_STREAM_STOP = 2;
/** Stream control value: descriptors have changed. */
export const CTRL_DESCRIPTOR_UPDATE = 3;
