/*
 * tok_decode.c — ids to text, whole or streamed.
 *
 * Decoding concatenates each token's bytes (ByteLevel tokens mapped back
 * through the byte alphabet, added tokens verbatim — as HF's decode does)
 * and then repairs invalid UTF-8 the way Python's bytes.decode(errors=
 * "replace") does. That repair is local: whether a byte belongs to a
 * maximal invalid subpart depends only on the bytes before it and the next
 * few after it. The stream decoder therefore emits everything up to the
 * last position where a character could still be completed by later tokens,
 * which makes pieces + flush equal to the full decode, byte for byte.
 */
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

static bool skip_id(const cinfer_tokenizer *t, int32_t id, bool skip_special) {
    /* Ids without a token decode to nothing, as in HF (which filters them). */
    if (id < 0 || (size_t)id >= t->n_ids || !t->entries[id].present) return true;
    return skip_special && t->entries[id].special;
}

char *cinfer_detokenize(const cinfer_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, size_t *len_out,
                        cinfer_error *err) {
    if (len_out) *len_out = 0;
    if (!t || (!ids && n)) {
        ci_error(err, CINFER_ERR_INVALID, "cinfer_detokenize: NULL argument");
        return NULL;
    }
    ci_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        if (skip_id(t, ids[i], skip_special)) continue;
        const ci_tok_entry *e = &t->entries[ids[i]];
        ci_buf_append(&raw, t->pool + e->bytes_off, e->bytes_len);
    }
    ci_buf out = {0};
    ci_utf8_append_lossy(&out, (const uint8_t *)raw.data, raw.len);
    ci_buf_free(&raw);
    if (!out.data) ci_buf_puts(&out, "");
    return ci_buf_take(&out, len_out);
}

struct cinfer_detok_stream {
    const cinfer_tokenizer *tok;
    bool skip_special;
    ci_buf pending; /* bytes that may still be the start of a character */
    ci_buf out;     /* what the last call returned */
};

cinfer_detok_stream *cinfer_detok_stream_new(const cinfer_tokenizer *tok, bool skip_special) {
    if (!tok) return NULL;
    cinfer_detok_stream *s = ci_calloc(1, sizeof *s);
    s->tok = tok;
    s->skip_special = skip_special;
    return s;
}

/* Moves the decidable prefix of `pending` to `out` (repairing invalid
 * sequences); at_end also decides a trailing truncated character. */
static void drain(cinfer_detok_stream *s, bool at_end) {
    s->out.len = 0;
    if (s->out.data) s->out.data[0] = '\0';
    const uint8_t *p = (const uint8_t *)s->pending.data;
    size_t n = s->pending.len, i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = ci_utf8_decode_valid(p + i, n - i, &cp);
        if (k) {
            i += k;
            continue;
        }
        if (ci_utf8_invalid_prefix_len(p + i, n - i, at_end) == 0) break; /* may still complete */
        i += ci_utf8_invalid_prefix_len(p + i, n - i, true);
    }
    ci_utf8_append_lossy(&s->out, p, i);
    memmove(s->pending.data, s->pending.data + i, n - i);
    s->pending.len = n - i;
}

const char *cinfer_detok_stream_push(cinfer_detok_stream *s, int32_t id, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!s) return "";
    if (!skip_id(s->tok, id, s->skip_special)) {
        const ci_tok_entry *e = &s->tok->entries[id];
        ci_buf_append(&s->pending, s->tok->pool + e->bytes_off, e->bytes_len);
    }
    if (!s->pending.data) ci_buf_puts(&s->pending, "");
    drain(s, false);
    if (!s->out.data) ci_buf_puts(&s->out, "");
    if (len_out) *len_out = s->out.len;
    return s->out.data;
}

const char *cinfer_detok_stream_flush(cinfer_detok_stream *s, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!s) return "";
    if (!s->pending.data) ci_buf_puts(&s->pending, "");
    drain(s, true);
    if (!s->out.data) ci_buf_puts(&s->out, "");
    if (len_out) *len_out = s->out.len;
    return s->out.data;
}

void cinfer_detok_stream_free(cinfer_detok_stream *s) {
    if (!s) return;
    ci_buf_free(&s->pending);
    ci_buf_free(&s->out);
    free(s);
}
