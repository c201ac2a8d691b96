/*
 * The header's constants, checked at compile time in C11 (_Static_assert) against a
 * C mirror of the segment layout (ARCHITECTURE.md, "Segment layouts"), then at run
 * time against the library and a live segment read through the C mirror.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmring.h"

struct header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t ring_kind;
    uint64_t capacity;
    uint64_t data_offset;
    uint64_t segment_size;
    uint32_t frame_header_size;
    uint32_t frame_align;
    uint64_t max_message_len;
    uint32_t flags;
};

struct side_line {
    uint64_t position; /* write_position (producer) or read_position (consumer) */
    uint32_t owner;
    uint32_t claims;
    uint32_t pid; /* the holder's pid: a hint, 0 when unclaimed (version 4) */
};

struct signal_line {
    uint32_t data_signal;
    uint32_t space_signal;
};

struct segment_header {
    alignas(SHMRING_SEGMENT_ALIGN) struct header header;
    alignas(SHMRING_SEGMENT_ALIGN) struct side_line producer;
    alignas(SHMRING_SEGMENT_ALIGN) struct side_line consumer;
    alignas(SHMRING_SEGMENT_ALIGN) struct signal_line signals;
};

_Static_assert(SHMRING_LAYOUT_VERSION == 4, "layout version");
_Static_assert(SHMRING_DATA_OFFSET == 512, "data offset");
_Static_assert(SHMRING_SEGMENT_ALIGN == 128, "segment alignment");
_Static_assert(sizeof(struct segment_header) == SHMRING_DATA_OFFSET, "header size");
_Static_assert(alignof(struct segment_header) == SHMRING_SEGMENT_ALIGN, "header alignment");
_Static_assert(offsetof(struct segment_header, header) == SHMRING_HEADER_OFFSET, "header line");
_Static_assert(offsetof(struct segment_header, producer) == SHMRING_PRODUCER_LINE_OFFSET,
               "producer line");
_Static_assert(offsetof(struct segment_header, consumer) == SHMRING_CONSUMER_LINE_OFFSET,
               "consumer line");
_Static_assert(offsetof(struct segment_header, signals) == SHMRING_SIGNAL_LINE_OFFSET,
               "signal line");
_Static_assert(offsetof(struct header, flags) == 56, "flags word");
_Static_assert(offsetof(struct side_line, pid) == 16, "pid word");
_Static_assert(offsetof(struct header, max_message_len) == 48, "max_message_len");
_Static_assert(SHMRING_FRAME_HEADER_SIZE == 8 && SHMRING_FRAME_ALIGN == 8, "frames");
_Static_assert(SHMRING_MIN_CAPACITY == 64 && SHMRING_MAX_CAPACITY == 536870912, "capacities");
_Static_assert(SHMRING_DATA_OFFSET % SHMRING_SEGMENT_ALIGN == 0, "data region alignment");
_Static_assert(sizeof(shmring_channel_options) == SHMRING_CHANNEL_OPTIONS_SIZE, "options size");
_Static_assert(offsetof(shmring_channel_options, spin_ns) == 24, "options layout");
_Static_assert(sizeof(shmring_status) == 4 && sizeof(shmring_wait_strategy) == 4, "enum sizes");
_Static_assert(SHMRING_OK == 0 && SHMRING_E_INVALID_ARGUMENT == -1 && SHMRING_E_PANIC == -19,
               "status codes");
_Static_assert(sizeof(shmring_message) == sizeof(void *) + sizeof(size_t), "message");

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "static_asserts.c:%d: %s\n", __LINE__, #cond); \
            return 1;                                                     \
        }                                                                 \
    } while (0)

int main(void) {
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", SHMRING_VERSION_MAJOR, SHMRING_VERSION_MINOR,
             SHMRING_VERSION_PATCH);
    CHECK(strcmp(shmring_version(), version) == 0);
    CHECK(shmring_layout_version() == SHMRING_LAYOUT_VERSION);

    /* A live segment, read through the C mirror. */
    shmring_channel *channel = NULL;
    CHECK(shmring_channel_create_memfd(4096, NULL, &channel) == SHMRING_OK);
    int fd = -1;
    CHECK(shmring_channel_fd(channel, &fd) == SHMRING_OK);
    size_t size = SHMRING_DATA_OFFSET + 4096;
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    CHECK((uintptr_t)map % SHMRING_SEGMENT_ALIGN == 0);
    const struct segment_header *seg = map;
    CHECK(seg->header.magic == (uint64_t)SHMRING_MAGIC);
    CHECK(seg->header.layout_version == SHMRING_LAYOUT_VERSION);
    CHECK(seg->header.capacity == 4096);
    CHECK(seg->header.data_offset == SHMRING_DATA_OFFSET);
    CHECK(seg->header.segment_size == size);
    CHECK(seg->header.frame_header_size == SHMRING_FRAME_HEADER_SIZE);
    CHECK(seg->header.frame_align == SHMRING_FRAME_ALIGN);
    CHECK(seg->header.max_message_len == 4096 / 2 - 8);
    CHECK(seg->producer.owner == 0 && seg->consumer.owner == 0);

    shmring_sender *tx = NULL;
    CHECK(shmring_sender_new(channel, &tx) == SHMRING_OK);
    CHECK(seg->producer.owner != 0 && seg->producer.claims == 1);
    CHECK(seg->producer.pid == (uint32_t)getpid() && seg->consumer.pid == 0);
    CHECK(shmring_msg_sender_send(shmring_sender_as_msg_sender(tx), "12345", 5) == SHMRING_OK);
    CHECK(seg->producer.position == 16); /* one frame: 8-byte header + 5 bytes, aligned */
    CHECK(shmring_sender_close(tx) == SHMRING_OK);
    CHECK(seg->producer.owner == 0 && seg->producer.pid == 0);
    munmap(map, size);
    CHECK(shmring_channel_close(channel) == SHMRING_OK);
    printf("ok\n");
    return 0;
}
