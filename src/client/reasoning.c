/*
 * reasoning.c — thinking/content splitting of streamed text; rules in
 * reasoning.h. A small state machine over the content channel:
 *   START     nothing but whitespace yet; `pending` holds it plus a possible
 *             partial "<think>";
 *   THINKING  inside <think>; `pending` holds a possible partial "</think>";
 *   CONTENT   plain content from here on (tags pass through as text).
 */
#include "client/reasoning.h"

#include <stdlib.h>
#include <string.h>

enum { STATE_START, STATE_THINKING, STATE_CONTENT };

static const char OPEN_TAG[] = "<think>";
static const char CLOSE_TAG[] = "</think>";

static void channel_free(ci_text_channel *c) {
    ci_buf_free(&c->text);
    ci_buf_free(&c->held);
}

void ci_reasoning_init(ci_reasoning_split *s) { *s = (ci_reasoning_split){0}; }

void ci_reasoning_free(ci_reasoning_split *s) {
    ci_buf_free(&s->pending);
    channel_free(&s->thinking);
    channel_free(&s->content);
}

void ci_reasoning_reset(ci_reasoning_split *s) {
    ci_reasoning_free(s);
    ci_reasoning_init(s);
}

/* Emits text on a channel: leading newlines dropped, trailing ones held. */
static void channel_push(ci_text_channel *c, const char *text, size_t len, ci_buf *delta) {
    if (!c->started) {
        while (len && *text == '\n') text++, len--;
        if (!len) return;
        c->started = true;
    }
    size_t body = len;
    while (body && text[body - 1] == '\n') body--;
    if (body) {
        if (c->held.len) {
            ci_buf_append(&c->text, c->held.data, c->held.len);
            if (delta) ci_buf_append(delta, c->held.data, c->held.len);
            c->held.len = 0;
        }
        ci_buf_append(&c->text, text, body);
        if (delta) ci_buf_append(delta, text, body);
    }
    ci_buf_append(&c->held, text + body, len - body);
}

void ci_reasoning_push_reasoning(ci_reasoning_split *s, const char *text, size_t len, ci_buf *thinking_delta) {
    channel_push(&s->thinking, text, len, thinking_delta);
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* Length of the longest suffix of text[0..len) that is a proper prefix of tag. */
static size_t partial_tag_suffix(const char *text, size_t len, const char *tag) {
    size_t tag_len = strlen(tag);
    for (size_t k = tag_len - 1; k > 0; k--)
        if (k <= len && memcmp(text + len - k, tag, k) == 0) return k;
    return 0;
}

static void push_thinking_text(ci_reasoning_split *s, const char *text, size_t len, ci_buf *td, ci_buf *cd) {
    /* `pending` (a partial close tag) comes first; search the joined text. */
    ci_buf_append(&s->pending, text, len);
    const char *all = s->pending.data ? s->pending.data : "";
    size_t all_len = s->pending.len;
    const char *close = all_len >= sizeof CLOSE_TAG - 1 ? memmem(all, all_len, CLOSE_TAG, sizeof CLOSE_TAG - 1) : NULL;
    if (close) {
        size_t before = (size_t)(close - all), after = before + sizeof CLOSE_TAG - 1;
        channel_push(&s->thinking, all, before, td);
        s->state = STATE_CONTENT;
        channel_push(&s->content, all + after, all_len - after, cd);
        s->pending.len = 0;
        return;
    }
    size_t keep = partial_tag_suffix(all, all_len, CLOSE_TAG);
    channel_push(&s->thinking, all, all_len - keep, td);
    memmove(s->pending.data, all + all_len - keep, keep);
    s->pending.len = keep;
}

void ci_reasoning_push_content(ci_reasoning_split *s, const char *text, size_t len, ci_buf *td, ci_buf *cd) {
    if (len == 0) return;
    if (s->state == STATE_CONTENT) {
        channel_push(&s->content, text, len, cd);
        return;
    }
    if (s->state == STATE_THINKING) {
        push_thinking_text(s, text, len, td, cd);
        return;
    }
    ci_buf_append(&s->pending, text, len);
    size_t start = 0;
    while (start < s->pending.len && is_space(s->pending.data[start])) start++;
    const char *rest = s->pending.data + start;
    size_t rest_len = s->pending.len - start, tag_len = sizeof OPEN_TAG - 1;
    if (rest_len < tag_len && memcmp(rest, OPEN_TAG, rest_len) == 0) return; /* undecided */
    if (rest_len >= tag_len && memcmp(rest, OPEN_TAG, tag_len) == 0) {
        s->state = STATE_THINKING;
        char *after = ci_strndup(rest + tag_len, rest_len - tag_len);
        s->pending.len = 0;
        push_thinking_text(s, after, rest_len - tag_len, td, cd);
        free(after);
        return;
    }
    s->state = STATE_CONTENT;
    char *all = ci_buf_take(&s->pending, &len);
    channel_push(&s->content, all, len, cd);
    free(all);
}

void ci_reasoning_finish(ci_reasoning_split *s, ci_buf *td, ci_buf *cd) {
    /* Held bytes were not a tag after all; trailing newlines stay dropped. */
    if (s->pending.len) {
        if (s->state == STATE_THINKING)
            channel_push(&s->thinking, s->pending.data, s->pending.len, td);
        else
            channel_push(&s->content, s->pending.data, s->pending.len, cd);
        s->pending.len = 0;
    }
    s->state = STATE_CONTENT;
    s->thinking.held.len = s->content.held.len = 0;
}

const char *ci_reasoning_thinking(const ci_reasoning_split *s, size_t *len) {
    *len = s->thinking.text.len;
    return s->thinking.text.data ? s->thinking.text.data : "";
}

const char *ci_reasoning_content(const ci_reasoning_split *s, size_t *len) {
    *len = s->content.text.len;
    return s->content.text.data ? s->content.text.data : "";
}
