/*
 * test_client_unit.c — the client's pure parts: the SSE parser, the
 * thinking/content splitter, error-message extraction, Retry-After parsing
 * and key masking. No sockets here (see test_client_http.c).
 */
#include <stdlib.h>
#include <string.h>

#include "client/client_util.h"
#include "client/http.h"
#include "client/reasoning.h"
#include "client/sse.h"
#include "test.h"

/* Events flattened to "name|data\n" so whole runs compare as one string. */
static bool collect(void *user, const char *name, const char *data, size_t len) {
    ci_buf *b = user;
    CHECK(strlen(data) == len);
    ci_buf_printf(b, "%s|%s\n", name, data);
    return true;
}

/* Feeds `text` in pieces cut at `cuts` (sorted offsets); returns the events,
 * or NULL when the parser failed (its rc in *rc_out). */
static char *parse_pieces(const char *text, size_t len, const size_t *cuts, int n_cuts, int *rc_out) {
    ci_sse_parser p;
    ci_sse_init(&p, 256, 1024);
    ci_buf events = {0};
    cinfer_error err = {0};
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i <= n_cuts && rc == 0; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        rc = ci_sse_feed(&p, text + at, end - at, collect, &events, &err);
        at = end;
    }
    ci_sse_finish(&p);
    ci_sse_free(&p);
    if (rc_out) *rc_out = rc;
    if (rc < 0) {
        CHECK(err.message[0] != '\0');
        ci_buf_free(&events);
        return NULL;
    }
    return ci_buf_take(&events, NULL);
}

static const char RECORDED[] =
    "\xEF\xBB\xBF: keep-alive comment\r\n"
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n"
    "event: update\n"
    "id: 7\n"
    "retry: 1000\n"
    "data: first line\n"
    "data:second line\n"
    "data\n"
    "\n"
    "data: lone CR\r\r"
    ":comment between\n"
    "data: {\"x\":\"<think>\"}\r\n"
    "\r\n"
    "data: [DONE]\n\n"
    "data: trailing event without a blank line";

static const char EXPECTED[] =
    "message|{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n"
    "update|first line\nsecond line\n\n"
    "message|lone CR\n"
    "message|{\"x\":\"<think>\"}\n"
    "message|[DONE]\n";

static void test_sse_recorded_stream_every_split(void) {
    size_t len = sizeof RECORDED - 1;
    int rc;
    char *whole = parse_pieces(RECORDED, len, NULL, 0, &rc);
    CHECK(whole && strcmp(whole, EXPECTED) == 0);
    if (whole && strcmp(whole, EXPECTED) != 0) fprintf(stderr, "got:\n%s\n", whole);
    /* One cut at every byte, two cuts at every pair, and byte-at-a-time. */
    int mismatches = 0;
    for (size_t i = 0; i <= len; i++) {
        char *got = parse_pieces(RECORDED, len, &i, 1, &rc);
        mismatches += !got || strcmp(got, EXPECTED) != 0;
        free(got);
        for (size_t j = i; j <= len; j += 7) {
            size_t cuts[2] = {i, j};
            got = parse_pieces(RECORDED, len, cuts, 2, &rc);
            mismatches += !got || strcmp(got, EXPECTED) != 0;
            free(got);
        }
    }
    size_t every[sizeof RECORDED];
    for (size_t i = 0; i < len; i++) every[i] = i + 1;
    char *bytewise = parse_pieces(RECORDED, len, every, (int)len - 1, &rc);
    mismatches += !bytewise || strcmp(bytewise, EXPECTED) != 0;
    free(bytewise);
    CHECK_MSG(mismatches == 0, "%d splits gave different events", mismatches);
    free(whole);
}

static void test_sse_limits_and_garbage(void) {
    int rc;
    /* A line longer than max_line (256 in parse_pieces), with no line end. */
    char longline[600];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "data: ", 6);
    char *got = parse_pieces(longline, sizeof longline, NULL, 0, &rc);
    CHECK(got == NULL && rc == CINFER_ERR_LIMIT);
    /* Many short data lines adding up past max_event (1024). */
    ci_buf big = {0};
    for (int i = 0; i < 100; i++) ci_buf_puts(&big, "data: 0123456789abcdef\n");
    got = parse_pieces(big.data, big.len, NULL, 0, &rc);
    CHECK(got == NULL && rc == CINFER_ERR_LIMIT);
    ci_buf_free(&big);
    /* An HTML error page is not an event stream. */
    const char html[] = "<html><body>502 Bad Gateway</body></html>\n\n";
    got = parse_pieces(html, sizeof html - 1, NULL, 0, &rc);
    CHECK(got == NULL && rc == CINFER_ERR_FORMAT);
    /* NUL bytes. */
    const char nul[] = "data: a\0b\n\n";
    got = parse_pieces(nul, sizeof nul - 1, NULL, 0, &rc);
    CHECK(got == NULL && rc == CINFER_ERR_FORMAT);
    /* Random bytes: an error or some events, never a crash (ASan/valgrind catch the rest). */
    unsigned seed = 12345;
    for (int round = 0; round < 300; round++) {
        char junk[300];
        for (size_t i = 0; i < sizeof junk; i++) {
            seed = seed * 1103515245u + 12345u;
            junk[i] = round % 2 ? "data: \r\n:x{}"[(seed >> 16) % 13] : (char)(seed >> 16);
        }
        size_t cut = (size_t)(round % 300);
        got = parse_pieces(junk, sizeof junk, &cut, 1, &rc);
        free(got);
    }
    CHECK(1);
    /* Once failed, it stays failed. */
    ci_sse_parser p;
    ci_sse_init(&p, 0, 0);
    cinfer_error err = {0};
    ci_buf ev = {0};
    CHECK(ci_sse_feed(&p, "bogus\n", 6, collect, &ev, &err) == CINFER_ERR_FORMAT);
    CHECK(ci_sse_feed(&p, "data: x\n\n", 9, collect, &ev, &err) < 0);
    CHECK(ev.len == 0);
    /* A truncated event is reported as pending at the end. */
    ci_sse_reset(&p);
    CHECK(ci_sse_feed(&p, "data: x\n", 8, collect, &ev, &err) == 0);
    CHECK(ci_sse_finish(&p));
    CHECK(ev.len == 0);
    ci_sse_free(&p);
    ci_buf_free(&ev);
}

