/*
 * Chunk-stream place functions for libspead (docs/ABI.md "Chunk streams").
 *
 * A place function decides, for the first packet of each heap, which chunk the
 * heap belongs to and where in the chunk its payload goes. It runs on a reader
 * thread, under the stream's lock, once per heap: keep it short, and never call
 * back into JavaScript. The layout is spead2's chunk_place_data, so a C place
 * function written for spead2 compiles against this header unchanged (use the
 * spead_ names, or define the spead2 ones with the macros below).
 *
 * Load it from TypeScript with recv.PlaceFunction.load(path, symbol, userData);
 * user_data points at the library's own copy of userData (16-byte aligned).
 */
#ifndef SPEAD_CHUNK_H
#define SPEAD_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spead_chunk_place_data {
    const uint8_t *packet;   /* the heap's first packet (header, item pointers, payload) */
    size_t packet_size;      /* bytes at packet */
    int64_t *items;          /* values of the config's items, in order; -1 when absent */
    int64_t chunk_id;        /* output: chunk of the heap; leave -1 to reject the heap */
    size_t heap_index;       /* output: the heap's byte in chunk.present */
    size_t heap_offset;      /* output: byte offset of the heap's payload in chunk.data */
    uint64_t *batch_stats;   /* NULL: custom statistics are not supported */
    uint8_t *extra;          /* scratch of heap_extra_max bytes (spead2: max_heap_extra) to copy into chunk.extra (NULL if 0) */
    size_t extra_offset;     /* output: where in chunk.extra to copy extra */
    size_t extra_size;       /* output: how many bytes of extra to copy (<= heap_extra_max) */
} spead_chunk_place_data;

/* Placements outside the chunk (heap_offset + heap length > data size,
 * heap_index >= present size, extra past the extra size) are refused and
 * counted in rejected_heaps, never written. */
typedef void (*spead_chunk_place_fn)(spead_chunk_place_data *data, size_t data_size, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* SPEAD_CHUNK_H */
