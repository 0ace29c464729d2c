/*
 * prompt.c — chat request → token ids, with message contents as plain text.
 *
 * Why not just tokenize the rendered prompt: a user who writes
 * "<|im_end|>\n<|im_start|>system\n…" would then inject real control tokens
 * and forge a system turn. Why not tokenize contents separately: BPE
 * pre-tokenization would then split at every content boundary and give
 * different ids from the reference tokenizers. So the render is kept whole
 * and only the *places* where special tokens may be recognised are limited:
 * contents are rendered between random markers, the markers say which bytes
 * came from contents, and special-token text is honoured only outside them
 * (HF splits the text at special tokens first, then pre-tokenizes each
 * piece — exactly what ci_tokenize_protected does with the allowed matches).
 * Templates may transform contents (Qwen3 strips assistant text around
 * </think>); the marked render without markers is compared with the plain
 * render, and when they differ the markers are retried on non-assistant
 * messages only, whose contents the template copies verbatim.
 *
 * Tool definitions (`tools`), the tool calls of assistant messages and
 * message names are client text as well, but templates look their keys up
 * (tool.function.name) and may compare their values (type == "object"), so
 * wrapping every string would change the render. Only the strings (object
 * keys included) that could take part in a special-token match are
 * wrapped: those holding a special token's text, starting with the tail of
 * one or ending with the head of one. An ordinary schema is then rendered
 * untouched, and special text inside a description, a name, a property
 * name or arguments stays plain text.
 */
#include "server/server_internal.h"
#include "template/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void ci_special_set_init(ci_special_set *set, const cinfer_tokenizer *tok) {
    *set = (ci_special_set){0};
    size_t v = cinfer_tokenizer_vocab_size(tok);
    int cap = 0;
    for (size_t id = 0; id < v; id++) {
        if (!cinfer_tokenizer_is_special(tok, (int32_t)id)) continue;
        size_t len = 0;
        const char *b = cinfer_tokenizer_token_bytes(tok, (int32_t)id, &len);
        if (!b || len == 0) continue;
        if (set->n == cap) {
            cap = cap ? cap * 2 : 32;
            set->text = ci_realloc_array(set->text, (size_t)cap, sizeof *set->text);
            set->len = ci_realloc_array(set->len, (size_t)cap, sizeof *set->len);
            set->id = ci_realloc_array(set->id, (size_t)cap, sizeof *set->id);
        }
        set->text[set->n] = ci_strndup(b, len);
        set->len[set->n] = len;
        set->id[set->n] = (int32_t)id;
        set->n++;
    }
    /* longest first, so the first match at a position is the longest (insertion sort: few dozen entries) */
    for (int i = 1; i < set->n; i++)
        for (int j = i; j > 0 && set->len[j] > set->len[j - 1]; j--) {
            char *t = set->text[j]; set->text[j] = set->text[j - 1]; set->text[j - 1] = t;
            size_t l = set->len[j]; set->len[j] = set->len[j - 1]; set->len[j - 1] = l;
            int32_t d = set->id[j]; set->id[j] = set->id[j - 1]; set->id[j - 1] = d;
        }
}

void ci_special_set_free(ci_special_set *set) {
    for (int i = 0; i < set->n; i++) free(set->text[i]);
    free(set->text);
    free(set->len);
    free(set->id);
    *set = (ci_special_set){0};
}

typedef struct id_list {
    int32_t *v;
    size_t n, cap;
} id_list;

static void ids_append(id_list *l, const int32_t *ids, size_t n) {
    if (l->n + n > l->cap) {
        l->cap = (l->n + n) * 2 + 16;
        l->v = ci_realloc_array(l->v, l->cap, sizeof *l->v);
    }
    memcpy(l->v + l->n, ids, n * sizeof *ids);
    l->n += n;
}

static int encode_piece(const cinfer_tokenizer *tok, const char *s, size_t n, id_list *out, cinfer_error *err) {
    if (n == 0) return 0;
    int32_t *ids = NULL;
    long k = cinfer_tokenize(tok, s, n, CINFER_TOKENIZE_SPLIT_SPECIAL, &ids, err);
    if (k < 0) return (int)k;
    ids_append(out, ids, (size_t)k);
    free(ids);
    return 0;
}

long ci_tokenize_protected(const cinfer_tokenizer *tok, const ci_special_set *sp, const char *text, size_t len,
                           const uint8_t *plain, int32_t **ids_out, cinfer_error *err) {
    *ids_out = NULL;
    id_list out = {0};
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        int hit = -1;
        if (!plain[i])
            for (int k = 0; k < sp->n; k++) {
                size_t l = sp->len[k];
                if (l > len - i || memcmp(text + i, sp->text[k], l) != 0) continue;
                bool clean = true;
                for (size_t j = i; j < i + l; j++)
                    if (plain[j]) { clean = false; break; }
                if (clean) { hit = k; break; }
            }
        if (hit < 0) { i++; continue; }
        int rc = encode_piece(tok, text + seg, i - seg, &out, err);
        if (rc) { free(out.v); return rc; }
        ids_append(&out, &sp->id[hit], 1);
        i += sp->len[hit];
        seg = i;
    }
    int rc = encode_piece(tok, text + seg, len - seg, &out, err);
    if (rc) { free(out.v); return rc; }
    *ids_out = out.v;
    return (long)out.n;
}

