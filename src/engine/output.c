/*
 * output.c — see output.h. Each channel keeps what it emitted and a pending
 * tail; text moves from pending to emitted once it can no longer be the start
 * of a stop string or a run of trailing newlines.
 */
#include "engine/output.h"

#include <stdlib.h>
#include <string.h>

typedef struct channel {
    ci_buf emitted;
    ci_buf pending;
    bool started;   /* some non-newline text was seen (leading newlines dropped) */
} channel;

struct ci_output {
    const cinfer_tokenizer *tok;
    cinfer_detok_stream *detok;
    int32_t think_start, think_end;
    bool parse_thinking;
    bool in_thinking;
    bool any_token;
    bool stopped;
    bool keep_newlines;
    char *stop[CI_MAX_STOP_STRINGS];
    size_t stop_len[CI_MAX_STOP_STRINGS];
    int n_stop;
    channel ch[2]; /* 0 thinking, 1 content */
};

bool ci_prompt_opens_thinking(const cinfer_tokenizer *tok, const int32_t *prompt, int n) {
    int32_t start, end;
    if (cinfer_tokenizer_thinking_ids(tok, &start, &end) != 0) return false;
    for (int i = n - 1; i >= 0; i--) {
        if (prompt[i] == end) return false;
        if (prompt[i] == start) return true;
    }
    return false;
}

ci_output *ci_output_new(const cinfer_tokenizer *tok, const ci_output_options *opt) {
    ci_output *o = ci_calloc(1, sizeof *o);
    o->tok = tok;
    o->detok = cinfer_detok_stream_new(tok, true);
    bool has_thinking = cinfer_tokenizer_thinking_ids(tok, &o->think_start, &o->think_end) == 0;
    o->parse_thinking = opt->parse_thinking && has_thinking;
    o->in_thinking = o->parse_thinking && opt->thinking_open;
    o->keep_newlines = opt->keep_newlines;
    for (int i = 0; i < opt->n_stop && o->n_stop < CI_MAX_STOP_STRINGS; i++) {
        size_t len = strlen(opt->stop[i]);
        if (len == 0) continue; /* an empty stop string would match everywhere: ignore it */
        o->stop[o->n_stop] = ci_strndup(opt->stop[i], len);
        o->stop_len[o->n_stop++] = len;
    }
    return o;
}

void ci_output_free(ci_output *o) {
    if (!o) return;
    cinfer_detok_stream_free(o->detok);
    for (int i = 0; i < o->n_stop; i++) free(o->stop[i]);
    for (int c = 0; c < 2; c++) {
        ci_buf_free(&o->ch[c].emitted);
        ci_buf_free(&o->ch[c].pending);
    }
    free(o);
}

static void emit(channel *ch, const char *s, size_t n, ci_buf *delta) {
    if (!n) return;
    ci_buf_append(&ch->emitted, s, n);
    if (delta) ci_buf_append(delta, s, n);
}

/* Longest suffix of p[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_holdback(const ci_output *o, const char *p, size_t n) {
    size_t best = 0;
    for (int i = 0; i < o->n_stop; i++) {
        size_t max = o->stop_len[i] - 1 < n ? o->stop_len[i] - 1 : n;
        for (size_t k = max; k > best; k--)
            if (memcmp(p + n - k, o->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Moves what is safe from pending to emitted. Returns true on a stop match. */
static bool settle(ci_output *o, channel *ch, ci_buf *delta, bool final) {
    char *p = ch->pending.data;
    size_t n = ch->pending.len;
    if (!ch->started && o->keep_newlines && n) ch->started = true;
    if (!ch->started) { /* drop leading newlines */
        size_t k = 0;
        while (k < n && p[k] == '\n') k++;
        if (k) memmove(p, p + k, n - k); /* p is NULL while nothing is pending */
        n -= k;
        ch->pending.len = n;
        if (n) p[n] = '\0';
        if (n) ch->started = true;
    }
    /* Earliest stop match anywhere in pending. */
    size_t match = SIZE_MAX;
    for (int i = 0; i < o->n_stop; i++) {
        if (o->stop_len[i] > n) continue;
        const char *m = memmem(p, n, o->stop[i], o->stop_len[i]);
        if (m && (size_t)(m - p) < match) match = (size_t)(m - p);
    }
    size_t safe;
    bool stopped = match != SIZE_MAX;
    if (stopped) {
        safe = match;
        while (!o->keep_newlines && safe > 0 && p[safe - 1] == '\n') safe--; /* the match ends the channel */
        emit(ch, p, safe, delta);
        ch->pending.len = 0;
        return true;
    }
    if (final) {
        safe = n;
        while (!o->keep_newlines && safe > 0 && p[safe - 1] == '\n') safe--;
    } else {
        safe = n - stop_prefix_holdback(o, p, n);
        while (!o->keep_newlines && safe > 0 && p[safe - 1] == '\n') safe--;
    }
    emit(ch, p, safe, delta);
    if (safe) memmove(p, p + safe, n - safe);
    ch->pending.len = n - safe;
    if (ch->pending.data) ch->pending.data[ch->pending.len] = '\0';
    if (final) ch->pending.len = 0;
    return false;
}

static ci_buf *delta_for(int c, ci_buf *thinking_delta, ci_buf *content_delta) {
    return c == 0 ? thinking_delta : content_delta;
}

static bool add_text(ci_output *o, const char *s, size_t n, ci_buf *td, ci_buf *cd) {
    int c = o->in_thinking ? 0 : 1;
    if (n) ci_buf_append(&o->ch[c].pending, s, n);
    return settle(o, &o->ch[c], delta_for(c, td, cd), false);
}

bool ci_output_push(ci_output *o, int32_t token, ci_buf *td, ci_buf *cd) {
    if (o->stopped) return true;
    bool first = !o->any_token;
    o->any_token = true;
    if (o->parse_thinking) {
        if (token == o->think_end && o->in_thinking) {
            size_t n;
            const char *rest = cinfer_detok_stream_flush(o->detok, &n);
            add_text(o, rest, n, td, cd);
            settle(o, &o->ch[0], td, true);
            o->in_thinking = false;
            return false;
        }
        if (token == o->think_start && first && !o->in_thinking) {
            o->in_thinking = true;
            return false;
        }
    }
    size_t n;
    const char *piece = cinfer_detok_stream_push(o->detok, token, &n);
    if (add_text(o, piece, n, td, cd)) o->stopped = true;
    return o->stopped;
}

void ci_output_finish(ci_output *o, ci_buf *td, ci_buf *cd) {
    if (!o->stopped) {
        size_t n;
        const char *rest = cinfer_detok_stream_flush(o->detok, &n);
        if (add_text(o, rest, n, td, cd)) o->stopped = true;
    }
    for (int c = 0; c < 2; c++)
        if (!o->stopped) settle(o, &o->ch[c], delta_for(c, td, cd), true);
        else o->ch[c].pending.len = 0;
}

const char *ci_output_thinking(const ci_output *o, size_t *len) {
    if (len) *len = o->ch[0].emitted.len;
    return o->ch[0].emitted.data ? o->ch[0].emitted.data : "";
}

const char *ci_output_content(const ci_output *o, size_t *len) {
    if (len) *len = o->ch[1].emitted.len;
    return o->ch[1].emitted.data ? o->ch[1].emitted.data : "";
}

bool ci_output_in_thinking(const ci_output *o) { return o->in_thinking; }
