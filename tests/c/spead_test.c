/*
 * The C contract (include/spead.h) exercised from C, built with `zig cc` by
 * scripts/test.sh: encode a heap and decode it back through a buffer reader,
 * then send it over UDP on 127.0.0.1 (endpoint records) and receive it; encode
 * a descriptor from its record and decode it back; allocate a native buffer.
 * Exits 0 when every check holds; prints the failing check otherwise.
 */
#include <spead.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

#define CHECK_OK(call) CHECK((call) == SPEAD_OK)

static const char payload[] = "SPEAD from C";
enum { item_id = 0x1234, heap_cnt = 7, heap_address_bits = 48, packet_size_max = 1472 };

/* One heap: a STREAM_CTRL immediate is not needed; one addressed item. */
static void item_table(uint64_t items[4]) {
    items[0] = item_id;
    items[1] = (uint64_t)(uintptr_t)payload; /* address of the bytes */
    items[2] = sizeof payload;               /* length */
    items[3] = 0;                            /* flags: addressed */
}

static struct spead_recv_stream_config recv_config(void) {
    struct spead_recv_stream_config c;
    memset(&c, 0, sizeof c);
    c.heaps_max = 4;
    c.substreams = 1;
    c.allow_unsized_heaps = 1;
    c.stop_on_stop_item = 1;
    c.ring_heaps = 4;
    c.contiguous_only = 1;
    c.reader_core = 0xFFFFFFFFu;
    return c;
}

/* Pops one heap and checks its item: the payload bytes and the cnt. */
static void expect_heap(uint32_t stream) {
    uint32_t heap = 0;
    CHECK_OK(spead_recv_stream_pop(stream, 5000, &heap));
    uint64_t words[64];
    uint32_t used = 0;
    CHECK_OK(spead_recv_heap_describe(heap, words, 64, &used));
    const struct spead_heap_description *d = (const struct spead_heap_description *)words;
    const struct spead_item_description *items = (const struct spead_item_description *)(d + 1);
    CHECK(d->cnt == heap_cnt);
    CHECK(d->flags & 1); /* complete */
    CHECK(d->item_count == 1);
    if (d->item_count == 1) {
        CHECK(items[0].id == item_id);
        CHECK(!items[0].is_immediate);
        const uint8_t *bytes = (const uint8_t *)(uintptr_t)d->payload_address + items[0].value;
        CHECK(d->payload_size >= sizeof payload);
        CHECK(memcmp(bytes, payload, sizeof payload) == 0);
    }
    CHECK_OK(spead_recv_heap_release(heap));
    CHECK(spead_recv_heap_release(heap) == SPEAD_INVALID_HANDLE);
}

static void encode_decode(void) {
    uint64_t items[4];
    item_table(items);
    uint64_t cnt = heap_cnt;
    uint8_t bytes[4096];
    uint32_t len = 0;
    struct spead_heap_encoding encoding;
    CHECK_OK(spead_heap_encoded_size(items, 1, heap_address_bits, packet_size_max, 0, &encoding));
    CHECK(encoding.packet_count == 1);
    CHECK_OK(spead_heap_encode(items, 1, heap_address_bits, 0, &cnt, packet_size_max, 0, bytes, sizeof bytes, &len));
    CHECK(len > SPEAD_HEADER_SIZE);
    CHECK(len == encoding.encoded_size);
    CHECK(bytes[0] == (SPEAD_MAGIC_VERSION >> 8) && bytes[1] == (SPEAD_MAGIC_VERSION & 0xff));
    CHECK(spead_heap_encode(items, 1, heap_address_bits, 0, &cnt, packet_size_max, 0, bytes, 8, &len) == SPEAD_BUFFER_TOO_SMALL);

    struct spead_recv_stream_config config = recv_config();
    uint32_t stream = 0;
    CHECK_OK(spead_recv_stream_create(&config, &stream));
    CHECK_OK(spead_recv_stream_add_buffer(stream, bytes, len));
    expect_heap(stream);
    CHECK(spead_recv_stream_pop(stream, 5000, &(uint32_t){0}) == SPEAD_STOPPED);
    CHECK_OK(spead_recv_stream_destroy(stream));
}