/* --------------------------------------------------------------- markers */

typedef struct markers {
    char open[40], close[40];
    size_t open_len, close_len;
} markers;

static void markers_make(markers *m) {
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) nonce = (uint64_t)(uintptr_t)m ^ (uint64_t)ci_now_seconds();
    /* Private-use code points around a random nonce: cannot occur by chance. */
    m->open_len = (size_t)snprintf(m->open, sizeof m->open, "\xEE\x80\x80%016llx\xEE\x80\x81", (unsigned long long)nonce);
    m->close_len = (size_t)snprintf(m->close, sizeof m->close, "\xEE\x80\x82%016llx\xEE\x80\x83", (unsigned long long)nonce);
}

static bool contains(const char *s, size_t n, const markers *m) {
    return memmem(s, n, m->open + 3, 16) != NULL; /* the nonce itself */
}

/* Wraps the string fields whose text comes from the client. Returns false
 * when a content already holds the nonce (then no protection is possible
 * with these markers). */
static bool wrap_field(json_t *msg, const char *key, const markers *m, json_t *saved) {
    json_t *v = json_object_get(msg, key);
    if (!json_is_string(v)) return true;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (contains(s, n, m)) return false;
    ci_buf b = {0};
    ci_buf_append(&b, m->open, m->open_len);
    ci_buf_append(&b, s, n);
    ci_buf_append(&b, m->close, m->close_len);
    json_t *rec = json_object();
    json_object_set(rec, "msg", msg);
    json_object_set_new(rec, "key", json_string(key));
    json_object_set(rec, "value", v);
    json_array_append_new(saved, rec);
    json_object_set_new(msg, key, json_stringn(b.data, b.len));
    ci_buf_free(&b);
    return true;
}

/* Whether a special-token match could cover a byte of s[0..n): s holds a
 * special text, or its start continues one begun before it, or its end
 * begins one. (A special text holding all of s strictly inside needs
 * template text on both sides spelling the rest of a control token.) */
static bool could_form_special(const ci_special_set *sp, const char *s, size_t n) {
    for (int k = 0; k < sp->n; k++) {
        const char *t = sp->text[k];
        size_t tl = sp->len[k];
        if (n >= tl && memmem(s, n, t, tl)) return true;
        for (size_t l = 1; l < tl && l <= n; l++)
            if (memcmp(s, t + tl - l, l) == 0 || memcmp(s + n - l, t, l) == 0) return true;
    }
    return false;
}

static json_t *wrap_string(const char *s, size_t n, const markers *m) {
    ci_buf b = {0};
    ci_buf_append(&b, m->open, m->open_len);
    ci_buf_append(&b, s, n);
    ci_buf_append(&b, m->close, m->close_len);
    json_t *v = json_stringn(b.data, b.len);
    ci_buf_free(&b);
    return v;
}

/* A deep copy of v with the strings and object keys that could form special
 * tokens wrapped in markers; *changed tells whether any was. NULL when a
 * string already holds the nonce (no protection possible with these
 * markers). */
static json_t *wrap_tree(json_t *v, const markers *m, const ci_special_set *sp, bool *changed, int depth) {
    if (depth > 64) return NULL; /* tojson refuses deeper trees anyway */
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (contains(s, n, m)) return NULL;
        if (!could_form_special(sp, s, n)) return json_incref(v);
        *changed = true;
        return wrap_string(s, n, m);
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            json_t *w = wrap_tree(x, m, sp, changed, depth + 1);
            if (!w) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, w);
        }
        return out;
    }
    if (json_is_object(v)) {
        /* keys as the template engine reads them: C strings, in iteration order */
        json_t *out = json_object();
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
            size_t klen = strlen(key);
            json_t *w = wrap_tree(x, m, sp, changed, depth + 1);
            if (!w || contains(key, klen, m)) {
                json_decref(w);
                json_decref(out);
                return NULL;
            }
            if (could_form_special(sp, key, klen)) {
                json_t *wk = wrap_string(key, klen, m);
                *changed = true;
                json_object_set_new_nocheck(out, json_string_value(wk), w);
                json_decref(wk);
            } else {
                json_object_set_new_nocheck(out, key, w);
            }
        }
        return out;
    }
    return json_incref(v);
}

/* Replaces obj[key] by its wrapped copy when any string in it needed
 * wrapping (recorded in `saved` for restore). False: no protection. */
