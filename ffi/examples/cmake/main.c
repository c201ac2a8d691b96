/* A message through a shmring channel, from a program built against an installed
 * library: by CMake (CMakeLists.txt beside it, find_package(shmring)) or by
 * pkg-config (`cc main.c $(pkg-config --static --cflags --libs shmring-static)`).
 * tests/packaging.rs builds it both ways and runs it. Prints "ok: ..." and exits 0
 * when the message came back intact. */
#include <shmring.h>

#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                   \
    do {                                                                              \
        int rc_ = (call);                                                             \
        if (rc_ != SHMRING_OK) {                                                      \
            fprintf(stderr, "%s: %s: %s\n", #call, shmring_strerror(rc_),             \
                    shmring_last_error_message());                                    \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

int main(void) {
    /* An anonymous channel (a memfd): nothing to clean up if the program dies. */
    shmring_channel *ch = NULL;
    CHECK(shmring_channel_create_memfd(1 << 12, NULL, &ch));
    shmring_sender *tx = NULL;
    shmring_receiver *rx = NULL;
    CHECK(shmring_sender_new(ch, &tx));
    CHECK(shmring_receiver_new(ch, &rx));
    CHECK(shmring_channel_close(ch));

    const char message[] = "hello through shared memory";
    CHECK(shmring_msg_sender_send(shmring_sender_as_msg_sender(tx), message, sizeof message));
    char buf[64];
    size_t len = 0;
    CHECK(shmring_msg_receiver_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &len));
    if (len != sizeof message || memcmp(buf, message, len) != 0) {
        fprintf(stderr, "received %zu bytes, not the message sent\n", len);
        return 1;
    }
    CHECK(shmring_sender_close(tx));
    CHECK(shmring_receiver_close(rx));
    printf("ok: %s (libshmring_c %s)\n", buf, shmring_version());
    return 0;
}
