/*
 * Every documented failure the C caller can provoke, one by one: NULL handles and
 * pointers, bad sizes and names, options, roles, full and empty channels, oversize
 * messages, too-small buffers, borrowed handles, a gone peer.
 *
 *   bad_input NAME_PREFIX
 *
 * Exits 0 if every call returned its documented code; else prints the first
 * mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#include "expect.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct reentry {
    shmring_receiver *rx;
    int calls, recv_rc, close_rc, read_rc;
};

static void reenter(void *context, const uint8_t *data, size_t len) {
    struct reentry *r = context;
    uint8_t buf[16];
    size_t n = 0;
    const uint8_t *p = NULL;
    (void)data;
    (void)len;
    r->calls++;
    r->recv_rc = shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(r->rx), buf, sizeof buf, &n);
    r->read_rc = shmring_receiver_try_read(r->rx, &p, &n);
    r->close_rc = shmring_receiver_close(r->rx);
}

static void count_only(void *context, const uint8_t *data, size_t len) {
    (void)data;
    (void)len;
    ++*(int *)context;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bad_input NAME_PREFIX\n");
        return 2;
    }
    char name[128], other[128], missing[128], open_mode[128], by_fd[128];
    snprintf(name, sizeof name, "%s-a", argv[1]);
    snprintf(other, sizeof other, "%s-b", argv[1]);
    snprintf(missing, sizeof missing, "%s-missing", argv[1]);
    snprintf(open_mode, sizeof open_mode, "%s-mode", argv[1]);
    snprintf(by_fd, sizeof by_fd, "%s-fd", argv[1]);

    /* ---- version and strings ---- */
    char version[64];
    snprintf(version, sizeof version, "%d.%d.%d", SHMRING_VERSION_MAJOR, SHMRING_VERSION_MINOR,
             SHMRING_VERSION_PATCH);
    ASSERT(strcmp(shmring_version(), version) == 0);
    ASSERT(shmring_layout_version() == SHMRING_LAYOUT_VERSION);
    ASSERT(strcmp(shmring_strerror(SHMRING_OK), "success") == 0);
    ASSERT(strcmp(shmring_strerror(12345), "unknown status code") == 0);
    ASSERT(strcmp(shmring_strerror(SHMRING_E_FULL), "channel full") == 0);
    ASSERT(shmring_last_error_message() != NULL);

    shmring_channel *ch = (shmring_channel *)&checks; /* must be reset to NULL */
    shmring_channel_options options;

    /* ---- options ---- */
    EXPECT(shmring_channel_options_init(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    options.flags = 1u << 31;
    EXPECT(shmring_channel_create(name, 1024, &options, &ch), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(ch == NULL);
    ASSERT(strstr(shmring_last_error_message(), "unknown option flags") != NULL);
    options.flags = SHMRING_OPTION_KEEP | SHMRING_OPTION_UNLINK;
    EXPECT(shmring_channel_create(name, 1024, &options, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    options.reserved[3] = 1;
    EXPECT(shmring_channel_create(name, 1024, &options, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    options.wait_strategy = 99;
    EXPECT(shmring_channel_create(name, 1024, &options, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    options.mode = 010000;
    EXPECT(shmring_channel_create(name, 1024, &options, &ch), SHMRING_E_INVALID_ARGUMENT);

    /* ---- names, capacities, NULL out-pointers ---- */
    EXPECT(shmring_channel_create(name, 1024, NULL, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_create(NULL, 1024, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_create("", 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_create("a/b", 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_create("..", 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_create("caf\xc3", 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_create("\xff\xfe", 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    char longname[4096];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    EXPECT(shmring_channel_create(longname, 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    longname[201] = '\0'; /* one byte over the limit of 200 */
    EXPECT(shmring_channel_create(longname, 1024, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_open(longname, NULL, &ch), SHMRING_E_INVALID_NAME);
    EXPECT(shmring_channel_create(name, 0, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_channel_create(name, 1000, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_channel_create(name, 32, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_channel_create(name, SIZE_MAX, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_channel_create(name, (size_t)SHMRING_MAX_CAPACITY * 2, NULL, &ch),
           SHMRING_E_INVALID_CAPACITY);
    EXPECT(shmring_channel_create_memfd(0, NULL, &ch), SHMRING_E_INVALID_CAPACITY);
    ASSERT(ch == NULL);

    /* ---- unknown names, files, descriptors ---- */
    EXPECT(shmring_channel_open(missing, NULL, &ch), SHMRING_E_NOT_FOUND);
    ASSERT(strstr(shmring_last_error_message(), missing) != NULL);
    EXPECT(shmring_channel_open(NULL, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_open_file("/nonexistent-dir/ring", NULL, &ch), SHMRING_E_NOT_FOUND);
    EXPECT(shmring_channel_create_file("/nonexistent-dir/ring", 1024, NULL, &ch),
           SHMRING_E_NOT_FOUND);
    EXPECT(shmring_channel_create_file(NULL, 1024, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_open_fd(-1, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_open_fd(987654, NULL, &ch), SHMRING_E_INVALID_ARGUMENT);
    FILE *empty = tmpfile();
    ASSERT(empty != NULL);
    EXPECT(shmring_channel_open_fd(fileno(empty), NULL, &ch), SHMRING_E_BAD_SIZE);
    fclose(empty);

    /* ---- doctored segment files: another build's, and garbage ---- */
    char path[256];
    snprintf(path, sizeof path, "/tmp/%s-doctored", argv[1]);
    uint64_t magics[2] = {SHMRING_MAGIC, 0x1234};
    int codes[2] = {SHMRING_E_INCOMPATIBLE_LAYOUT, SHMRING_E_CORRUPTED};
    for (int k = 0; k < 2; k++) {
        uint8_t segment[SHMRING_DATA_OFFSET + 1024];
        memset(segment, 0, sizeof segment);
        uint32_t version = 99; /* a layout this build does not know */
        memcpy(segment, &magics[k], 8);
        memcpy(segment + 8, &version, 4);
        FILE *f = fopen(path, "wb");
        ASSERT(f != NULL && fwrite(segment, 1, sizeof segment, f) == sizeof segment);
        fclose(f);
        EXPECT(shmring_channel_open_file(path, NULL, &ch), codes[k]);
        unlink(path);
    }

    /* ---- open_fd leaves no lock on the caller's descriptor: after a close and
     * after a failed open, a reclaiming create sees the segment dead while the
     * caller still holds its descriptor ---- */
    {
        shmring_channel_options keep;
        EXPECT(shmring_channel_options_init(&keep), SHMRING_OK);
        keep.flags = SHMRING_OPTION_KEEP;
        shmring_channel_options reclaim = keep;
        reclaim.flags |= SHMRING_OPTION_RECLAIM;
        char shm[256];
        snprintf(shm, sizeof shm, "/dev/shm/shmring.%s", by_fd);
        EXPECT(shmring_channel_create(by_fd, 1024, &keep, &ch), SHMRING_OK);
        EXPECT(shmring_channel_close(ch), SHMRING_OK);
        int caller = open(shm, O_RDWR | O_CLOEXEC);
        ASSERT(caller >= 0);
        EXPECT(shmring_channel_open_fd(caller, NULL, &ch), SHMRING_OK);
        EXPECT(shmring_channel_close(ch), SHMRING_OK);
        EXPECT(shmring_channel_create(by_fd, 1024, &reclaim, &ch), SHMRING_OK);
        EXPECT(shmring_channel_close(ch), SHMRING_OK);
        close(caller);

        /* The new segment, doctored to a layout version this build does not know. */
        caller = open(shm, O_RDWR | O_CLOEXEC);
        ASSERT(caller >= 0);
        uint32_t version = 99;
        ASSERT(pwrite(caller, &version, 4, 8) == 4);
        EXPECT(shmring_channel_open_fd(caller, NULL, &ch), SHMRING_E_INCOMPATIBLE_LAYOUT);
        /* Reclaimed without KEEP: the close removes the segment and its doorbells. */
        reclaim.flags &= ~SHMRING_OPTION_KEEP;
        EXPECT(shmring_channel_create(by_fd, 1024, &reclaim, &ch), SHMRING_OK);
        EXPECT(shmring_channel_close(ch), SHMRING_OK);
        close(caller);
        ASSERT(access(shm, F_OK) != 0);
    }

    /* ---- a segment others may write is not trusted ---- */
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    options.mode = 0666;
    shmring_channel *writable = NULL;
    EXPECT(shmring_channel_create(open_mode, 1024, &options, &writable), SHMRING_OK);
    EXPECT(shmring_channel_open(open_mode, NULL, &ch), SHMRING_E_UNTRUSTED);
    options.mode = 0;
    options.allowed_mode = 0666;
    EXPECT(shmring_channel_open(open_mode, &options, &ch), SHMRING_OK);
    EXPECT(shmring_channel_close(ch), SHMRING_OK);
    EXPECT(shmring_channel_close(writable), SHMRING_OK);

    /* ---- a channel, and NULL handles ---- */
    EXPECT(shmring_channel_create(name, 1024, NULL, &ch), SHMRING_OK);
    ASSERT(ch != NULL);
    shmring_channel *dup = NULL;
    EXPECT(shmring_channel_create(name, 1024, NULL, &dup), SHMRING_E_ALREADY_EXISTS);
    options.flags = SHMRING_OPTION_RECLAIM; /* never a live one */
    EXPECT(shmring_channel_create(name, 1024, &options, &dup), SHMRING_E_ALREADY_EXISTS);
    size_t n = 0;
    int fd = -1;
    EXPECT(shmring_channel_capacity(ch, &n), SHMRING_OK);
    ASSERT(n == 1024);
    EXPECT(shmring_channel_capacity(NULL, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_capacity(ch, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_channel_max_message_len(ch, &n), SHMRING_OK);
    ASSERT(n == 1024 / 2 - 8);
    EXPECT(shmring_channel_fd(ch, &fd), SHMRING_OK);
    ASSERT(fd >= 0);
    EXPECT(shmring_channel_fd(NULL, &fd), SHMRING_E_INVALID_ARGUMENT);

    shmring_sender *tx = NULL, *tx2 = NULL;
    shmring_receiver *rx = NULL, *rx2 = NULL;
    EXPECT(shmring_sender_new(NULL, &tx), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_new(NULL, &rx), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_new(ch, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send(shmring_sender_as_msg_sender(NULL), "x", 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(NULL), "x", 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send_timeout(shmring_sender_as_msg_sender(NULL), "x", 1, 1), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_commit(NULL, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_abort(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_max_message_len(shmring_sender_as_msg_sender(NULL), &n), SHMRING_E_INVALID_ARGUMENT);
    uint8_t buf[1024];
    const uint8_t *data = NULL;
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(NULL), buf, sizeof buf, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_recv(shmring_receiver_as_msg_receiver(NULL), buf, sizeof buf, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_try_read(NULL, &data, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_release(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_unread(NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_close(NULL), SHMRING_OK);
    EXPECT(shmring_receiver_close(NULL), SHMRING_OK);
    EXPECT(shmring_channel_close(NULL), SHMRING_OK);

    /* ---- roles ---- */
    EXPECT(shmring_sender_new(ch, &tx), SHMRING_OK);
    EXPECT(shmring_sender_new(ch, &tx2), SHMRING_E_ROLE_TAKEN);
    ASSERT(tx2 == NULL);
    EXPECT(shmring_receiver_new(ch, &rx), SHMRING_OK);
    EXPECT(shmring_receiver_new(ch, &rx2), SHMRING_E_ROLE_TAKEN);
    bool connected = false;
    EXPECT(shmring_sender_is_receiver_connected(tx, &connected), SHMRING_OK);
    ASSERT(connected);
    EXPECT(shmring_receiver_is_sender_connected(rx, NULL), SHMRING_E_INVALID_ARGUMENT);

    /* ---- sizes ---- */
    size_t max = 0;
    EXPECT(shmring_msg_sender_max_message_len(shmring_sender_as_msg_sender(tx), &max), SHMRING_OK);
    ASSERT(max == 504);
    memset(buf, 7, sizeof buf);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, max + 1), SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_msg_sender_send(shmring_sender_as_msg_sender(tx), buf, SIZE_MAX), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_send_timeout(shmring_sender_as_msg_sender(tx), buf, max + 1, 10), SHMRING_E_MESSAGE_TOO_LARGE);
    uint8_t *grant = NULL;
    EXPECT(shmring_sender_try_grant(tx, max + 1, &grant), SHMRING_E_MESSAGE_TOO_LARGE);
    ASSERT(grant == NULL);
    EXPECT(shmring_sender_grant(tx, SIZE_MAX, &grant), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), NULL, 5), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), NULL, 0), SHMRING_OK); /* an empty message */
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), NULL, 0, &n), SHMRING_OK);
    ASSERT(n == 0);

    /* ---- a handle of the wrong kind: refused, not undefined behaviour ---- */
    EXPECT(shmring_sender_commit((shmring_sender *)rx, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_try_send((shmring_msg_sender *)shmring_receiver_as_msg_receiver(rx),
                                       "x", 1),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_sender_close(shmring_sender_as_msg_sender(tx)), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_close((shmring_receiver *)tx), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(shmring_sender_as_msg_sender(NULL) == NULL);
    /* A channel is no message endpoint (and is shared: never taken mutably). */
    EXPECT(shmring_msg_sender_try_send((shmring_msg_sender *)ch, "x", 1),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_readiness_fd((shmring_msg_receiver *)ch),
           SHMRING_E_INVALID_ARGUMENT);

    /* ---- a too-small buffer: nothing consumed, length reported ---- */
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, max), SHMRING_OK);
    n = 0;
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, 10, &n), SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(n == max);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), NULL, 0, &n), SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(n == max);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), NULL, 10, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, SIZE_MAX, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_OK);
    ASSERT(n == max && buf[0] == 7 && buf[max - 1] == 7);

    /* ---- empty ---- */
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_EMPTY);
    ASSERT(strcmp(shmring_last_error_message(), "channel empty") == 0);
    data = (const uint8_t *)buf;
    EXPECT(shmring_receiver_try_read(rx, &data, &n), SHMRING_E_EMPTY);
    ASSERT(data == NULL && n == 0);
    EXPECT(shmring_msg_receiver_recv_timeout(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, 10, &n), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_receiver_read_timeout(rx, 0, &data, &n), SHMRING_E_TIMED_OUT);

    /* ---- full ---- */
    int sent = 0;
    for (;;) {
        int rc = shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 100);
        if (rc == SHMRING_E_FULL) break;
        EXPECT(rc, SHMRING_OK);
        ASSERT(++sent < 100);
    }
    ASSERT(sent > 0);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 100), SHMRING_E_FULL);
    EXPECT(shmring_msg_sender_send_timeout(shmring_sender_as_msg_sender(tx), buf, 100, 10), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_sender_try_grant(tx, 100, &grant), SHMRING_E_FULL);
    EXPECT(shmring_sender_grant_timeout(tx, 100, 0, &grant), SHMRING_E_TIMED_OUT);
    for (int i = 0; i < sent; i++) EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, 100, &n), SHMRING_OK);

    /* ---- a borrowed sender ---- */
    EXPECT(shmring_sender_commit(tx, 0), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_sender_abort(tx), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_sender_try_grant(tx, 64, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_grant(tx, 64, &grant), SHMRING_OK);
    ASSERT(grant != NULL && ((uintptr_t)grant % 8) == 0);
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 1), SHMRING_E_BUSY);
    EXPECT(shmring_sender_try_grant(tx, 8, &grant), SHMRING_E_BUSY);
    EXPECT(shmring_sender_is_receiver_connected(tx, &connected), SHMRING_E_BUSY);
    EXPECT(shmring_msg_sender_max_message_len(shmring_sender_as_msg_sender(tx), &n), SHMRING_OK);
    EXPECT(shmring_sender_try_grant(tx, 64, &grant), SHMRING_E_BUSY); /* grant reset to NULL */
    ASSERT(grant == NULL);
    EXPECT(shmring_sender_abort(tx), SHMRING_OK);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_EMPTY); /* aborted */
    EXPECT(shmring_sender_try_grant(tx, 64, &grant), SHMRING_OK);
    memcpy(grant, "zero-copy", 9);
    EXPECT(shmring_sender_commit(tx, 65), SHMRING_E_INVALID_ARGUMENT); /* still granted */
    EXPECT(shmring_sender_commit(tx, 9), SHMRING_OK);
    EXPECT(shmring_sender_commit(tx, 9), SHMRING_E_NOT_BORROWED);

    /* ---- a borrowed receiver ---- */
    EXPECT(shmring_receiver_release(rx), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_receiver_try_read(rx, NULL, &n), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_try_read(rx, &data, &n), SHMRING_OK);
    ASSERT(n == 9 && memcmp(data, "zero-copy", 9) == 0);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_BUSY);
    EXPECT(shmring_receiver_try_read(rx, &data, &n), SHMRING_E_BUSY);
    EXPECT(shmring_receiver_unread(rx), SHMRING_OK);
    EXPECT(shmring_receiver_unread(rx), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_receiver_read(rx, &data, &n), SHMRING_OK); /* the same message again */
    ASSERT(n == 9 && memcmp(data, "zero-copy", 9) == 0);
    EXPECT(shmring_receiver_release(rx), SHMRING_OK);
    EXPECT(shmring_receiver_release(rx), SHMRING_E_NOT_BORROWED);
    EXPECT(shmring_receiver_try_read(rx, &data, &n), SHMRING_E_EMPTY);

    /* ---- batches ---- */
    shmring_message msgs[3] = {{"one", 3}, {NULL, 0}, {"three", 5}};
    size_t count = 99;
    EXPECT(shmring_sender_try_send_batch(tx, NULL, 2, &count), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_send_batch(tx, msgs, 3, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_send_batch(tx, msgs, 3, &count), SHMRING_OK);
    ASSERT(count == 3);
    msgs[1].len = 4; /* NULL data with a length: refused after the first */
    EXPECT(shmring_sender_try_send_batch(tx, msgs, 3, &count), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(count == 1);
    msgs[1].data = buf;
    msgs[1].len = max + 1;
    EXPECT(shmring_sender_try_send_batch(tx, msgs, 3, &count), SHMRING_E_MESSAGE_TOO_LARGE);
    ASSERT(count == 1);
    int seen = 0;
    EXPECT(shmring_receiver_try_recv_batch(rx, 10, NULL, &seen, &count), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_try_recv_batch(rx, 0, count_only, &seen, &count), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_try_recv_batch(rx, 10, count_only, &seen, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_receiver_try_recv_batch(rx, 2, count_only, &seen, &count), SHMRING_OK);
    ASSERT(count == 2 && seen == 2);
    struct reentry re = {rx, 0, 0, 0, 0};
    EXPECT(shmring_receiver_try_recv_batch(rx, 10, reenter, &re, &count), SHMRING_OK);
    ASSERT(count == 3 && re.calls == 3);
    ASSERT(re.recv_rc == SHMRING_E_BUSY && re.read_rc == SHMRING_E_BUSY);
    ASSERT(re.close_rc == SHMRING_E_BUSY); /* the handle is still alive */
    EXPECT(shmring_receiver_try_recv_batch(rx, 10, count_only, &seen, &count), SHMRING_E_EMPTY);
    ASSERT(count == 0);

    /* ---- arrays of fixed-size records ---- */
    uint64_t records[40];
    for (size_t i = 0; i < 40; i++) records[i] = 1000 + i;
    EXPECT(shmring_sender_try_send_records(tx, NULL, 8, 2, &count), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_send_records(tx, records, 8, 2, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_send_records(tx, records, max + 1, 1, &count),
           SHMRING_E_MESSAGE_TOO_LARGE);
    ASSERT(count == 0);
    EXPECT(shmring_sender_try_send_records(tx, records, 8, (size_t)-1 / 4, &count),
           SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_sender_try_send_records(tx, records, 8, 0, &count), SHMRING_OK);
    ASSERT(count == 0);
    EXPECT(shmring_sender_try_send_records(tx, records, 8, 40, &count), SHMRING_OK);
    ASSERT(count == 40);
    EXPECT(shmring_sender_try_send_records(tx, "abcabcabc", 3, 3, &count), SHMRING_OK);
    ASSERT(count == 3);
    for (size_t i = 0; i < 40; i++) {
        uint64_t got = 0;
        EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), &got, sizeof got, &n), SHMRING_OK);
        ASSERT(n == 8 && got == 1000 + i);
    }
    for (int i = 0; i < 3; i++) {
        EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_OK);
        ASSERT(n == 3 && memcmp(buf, "abc", 3) == 0);
    }
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_EMPTY);

    /* ---- a gone peer ---- */
    EXPECT(shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), "last", 4), SHMRING_OK);
    EXPECT(shmring_sender_close(tx), SHMRING_OK);
    EXPECT(shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_OK); /* not lost */
    ASSERT(n == 4 && memcmp(buf, "last", 4) == 0);
    int rc = SHMRING_E_EMPTY;
    for (int i = 0; i < 200 && rc == SHMRING_E_EMPTY; i++) {
        sleep_ms(2); /* a failed try_ call probes the peer at most every 1 ms */
        rc = shmring_msg_receiver_try_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n);
    }
    EXPECT(rc, SHMRING_E_DISCONNECTED);
    EXPECT(shmring_msg_receiver_recv(shmring_receiver_as_msg_receiver(rx), buf, sizeof buf, &n), SHMRING_E_DISCONNECTED);
    EXPECT(shmring_sender_new(ch, &tx), SHMRING_OK); /* a new sender: connected again */
    EXPECT(shmring_receiver_close(rx), SHMRING_OK);
    rc = SHMRING_OK;
    for (int i = 0; i < 1000 && rc != SHMRING_E_DISCONNECTED; i++) {
        rc = shmring_msg_sender_try_send(shmring_sender_as_msg_sender(tx), buf, 100);
        if (rc == SHMRING_E_FULL) sleep_ms(2);
        else if (rc != SHMRING_E_DISCONNECTED) EXPECT(rc, SHMRING_OK);
    }
    EXPECT(rc, SHMRING_E_DISCONNECTED);
    EXPECT(shmring_msg_sender_send(shmring_sender_as_msg_sender(tx), buf, 100), SHMRING_E_DISCONNECTED);
    EXPECT(shmring_sender_close(tx), SHMRING_OK);
    EXPECT(shmring_channel_close(ch), SHMRING_OK);
    /* The creator's last handle is gone: so is the name. */
    EXPECT(shmring_channel_open(name, NULL, &ch), SHMRING_E_NOT_FOUND);
    (void)other;

    printf("ok: %d checks\n", checks);
    return 0;
}
