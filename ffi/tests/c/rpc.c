/*
 * Request/response from C (shmring_rpc_*). First, in one process: bad input, a
 * role already taken, a server with nothing to serve (timeouts), a client call
 * that times out and whose late response is dropped. Then across fork: the child
 * opens the two channels by name and serves a handler (reverse the request, or
 * fail, sleep, answer too much, report a bad length); the parent makes COUNT
 * checked calls and provokes each failure: SHMRING_E_REMOTE with the handler's
 * message, SHMRING_E_TIMED_OUT, SHMRING_E_BUFFER_TOO_SMALL, a handler's bad length,
 * SHMRING_E_MESSAGE_TOO_LARGE; then closes its client, and the child's server sees
 * SHMRING_E_DISCONNECTED.
 *
 *   rpc NAME_PREFIX [COUNT]
 *
 * Exits 0 and prints "ok: ..." if every call returned what it should; else prints
 * the first mismatch and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"

#define CAPACITY 4096u
#define TIMEOUT_MS 10000u

#include "expect.h"

static void name_of(char *out, size_t size, const char *prefix, const char *what) {
    int n = snprintf(out, size, "%s-%s", prefix, what);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "name too long\n");
        exit(1);
    }
}

static int starts_with(const uint8_t *data, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(data, prefix, n) == 0;
}

/* What the handler sees besides the request. */
struct serving {
    shmring_rpc_server *server;
    uint64_t served;
    int reentry_checked;
};

/*
 * The child's handler:
 *   "fail:X"   -> error "no: X"
 *   "sleep"    -> waits 300 ms, then answers "slept"
 *   "big"      -> a response of response_cap bytes
 *   "bad-len"  -> claims response_cap + 1 bytes (the library refuses it)
 *   otherwise  -> the request reversed
 * The first call also checks that the server refuses calls from inside it.
 */
static int handler(void *context, const uint8_t *request, size_t request_len,
                   uint8_t *response, size_t response_cap, size_t *response_len) {
    struct serving *s = context;
    s->served++;
    if (!s->reentry_checked) {
        s->reentry_checked = 1;
        if (request == NULL) _exit(20);
        if (shmring_rpc_serve_one(s->server, handler, s, 0) != SHMRING_E_BUSY) _exit(21);
        if (shmring_rpc_server_close(s->server) != SHMRING_E_BUSY) _exit(22);
        size_t cap = 0;
        if (shmring_rpc_server_max_response_len(s->server, &cap) != SHMRING_E_BUSY) _exit(23);
    }
    if (starts_with(request, request_len, "fail:")) {
        int n = snprintf((char *)response, response_cap, "no: %.*s", (int)(request_len - 5),
                         (const char *)request + 5);
        if (n < 0 || (size_t)n >= response_cap) _exit(24);
        *response_len = (size_t)n;
        return 7;
    }
    if (request_len == 5 && memcmp(request, "sleep", 5) == 0) {
        struct timespec t = {0, 300 * 1000 * 1000};
        nanosleep(&t, NULL);
        memcpy(response, "slept", 5);
        *response_len = 5;
        return 0;
    }
    if (request_len == 3 && memcmp(request, "big", 3) == 0) {
        memset(response, 'b', response_cap);
        *response_len = response_cap;
        return 0;
    }
    if (request_len == 7 && memcmp(request, "bad-len", 7) == 0) {
        *response_len = response_cap + 1;
        return 0;
    }
    if (request_len > response_cap) _exit(25);
    for (size_t i = 0; i < request_len; i++) response[i] = request[request_len - 1 - i];
    *response_len = request_len;
    return 0;
}

/* The child: opens both channels by name, serves until the client goes. Exits
 * 0 if every call returned what it should (never returns). */
