/* Tutorial 12's place callback as a C place function (tests/chunk_stream.test.ts
 * builds this with `zig cc` and compares its chunks with the declared rule's).
 * user_data: two int64 values, heap size and chunk size. Items: HEAP_LENGTH, 0x1600. */
#include "../../include/spead_chunk.h"

void place_tut12(spead_chunk_place_data *data, size_t data_size, void *user_data)
{
    const int64_t *sizes = (const int64_t *) user_data;
    int64_t heap_size = sizes[0];
    int64_t chunk_size = sizes[1];
    int64_t payload_size = data->items[0];
    int64_t timestamp = data->items[1];
    (void) data_size;
    if (timestamp >= 0 && payload_size == heap_size)
    {
        data->chunk_id = timestamp / chunk_size;
        data->heap_offset = timestamp % chunk_size;
        data->heap_index = data->heap_offset / heap_size;
    }
}

/* Asks for a place far outside any chunk: the stream must refuse it. */
void place_out_of_bounds(spead_chunk_place_data *data, size_t data_size, void *user_data)
{
    (void) data_size;
    (void) user_data;
    data->chunk_id = 0;
    data->heap_index = 1u << 20;
    data->heap_offset = (size_t) 1 << 40;
}