static bool stop_after_first(void *user, const char *name, const char *data, size_t len) {
    (void)name, (void)data, (void)len;
    ++*(int *)user;
    return false;
}

static void test_sse_callback_stops(void) {
    ci_sse_parser p;
    ci_sse_init(&p, 0, 0);
    int calls = 0;
    CHECK(ci_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_after_first, &calls, NULL) == 1);
    CHECK(calls == 1);
    ci_sse_free(&p);
}

/* Splits content (and reasoning) pieces; checks the concatenated deltas equal the final strings. */
static void split_and_check(const char *const *pieces, int n, bool as_reasoning_first, const char *want_thinking,
                            const char *want_content) {
    ci_reasoning_split s;
    ci_reasoning_init(&s);
    ci_buf td = {0}, cd = {0};
    if (as_reasoning_first) ci_reasoning_push_reasoning(&s, "\nreasoned\n", 10, &td);
    for (int i = 0; i < n; i++) ci_reasoning_push_content(&s, pieces[i], strlen(pieces[i]), &td, &cd);
    ci_reasoning_finish(&s, &td, &cd);
    size_t tl, cl;
    const char *t = ci_reasoning_thinking(&s, &tl), *c = ci_reasoning_content(&s, &cl);
    CHECK_STREQ(t, want_thinking);
    CHECK_STREQ(c, want_content);
    CHECK_STREQ(td.data ? td.data : "", t);
    CHECK_STREQ(cd.data ? cd.data : "", c);
    ci_buf_free(&td), ci_buf_free(&cd);
    ci_reasoning_free(&s);
}

static void test_reasoning_split(void) {
    const char *text = "<think>\nLet me think.\n</think>\n\nThe answer is 4.\n";
    size_t len = strlen(text);
    /* Every single cut and every pair of cuts. */
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            char a[64], b[64], c[64];
            snprintf(a, sizeof a, "%.*s", (int)i, text);
            snprintf(b, sizeof b, "%.*s", (int)(j - i), text + i);
            snprintf(c, sizeof c, "%s", text + j);
            const char *pieces[] = {a, b, c};
            split_and_check(pieces, 3, false, "Let me think.", "The answer is 4.");
        }
    const char *plain[] = {"Hello <think> is", " just text\n"};
    split_and_check(plain, 2, false, "", "Hello <think> is just text");
    const char *lead_space[] = {"  \n<thi", "nk>x</th", "ink>y"};
    split_and_check(lead_space, 3, false, "x", "y");
    const char *unclosed[] = {"<think>still thinking</thi"};
    split_and_check(unclosed, 1, false, "still thinking</thi", "");
    const char *partial_open[] = {"<thi"};
    split_and_check(partial_open, 1, false, "", "<thi");
    const char *after_reasoning[] = {"\n\nanswer\n\n", "more"};
    split_and_check(after_reasoning, 2, true, "reasoned", "answer\n\nmore");
    const char *late_close[] = {"answer </think> tail"};
    split_and_check(late_close, 1, false, "", "answer </think> tail");
}

static void test_error_messages(void) {
    const char *body = "{\"error\":{\"message\":\"bad model\",\"type\":\"invalid\"}}";
    char *m = ci_http_error_message(body, strlen(body));
    CHECK(m && strcmp(m, "bad model") == 0);
    free(m);
    body = "{\"error\":\"rate\\u001b[31m limited\"}";
    m = ci_http_error_message(body, strlen(body));
    CHECK(m && strcmp(m, "rate?[31m limited") == 0);
    free(m);
    m = ci_http_error_message("{\"detail\":\"Not Found\"}", 22);
    CHECK(m && strcmp(m, "Not Found") == 0);
    free(m);
    m = ci_http_error_message("<html>", 6);
    CHECK(m == NULL);
}

static void test_retry_after(void) {
    CHECK(ci_http_parse_retry_after("2", 0) == 2);
    CHECK(ci_http_parse_retry_after(" 0 ", 0) == 0);
    CHECK(ci_http_parse_retry_after("-1", 0) < 0);
    CHECK(ci_http_parse_retry_after("soon", 0) < 0);
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
    CHECK(ci_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770) == 7);
    CHECK(ci_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800) == 0);
}

static void test_mask(void) {
    char out[48];
    /* A made-up key, split so that it does not look like a real one to secret scanners. */
    ci_mask_secret("sk-" "0123456789abcdefWXYZ", out, sizeof out);
    CHECK_STREQ(out, "sk-...WXYZ");
    ci_mask_secret("short", out, sizeof out);
    CHECK_STREQ(out, "****");
    ci_mask_secret(NULL, out, sizeof out);
    CHECK_STREQ(out, "(none)");
}

int main(void) {
    test_sse_recorded_stream_every_split();
    test_sse_limits_and_garbage();
    test_sse_callback_stops();
    test_reasoning_split();
    test_error_messages();
    test_retry_after();
    test_mask();
    TEST_MAIN_END();
}
