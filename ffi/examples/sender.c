/*
 * The C twin of `cargo run -p shmring --example sender`: opens the channel "demo"
 * (or argv[1]) made by ./receiver and sends every line typed (Ctrl-D ends).
 */
#include <stdio.h>
#include <string.h>

#include <shmring.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, shmring_strerror(rc), shmring_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "demo";
    shmring_channel *channel = NULL;
    int rc = shmring_channel_open(name, NULL, &channel);
    if (rc == SHMRING_E_NOT_FOUND) {
        fprintf(stderr, "no channel \"%s\": start ./receiver first\n", name);
        return 1;
    }
    if (rc != SHMRING_OK) return fail("open", rc);
    shmring_sender *tx = NULL;
    rc = shmring_sender_new(channel, &tx);
    (void)shmring_channel_close(channel);
    if (rc != SHMRING_OK) return fail("sender", rc);
    /* The sender's copying calls are the message family's: a view, not a copy. */
    shmring_msg_sender *out = shmring_sender_as_msg_sender(tx);

    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\n");
        rc = shmring_msg_sender_send(out, line, len); /* waits while the ring is full */
        if (rc != SHMRING_OK) {
            fail("send", rc);
            break;
        }
    }
    (void)shmring_sender_close(tx);
    return rc == SHMRING_OK ? 0 : 1;
}
