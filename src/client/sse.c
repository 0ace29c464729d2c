/*
 * sse.c — Server-Sent Events parser; see sse.h for the contract.
 *
 * Bytes go into `line` until a line ending; complete lines are interpreted
 * at once, so nothing but the unfinished line and the current event's data
 * is ever kept. Limits are checked before appending, never after, so a
 * hostile server cannot make the buffers grow past them.
 */
#include "client/sse.h"

#include <string.h>

#include "client/client_util.h"

void ci_sse_init(ci_sse_parser *p, size_t max_line, size_t max_event) {
    *p = (ci_sse_parser){0};
    p->max_line = max_line ? max_line : CI_SSE_DEFAULT_MAX_LINE;
    p->max_event = max_event ? max_event : CI_SSE_DEFAULT_MAX_EVENT;
    p->at_start = true;
}

void ci_sse_free(ci_sse_parser *p) {
    ci_buf_free(&p->line);
    ci_buf_free(&p->data);
    ci_buf_free(&p->name);
}

void ci_sse_reset(ci_sse_parser *p) {
    p->line.len = p->data.len = p->name.len = 0;
    p->has_data = p->skip_lf = p->failed = p->stopped = false;
    p->at_start = true;
}

static int fail(ci_sse_parser *p, cinfer_error *err, int code, const char *what, const char *text, size_t len) {
    p->failed = true;
    if (!text) return ci_error(err, code, "malformed event stream: %s", what);
    char excerpt[96];
    ci_printable_excerpt(text, len, 64, excerpt, sizeof excerpt);
    return ci_error(err, code, "malformed event stream: %s: \"%s\"", what, excerpt);
}

static bool field_is(const char *field, size_t len, const char *name) {
    return len == strlen(name) && memcmp(field, name, len) == 0;
}

/* Interprets one complete line (without its ending). */
static int process_line(ci_sse_parser *p, const char *line, size_t len, ci_sse_event_fn on_event, void *user,
                        cinfer_error *err) {
    if (len == 0) {
        if (!p->has_data) {
            p->name.len = 0;
            return 0;
        }
        /* The spec drops the final "\n"; the data buffer always has one. */
        size_t data_len = p->data.len - 1;
        p->data.data[data_len] = '\0';
        const char *name = p->name.len ? p->name.data : "message";
        bool go_on = on_event(user, name, p->data.data, data_len);
        p->data.len = p->name.len = 0;
        p->has_data = false;
        if (!go_on) {
            p->stopped = true;
            return 1;
        }
        return 0;
    }
    if (line[0] == ':') return 0; /* comment: keep-alive pings */
    const char *colon = memchr(line, ':', len);
    size_t field_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len && value[0] == ' ') value++, value_len--;
    if (field_is(line, field_len, "data")) {
        size_t need;
        if (ci_add_overflow(p->data.len, value_len + 1, &need) || need > p->max_event)
            return fail(p, err, CINFER_ERR_LIMIT, "event larger than the limit", NULL, 0);
        ci_buf_append(&p->data, value, value_len);
        ci_buf_putc(&p->data, '\n');
        p->has_data = true;
    } else if (field_is(line, field_len, "event")) {
        p->name.len = 0;
        ci_buf_append(&p->name, value, value_len);
    } else if (field_is(line, field_len, "id") || field_is(line, field_len, "retry")) {
        /* Reconnection state: a chat completion is never resumed. */
    } else {
        return fail(p, err, CINFER_ERR_FORMAT, "unexpected line", line, len);
    }
    return 0;
}

/* The current line buffer, minus a leading BOM on the stream's first line. */
static int finish_line(ci_sse_parser *p, ci_sse_event_fn on_event, void *user, cinfer_error *err) {
    const char *line = p->line.data ? p->line.data : "";
    size_t len = p->line.len;
    if (p->at_start) {
        p->at_start = false;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
    }
    int rc = process_line(p, line, len, on_event, user, err);
    p->line.len = 0;
    return rc;
}

int ci_sse_feed(ci_sse_parser *p, const char *bytes, size_t n, ci_sse_event_fn on_event, void *user,
                cinfer_error *err) {
    if (p->failed) return ci_error(err, CINFER_ERR_FORMAT, "malformed event stream (already failed)");
    if (p->stopped) return 1;
    size_t i = 0;
    if (p->skip_lf && n > 0) {
        if (bytes[0] == '\n') i = 1;
        p->skip_lf = false;
    }
    while (i < n) {
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r') j++;
        size_t seg = j - i;
        if (memchr(bytes + i, '\0', seg)) return fail(p, err, CINFER_ERR_FORMAT, "NUL byte in the stream", NULL, 0);
        size_t need;
        if (ci_add_overflow(p->line.len, seg, &need) || need > p->max_line)
            return fail(p, err, CINFER_ERR_LIMIT, "line longer than the limit", NULL, 0);
        ci_buf_append(&p->line, bytes + i, seg);
        if (j == n) break;
        if (bytes[j] == '\r') {
            if (j + 1 < n) {
                if (bytes[j + 1] == '\n') j++;
            } else {
                p->skip_lf = true; /* the LF of a CRLF may start the next piece */
            }
        }
        i = j + 1;
        int rc = finish_line(p, on_event, user, err);
        if (rc != 0) return rc;
    }
    return 0;
}

bool ci_sse_finish(ci_sse_parser *p) {
    bool pending = p->line.len > 0 || p->has_data;
    p->line.len = p->data.len = p->name.len = 0;
    p->has_data = false;
    return pending;
}
