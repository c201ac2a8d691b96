/* The checks every C test program makes: EXPECT a call's return code, ASSERT a
 * condition. The first failure prints where, what was returned and the library's
 * last error message, and exits 1. Each program counts its checks in `checks` and
 * prints the count at the end. */
#ifndef SHMRING_TEST_EXPECT_H
#define SHMRING_TEST_EXPECT_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "shmring.h"

static int checks;

#define EXPECT(call, code)                                                                  \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        checks++;                                                                           \
        if (rc_ != (code)) {                                                                \
            fprintf(stderr, "%s:%d: %s\n  returned %d (%s), expected %s (%d)\n"             \
                            "  last error: %s\n",                                           \
                    __FILE__, __LINE__, #call, rc_, shmring_strerror(rc_), #code,           \
                    (int)(code), shmring_last_error_message());                             \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

#define ASSERT(cond)                                                                        \
    do {                                                                                    \
        checks++;                                                                           \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);    \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

/* Whether `fd` becomes readable (POLLIN or POLLHUP) within `ms` milliseconds. */
static inline int readable_within(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int n = poll(&p, 1, ms);
    ASSERT(n >= 0);
    ASSERT((p.revents & (POLLNVAL | POLLERR)) == 0);
    return n > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

#endif
