// The header from C++17: it compiles without warnings, links, and a zero-copy
// round trip works.
#include <cstdio>
#include <cstring>

#include "shmring.h"

static_assert(sizeof(shmring_channel_options) == SHMRING_CHANNEL_OPTIONS_SIZE, "options size");
static_assert(SHMRING_DATA_OFFSET == 512, "data offset");

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            std::fprintf(stderr, "header_cpp.cpp:%d: %s: %s\n", __LINE__, #cond, \
                         shmring_last_error_message());                     \
            return 1;                                                       \
        }                                                                   \
    } while (0)

int main() {
    shmring_channel_options options;
    CHECK(shmring_channel_options_init(&options) == SHMRING_OK);
    options.wait_strategy = SHMRING_WAIT_PARK;
    shmring_channel *channel = nullptr;
    CHECK(shmring_channel_create_memfd(4096, &options, &channel) == SHMRING_OK);
    shmring_sender *tx = nullptr;
    shmring_receiver *rx = nullptr;
    CHECK(shmring_sender_new(channel, &tx) == SHMRING_OK);
    CHECK(shmring_receiver_new(channel, &rx) == SHMRING_OK);
    CHECK(shmring_channel_close(channel) == SHMRING_OK);

    uint8_t *grant = nullptr;
    CHECK(shmring_sender_grant(tx, 32, &grant) == SHMRING_OK);
    std::memcpy(grant, "from C++", 8);
    CHECK(shmring_sender_commit(tx, 8) == SHMRING_OK);

    const uint8_t *data = nullptr;
    size_t len = 0;
    CHECK(shmring_receiver_read_timeout(rx, 1000, &data, &len) == SHMRING_OK);
    CHECK(len == 8 && std::memcmp(data, "from C++", 8) == 0);
    CHECK(shmring_receiver_release(rx) == SHMRING_OK);
    CHECK(shmring_receiver_try_read(rx, &data, &len) == SHMRING_E_EMPTY);

    CHECK(shmring_sender_close(tx) == SHMRING_OK);
    CHECK(shmring_receiver_close(rx) == SHMRING_OK);
    std::printf("ok\n");
    return 0;
}