static void serve(const char *requests_name, const char *responses_name, uint64_t expected) {
    shmring_channel *requests = NULL, *responses = NULL;
    struct serving s = {NULL, 0, 0};
    if (shmring_channel_open(requests_name, NULL, &requests) != SHMRING_OK) _exit(10);
    if (shmring_channel_open(responses_name, NULL, &responses) != SHMRING_OK) _exit(11);
    if (shmring_rpc_server_new(requests, responses, &s.server) != SHMRING_OK) _exit(12);
    /* The server keeps the segments mapped. */
    if (shmring_channel_close(requests) != SHMRING_OK) _exit(13);
    if (shmring_channel_close(responses) != SHMRING_OK) _exit(13);
    int rc;
    while ((rc = shmring_rpc_serve_one(s.server, handler, &s, TIMEOUT_MS)) == SHMRING_OK ||
           rc == SHMRING_E_INVALID_ARGUMENT /* the "bad-len" request */) {
        if (rc == SHMRING_E_INVALID_ARGUMENT &&
            strstr(shmring_last_error_message(), "reported a response of") == NULL)
            _exit(14);
    }
    if (rc != SHMRING_E_DISCONNECTED) {
        fprintf(stderr, "child: serve_one: %s (%s)\n", shmring_strerror(rc),
                shmring_last_error_message());
        _exit(15);
    }
    if (s.served != expected) {
        fprintf(stderr, "child: served %llu requests, expected %llu\n",
                (unsigned long long)s.served, (unsigned long long)expected);
        _exit(16);
    }
    if (shmring_rpc_server_close(s.server) != SHMRING_OK) _exit(17);
    /* _exit: the parent's channel handles, inherited, are not closed here. */
    _exit(0);
}

static void make_channels(const char *prefix, const char *what, shmring_channel **requests,
                          shmring_channel **responses, char *requests_name,
                          char *responses_name, size_t size) {
    char what_req[64], what_resp[64];
    snprintf(what_req, sizeof what_req, "%s-req", what);
    snprintf(what_resp, sizeof what_resp, "%s-resp", what);
    name_of(requests_name, size, prefix, what_req);
    name_of(responses_name, size, prefix, what_resp);
    shmring_channel_options options;
    EXPECT(shmring_channel_options_init(&options), SHMRING_OK);
    /* valgrind does not know membarrier: full fences on both sides. */
    options.flags = SHMRING_OPTION_SYMMETRIC_FENCES;
    EXPECT(shmring_channel_create(requests_name, CAPACITY, &options, requests), SHMRING_OK);
    EXPECT(shmring_channel_create(responses_name, CAPACITY, &options, responses), SHMRING_OK);
}