static void udp_loopback(void) {
    struct spead_recv_stream_config config = recv_config();
    uint32_t stream = 0;
    CHECK_OK(spead_recv_stream_create(&config, &stream));
    struct spead_endpoint endpoint;
    memset(&endpoint, 0, sizeof endpoint);
    endpoint.family = 4;
    const uint8_t loopback[4] = {127, 0, 0, 1};
    memcpy(endpoint.address, loopback, sizeof loopback);
    struct spead_udp_reader_info info;
    memset(&info, 0, sizeof info);
    CHECK_OK(spead_recv_stream_add_udp_reader(stream, &endpoint, NULL, 0, 0, 0, &info));
    CHECK(info.port != 0);
    CHECK(info.gro <= 1);

    endpoint.port = info.port;
    struct spead_send_stream_config send_config = {
        .packet_size_max = packet_size_max,
        .rate = 0,
        .burst_size = 65536,
        .heaps_max = 4,
        .burst_rate_ratio = 1.05,
        .buffer_size = 0,
        .ttl = -1,
        .interface_index = 0,
        .flags = 0,
        .io_core = -1,
    };
    uint32_t sender = 0;
    CHECK_OK(spead_udp_send_stream_create(&endpoint, 1, NULL, &send_config, &sender));

    uint64_t items[4];
    item_table(items);
    struct spead_heap_record heap = {
        .first_item = 0,
        .item_count = 1,
        .cnt = heap_cnt,
        .substream_index = 0,
        .heap_address_bits = heap_address_bits,
        .rate = -1,
        .repeat_pointers = 0,
        .reserved = 0,
    };
    uint64_t token = 42;
    CHECK_OK(spead_udp_send_stream_send(sender, &heap, 1, items, 1, 1, &token, NULL));
    CHECK_OK(spead_udp_send_stream_flush(sender, 5000));
    struct spead_send_completion done[4];
    uint32_t n_done = 0;
    CHECK_OK(spead_udp_send_stream_poll(sender, done, 4, &n_done));
    CHECK(n_done == 1);
    if (n_done == 1) {
        CHECK(done[0].token == token);
        CHECK(done[0].status == 0);
        CHECK(done[0].bytes_sent > sizeof payload);
    }
    expect_heap(stream);
    CHECK_OK(spead_udp_send_stream_destroy(sender));
    CHECK_OK(spead_recv_stream_destroy(stream));
}

static void descriptor(void) {
    static const char name[] = "timestamp";
    static const char description[] = "Index of the first sample";
    const uint64_t format[2] = {'u', 40};
    struct spead_descriptor_fields fields;
    memset(&fields, 0, sizeof fields);
    fields.id = 0x1600;
    fields.name_address = (uint64_t)(uintptr_t)name;
    fields.name_len = sizeof name - 1;
    fields.description_address = (uint64_t)(uintptr_t)description;
    fields.description_len = sizeof description - 1;
    fields.format_address = (uint64_t)(uintptr_t)format;
    fields.format_count = 1;
    fields.heap_address_bits = 40;
    uint8_t packet[256];
    uint32_t len = 0;
    CHECK_OK(spead_descriptor_encode(&fields, packet, sizeof packet, &len));
    CHECK(len == 118); /* spead2's bytes for this descriptor (zig/abi/send.zig) */

    uint64_t words[64];
    uint32_t used = 0;
    CHECK_OK(spead_descriptor_decode(0, packet, len, words, 64, &used));
    const struct spead_descriptor_decoded *d = (const struct spead_descriptor_decoded *)words;
    CHECK(d->id == 0x1600);
    CHECK(d->format_count == 1 && d->shape_count == 0);
    CHECK(words[sizeof *d / 8] == 'u' && words[sizeof *d / 8 + 1] == 40);
    CHECK(d->name_len == sizeof name - 1);
    CHECK(d->name_offset + d->name_len <= used * 8);
    if (d->name_offset + d->name_len <= used * 8) CHECK(memcmp((const uint8_t *)words + d->name_offset, name, sizeof name - 1) == 0);
    CHECK(d->dtype_len == UINT64_MAX); /* no numpy header */
}

static void native_buffer(void) {
    struct spead_buffer_info info;
    CHECK_OK(spead_buffer_alloc(5000, 0, 0, &info));
    CHECK(info.address != 0 && info.mapped_size >= 5000 && info.huge <= 1);
    memset((void *)(uintptr_t)info.address, 0x5a, 5000);
    CHECK_OK(spead_buffer_free(info.handle));
    CHECK(spead_buffer_free(info.handle) == SPEAD_INVALID_HANDLE);
}

int main(void) {
    CHECK(spead_library_version() >= 1);
    CHECK(spead_flavour_check(4, 64, 44, 0) == SPEAD_INVALID_FLAVOUR);
    encode_decode();
    udp_loopback();
    descriptor();
    native_buffer();
    if (failures) {
        fprintf(stderr, "C test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("C test: ok (encode/decode, UDP loopback, descriptor, native buffer)\n");
    return 0;
}
