/*
 * The C twin of `cargo run -p shmring --example receiver`: creates the channel
 * "demo" (or argv[1]) and prints every message, read in place, until the sender
 * has gone. Run ./sender in another terminal (or the Rust sender example).
 */
#include <stdio.h>
#include <stdlib.h>

#include <shmring.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmring_strerror(rc), shmring_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "demo";
    shmring_channel_options options;
    int rc = shmring_channel_options_init(&options);
    if (rc != SHMRING_OK) return fail("options", rc);
    options.flags = SHMRING_OPTION_RECLAIM; /* replace a channel left by a crash */

    /* 0600, in /dev/shm/shmring.demo, removed when the receiver closes. */
    shmring_channel *channel = NULL;
    rc = shmring_channel_create(name, 1 << 16, &options, &channel);
    if (rc != SHMRING_OK) return fail("create", rc);
    shmring_receiver *rx = NULL;
    rc = shmring_receiver_new(channel, &rx);
    (void)shmring_channel_close(channel); /* the receiver keeps the segment */
    if (rc != SHMRING_OK) return fail("receiver", rc);

    printf("receiving on \"%s\" (shmring %s)\n", name, shmring_version());
    for (;;) {
        const uint8_t *data = NULL;
        size_t len = 0;
        rc = shmring_receiver_read(rx, &data, &len); /* waits for a message */
        if (rc == SHMRING_E_DISCONNECTED) {
            printf("the sender has gone\n");
            break;
        }
        if (rc != SHMRING_OK) {
            fail("read", rc);
            break;
        }
        printf("%.*s\n", (int)len, (const char *)data);
        rc = shmring_receiver_release(rx); /* the bytes are the ring's again */
        if (rc != SHMRING_OK) return fail("release", rc);
    }
    (void)shmring_receiver_close(rx);
    return rc == SHMRING_E_DISCONNECTED ? 0 : 1;
}
