/*
 * fuzz_sse — the Server-Sent Events parser the client reads streams with.
 *
 * Property: the parser's result does not depend on how the network splits
 * the stream. The input is parsed in one piece and again in pieces of 1..8
 * bytes (sizes from the first byte); both give the same events, the same
 * status and the same end-of-stream answer. Small limits reach the
 * line/event caps.
 */
#include "fuzz_common.h"

#include "client/sse.h"

typedef struct {
    ci_buf log;
} events;

static bool on_event(void *user, const char *name, const char *data, size_t data_len) {
    events *e = user;
    ci_buf_append(&e->log, name, strlen(name) + 1);
    ci_buf_append(&e->log, data, data_len);
    ci_buf_append(&e->log, "\n\x01", 2);
    return !(data_len == 6 && memcmp(data, "[DONE]", 6) == 0); /* stop, as the client does */
}

static int run(const uint8_t *data, size_t size, unsigned seed, events *e, bool *pending) {
    ci_sse_parser p;
    ci_sse_init(&p, 256, 1024);
    cinfer_error err = {0};
    int rc = 0;
    size_t at = 0;
    while (at < size && rc == 0) {
        size_t n = seed ? 1 + (seed + at) % 8 : size;
        if (n > size - at) n = size - at;
        rc = ci_sse_feed(&p, (const char *)data + at, n, on_event, e, &err);
        at += n;
    }
    *pending = rc == 0 ? ci_sse_finish(&p) : false;
    ci_sse_free(&p);
    return rc < 0 ? -1 : rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    unsigned seed = 1 + data[0] % 251;
    data++, size--;
    events whole = {0}, split = {0};
    bool pw, ps;
    int rw = run(data, size, 0, &whole, &pw);
    int rs = run(data, size, seed, &split, &ps);
    FUZZ_ASSERT(rw == rs, "status %d in one piece, %d split", rw, rs);
    FUZZ_ASSERT(whole.log.len == split.log.len && (!whole.log.len || !memcmp(whole.log.data, split.log.data, whole.log.len)),
                "events differ when the stream is split");
    FUZZ_ASSERT(pw == ps, "end-of-stream differs when split");
    ci_buf_free(&whole.log);
    ci_buf_free(&split.log);
    return 0;
}