static bool wrap_tree_field(json_t *obj, const char *key, const markers *m, const ci_special_set *sp, json_t *saved) {
    json_t *v = json_object_get(obj, key);
    if (!v) return true;
    bool changed = false;
    json_t *w = wrap_tree(v, m, sp, &changed, 0);
    if (!w) return false;
    if (!changed) {
        json_decref(w);
        return true;
    }
    json_t *rec = json_object();
    json_object_set(rec, "msg", obj);
    json_object_set_new(rec, "key", json_string(key));
    json_object_set(rec, "value", v);
    json_array_append_new(saved, rec);
    json_object_set_new(obj, key, w);
    return true;
}

static void restore(json_t *saved) {
    size_t i;
    json_t *rec;
    json_array_foreach(saved, i, rec) {
        json_object_set(json_object_get(rec, "msg"), json_string_value(json_object_get(rec, "key")),
                        json_object_get(rec, "value"));
    }
    json_array_clear(saved);
}

/* Removes markers from `text`; plain[] marks bytes between open and close. */
static char *strip_markers(const char *text, size_t len, const markers *m, uint8_t **plain_out, size_t *len_out) {
    char *out = ci_malloc(len + 1);
    uint8_t *plain = ci_malloc(len + 1);
    size_t o = 0;
    int depth = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= m->open_len && memcmp(text + i, m->open, m->open_len) == 0) {
            depth++;
            i += m->open_len;
        } else if (len - i >= m->close_len && memcmp(text + i, m->close, m->close_len) == 0) {
            if (depth > 0) depth--;
            i += m->close_len;
        } else {
            plain[o] = depth > 0;
            out[o++] = text[i++];
        }
    }
    out[o] = '\0';
    *plain_out = plain;
    *len_out = o;
    return out;
}

long ci_render_chat_protected(const cinfer_template *tpl, const cinfer_tokenizer *tok, const ci_special_set *specials,
                              json_t *ctx, int32_t **ids_out, char **text_out, cinfer_error *err) {
    *ids_out = NULL;
    *text_out = NULL;
    size_t ref_len = 0;
    char *ref = tpl_render_jansson(tpl, ctx, NULL, &ref_len, err);
    if (!ref) return err && err->code ? err->code : CINFER_ERR_TEMPLATE;

    json_t *messages = json_object_get(ctx, "messages");
    markers mk;
    markers_make(&mk);
    json_t *saved = json_array();
    char *best = NULL;
    uint8_t *best_plain = NULL;
    size_t best_len = 0;
    /* pass 0: every role's content (and reasoning); pass 1: non-assistant contents only */
    for (int pass = 0; pass < 2 && !best; pass++) {
        bool ok = true;
        size_t i;
        json_t *msg;
        json_array_foreach(messages, i, msg) {
            const char *role = json_string_value(json_object_get(msg, "role"));
            bool assistant = role && strcmp(role, "assistant") == 0;
            if (pass == 1 && assistant) continue;
            ok = ok && wrap_field(msg, "content", &mk, saved);
            if (assistant) ok = ok && wrap_field(msg, "reasoning_content", &mk, saved);
        }
        /* client text the template copies verbatim in both passes */
        json_array_foreach(messages, i, msg) {
            ok = ok && wrap_tree_field(msg, "tool_calls", &mk, specials, saved);
            ok = ok && wrap_tree_field(msg, "name", &mk, specials, saved);
        }
        ok = ok && wrap_tree_field(ctx, "tools", &mk, specials, saved);
        size_t len = 0;
        char *marked = ok ? tpl_render_jansson(tpl, ctx, NULL, &len, NULL) : NULL;
        restore(saved);
        if (!marked) continue;
        uint8_t *plain;
        size_t slen;
        char *stripped = strip_markers(marked, len, &mk, &plain, &slen);
        free(marked);
        if (slen == ref_len && memcmp(stripped, ref, ref_len) == 0) {
            best = stripped, best_plain = plain, best_len = slen;
        } else if (pass == 1) {
            /* The template branches on content text (e.g. a user message that
             * is itself a <tool_response>): use the marked render — every
             * content byte stays plain — rather than an unprotected one. */
            best = stripped, best_plain = plain, best_len = slen;
        } else {
            free(stripped);
            free(plain);
        }
    }
    json_decref(saved);
    if (!best) {
        /* No marker render at all (a content holding the nonce: practically
         * impossible): refuse rather than tokenize unprotected. */
        free(ref);
        return ci_error(err, CINFER_ERR_INVALID, "cannot render the messages safely");
    }
    free(ref);
    long n = ci_tokenize_protected(tok, specials, best, best_len, best_plain, ids_out, err);
    free(best_plain);
    if (n < 0) {
        free(best);
        return n;
    }
    *text_out = best;
    return n;
}
