/*
 * sse.h — a Server-Sent Events parser (WHATWG "event stream" format), pure:
 * bytes in, events out, no I/O.
 *
 * Feed it the response body in whatever pieces the network delivers; it
 * calls back once per complete event, so a stream split at any byte gives
 * the same events. Lines end in LF, CRLF or a lone CR (a CRLF split across
 * two pieces counts once). `data:` lines of one event are joined with "\n";
 * comments (":" lines), `id:` and `retry:` are ignored; a leading UTF-8 BOM
 * is skipped.
 *
 * The server may be hostile, so the parser is strict where the spec is
 * lenient: a line longer than max_line, an event larger than max_event, a
 * NUL byte, or a field other than data/event/id/retry (which is what a
 * non-SSE body such as an HTML error page looks like) is an error, and the
 * parser stays failed. Memory held is bounded by max_line + max_event.
 */
#ifndef CINFER_CLIENT_SSE_H
#define CINFER_CLIENT_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "cinfer.h"
#include "util/util.h"

#define CI_SSE_DEFAULT_MAX_LINE (4u << 20)
#define CI_SSE_DEFAULT_MAX_EVENT (8u << 20)

/* One dispatched event. `data` is NUL-terminated (data_len bytes, may hold
 * "\n" between data lines); `name` is the `event:` field or "message".
 * Return false to stop parsing (ci_sse_feed then returns 1). */
typedef bool (*ci_sse_event_fn)(void *user, const char *name, const char *data, size_t data_len);

typedef struct ci_sse_parser {
    size_t max_line, max_event;
    ci_buf line;        /* the current, unfinished line */
    ci_buf data;        /* data of the current event, "\n" after each line */
    ci_buf name;        /* event type of the current event */
    bool has_data;      /* a data: field was seen in the current event */
    bool skip_lf;       /* the previous piece ended in CR: a leading LF is its pair */
    bool at_start;      /* nothing consumed yet (BOM check) */
    bool failed;
    bool stopped;       /* the callback asked to stop */
} ci_sse_parser;

/* max_line / max_event: 0 picks the defaults above. */
void ci_sse_init(ci_sse_parser *p, size_t max_line, size_t max_event);
void ci_sse_free(ci_sse_parser *p);
/* Returns to the initial state (keeps the limits and buffers). */
void ci_sse_reset(ci_sse_parser *p);

/* Consumes n bytes, dispatching complete events. Returns 0 to go on, 1 when
 * the callback returned false, or a negative cinfer_status on malformed
 * input (err filled; every later call fails the same way). */
int ci_sse_feed(ci_sse_parser *p, const char *bytes, size_t n, ci_sse_event_fn on_event, void *user,
                cinfer_error *err);

/* End of stream. An event not terminated by a blank line is dropped, as the
 * spec says; returns true when such an incomplete event (or line) was
 * pending, so a caller can tell a truncated stream from a clean end. */
bool ci_sse_finish(ci_sse_parser *p);

#endif