/* In one process: bad input, roles, timeouts on both sides. */
static void single_process(const char *prefix) {
    shmring_channel *requests = NULL, *responses = NULL;
    char requests_name[256], responses_name[256];
    make_channels(prefix, "one", &requests, &responses, requests_name, responses_name,
                  sizeof requests_name);

    shmring_rpc_client *client = (shmring_rpc_client *)&checks; /* must become NULL */
    shmring_rpc_server *server = (shmring_rpc_server *)&checks;
    EXPECT(shmring_rpc_client_new(NULL, responses, &client), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(client == NULL);
    EXPECT(shmring_rpc_client_new(requests, NULL, &client), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_client_new(requests, responses, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_server_new(NULL, responses, &server), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(server == NULL);
    EXPECT(shmring_rpc_client_close(NULL), SHMRING_OK);
    EXPECT(shmring_rpc_server_close(NULL), SHMRING_OK);

    /* Client and server in one process: the four roles are distinct. */
    EXPECT(shmring_rpc_client_new(requests, responses, &client), SHMRING_OK);
    shmring_rpc_client *second = NULL;
    EXPECT(shmring_rpc_client_new(requests, responses, &second), SHMRING_E_ROLE_TAKEN);
    ASSERT(second == NULL);
    EXPECT(shmring_rpc_server_new(requests, responses, &server), SHMRING_OK);
    shmring_rpc_server *second_server = NULL;
    EXPECT(shmring_rpc_server_new(requests, responses, &second_server), SHMRING_E_ROLE_TAKEN);
    ASSERT(second_server == NULL);

    size_t max_request = 0, max_response = 0, server_max = 0, channel_max = 0;
    EXPECT(shmring_channel_max_message_len(requests, &channel_max), SHMRING_OK);
    EXPECT(shmring_rpc_client_max_request_len(client, &max_request), SHMRING_OK);
    EXPECT(shmring_rpc_client_max_response_len(client, &max_response), SHMRING_OK);
    EXPECT(shmring_rpc_server_max_response_len(server, &server_max), SHMRING_OK);
    ASSERT(max_request == channel_max - 16);
    ASSERT(max_response == channel_max - 16 && server_max == max_response);
    EXPECT(shmring_rpc_client_max_request_len(NULL, &max_request), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_client_max_request_len(client, NULL), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_server_max_response_len(NULL, &server_max), SHMRING_E_INVALID_ARGUMENT);

    /* Nothing to serve: timeouts, 0 (only if there now) and 20 ms. */
    struct serving s = {server, 0, 1};
    EXPECT(shmring_rpc_serve_one(server, handler, &s, 0), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_rpc_serve_one(server, handler, &s, 20), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_rpc_serve_one(server, NULL, &s, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_serve_one(NULL, handler, &s, 0), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(s.served == 0);

    /* Bad call arguments: nothing sent. */
    uint8_t buf[64];
    size_t len = 99;
    EXPECT(shmring_rpc_call(NULL, "x", 1, buf, sizeof buf, &len, 0), SHMRING_E_INVALID_ARGUMENT);
    ASSERT(len == 0);
    EXPECT(shmring_rpc_call(client, "x", 1, buf, sizeof buf, NULL, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_call(client, NULL, 1, buf, sizeof buf, &len, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_call(client, "x", 1, NULL, 8, &len, 0), SHMRING_E_INVALID_ARGUMENT);
    EXPECT(shmring_rpc_call(client, "x", (size_t)-1, buf, sizeof buf, &len, 0),
           SHMRING_E_INVALID_ARGUMENT); /* beyond PTRDIFF_MAX */
    EXPECT(shmring_rpc_call(client, buf, max_request + 1, buf, sizeof buf, &len, 0),
           SHMRING_E_MESSAGE_TOO_LARGE);
    EXPECT(shmring_rpc_serve_one(server, handler, &s, 0), SHMRING_E_TIMED_OUT);

    /* A call with no server to answer in time: its request is sent, the call times
     * out; served later, its response is dropped, never handed to another call. */
    EXPECT(shmring_rpc_call(client, "late", 4, buf, sizeof buf, &len, 20), SHMRING_E_TIMED_OUT);
    ASSERT(len == 0);
    EXPECT(shmring_rpc_serve_one(server, handler, &s, 0), SHMRING_OK);
    ASSERT(s.served == 1);
    EXPECT(shmring_rpc_call(client, "next", 4, buf, sizeof buf, &len, 0), SHMRING_E_TIMED_OUT);
    EXPECT(shmring_rpc_serve_one(server, handler, &s, 0), SHMRING_OK);
    ASSERT(s.served == 2);

    EXPECT(shmring_rpc_server_close(server), SHMRING_OK);
    /* The server has gone: the call fails, at the latest when its deadline passes. */
    int rc = shmring_rpc_call(client, "x", 1, buf, sizeof buf, &len, 100);
    ASSERT(rc == SHMRING_E_DISCONNECTED || rc == SHMRING_E_TIMED_OUT);
    EXPECT(shmring_rpc_client_close(client), SHMRING_OK);
    EXPECT(shmring_channel_close(requests), SHMRING_OK);
    EXPECT(shmring_channel_close(responses), SHMRING_OK);
}

/* Across fork: COUNT checked calls and each failure. */
static void across_fork(const char *prefix, uint64_t count) {
    shmring_channel *requests = NULL, *responses = NULL;
    char requests_name[256], responses_name[256];
    make_channels(prefix, "fork", &requests, &responses, requests_name, responses_name,
                  sizeof requests_name);
    /* count reversals, one empty, fail, sleep, the call after it, big (twice),
     * bad-len, and the last reversal. */
    uint64_t expected = count + 8;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) serve(requests_name, responses_name, expected);

    /* The client is made after fork: a child holding a copy of its descriptors
     * would keep its roles alive, and the server would never see it go. */
    shmring_rpc_client *client = NULL;
    EXPECT(shmring_rpc_client_new(requests, responses, &client), SHMRING_OK);
    size_t max_response = 0;
    EXPECT(shmring_rpc_client_max_response_len(client, &max_response), SHMRING_OK);

    uint8_t *buf = malloc(max_response);
    ASSERT(buf != NULL);
    char request[64];
    size_t len = 0;
    for (uint64_t i = 0; i < count; i++) {
        int n = snprintf(request, sizeof request, "request %llu", (unsigned long long)i);
        ASSERT(n > 0);
        uint64_t timeout = (i % 2) ? TIMEOUT_MS : UINT64_MAX;
        EXPECT(shmring_rpc_call(client, request, (size_t)n, buf, max_response, &len, timeout),
               SHMRING_OK);
        ASSERT(len == (size_t)n);
        for (int k = 0; k < n; k++) ASSERT(buf[k] == (uint8_t)request[n - 1 - k]);
    }
    /* An empty request, NULL with length 0: an empty response. */
    len = 99;
    EXPECT(shmring_rpc_call(client, NULL, 0, buf, max_response, &len, TIMEOUT_MS), SHMRING_OK);
    ASSERT(len == 0);

    /* The handler fails: its message, verbatim. The client stays usable. */
    EXPECT(shmring_rpc_call(client, "fail:disk full", 14, buf, max_response, &len, TIMEOUT_MS),
           SHMRING_E_REMOTE);
    ASSERT(len == 0);
    ASSERT(strcmp(shmring_last_error_message(), "no: disk full") == 0);
    ASSERT(strcmp(shmring_strerror(SHMRING_E_REMOTE), "the server's handler failed") == 0);

    /* Too slow: timed out; the late "slept" is dropped, the next call gets its own
     * response. */
    EXPECT(shmring_rpc_call(client, "sleep", 5, buf, max_response, &len, 50),
           SHMRING_E_TIMED_OUT);
    ASSERT(len == 0);
    EXPECT(shmring_rpc_call(client, "abc", 3, buf, max_response, &len, TIMEOUT_MS), SHMRING_OK);
    ASSERT(len == 3 && memcmp(buf, "cba", 3) == 0);

    /* A response longer than the buffer: its length reported, the response lost. */
    EXPECT(shmring_rpc_call(client, "big", 3, buf, 16, &len, TIMEOUT_MS),
           SHMRING_E_BUFFER_TOO_SMALL);
    ASSERT(len == max_response);
    EXPECT(shmring_rpc_call(client, "big", 3, buf, max_response, &len, TIMEOUT_MS), SHMRING_OK);
    ASSERT(len == max_response && buf[0] == 'b' && buf[len - 1] == 'b');

    /* The handler claims more than the buffer holds: the client gets an error. */
    EXPECT(shmring_rpc_call(client, "bad-len", 7, buf, max_response, &len, TIMEOUT_MS),
           SHMRING_E_REMOTE);
    ASSERT(strstr(shmring_last_error_message(), "reported a response of") != NULL);

    /* The last call: still in step. */
    EXPECT(shmring_rpc_call(client, "xyz", 3, buf, max_response, &len, TIMEOUT_MS), SHMRING_OK);
    ASSERT(len == 3 && memcmp(buf, "zyx", 3) == 0);

    /* The client goes: the child's server sees SHMRING_E_DISCONNECTED and exits 0. */
    EXPECT(shmring_rpc_client_close(client), SHMRING_OK);
    int status = 0;
    ASSERT(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rpc.c: the serving child failed (status %d)\n", status);
        exit(1);
    }
    free(buf);
    EXPECT(shmring_channel_close(requests), SHMRING_OK);
    EXPECT(shmring_channel_close(responses), SHMRING_OK);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rpc NAME_PREFIX [COUNT]\n");
        return 2;
    }
    const char *prefix = argv[1];
    uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000;
    single_process(prefix);
    across_fork(prefix, count);
    printf("ok: %d checks, %llu calls across fork\n", checks, (unsigned long long)count);
    return 0;
}
