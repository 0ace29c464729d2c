/*
 * tok_json.c — reads a Hugging Face tokenizer.json (+ tokenizer_config.json)
 * into the builder.
 *
 * Why strict: the file decides how every prompt is encoded, so anything we
 * do not implement exactly (other models, normalizers, decoders, dropout,
 * byte_fallback) is refused with a message naming the field, rather than
 * approximated. Wrong JSON types get the same treatment. Missing optional
 * fields take HF's serde defaults (e.g. ByteLevel add_prefix_space=true).
 *
 * Why two readers: model.vocab and model.merges are nearly all of the file
 * (~300k strings for Qwen3) and are read in place by one streaming pass
 * (tok_json_scan.c); jansson reads the rest from a copy with those two
 * values cut out. Everything works on text in memory; the path loader maps
 * the files and calls the same code (cinfer_tokenizer_load_json).
 */
#include "tokenizer/tok_json_scan.h"
#include "tokenizer/tokenizer_internal.h"

#include <jansson.h>
#include <string.h>

static int type_error(cinfer_error *err, const char *what, const char *expected) {
    return ci_error(err, CINFER_ERR_FORMAT, "%s must be %s", what, expected);
}

/* Optional bool: absent or null -> def. */
static int get_bool(json_t *obj, const char *key, bool def, bool *out, const char *ctx, cinfer_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        char what[160];
        snprintf(what, sizeof what, "%s.%s", ctx, key);
        return type_error(err, what, "true or false");
    }
    *out = json_is_true(v);
    return 0;
}

/* Optional string: absent or null -> NULL. */
static int get_string(json_t *obj, const char *key, const char **out, size_t *len, const char *ctx,
                      cinfer_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        char what[160];
        snprintf(what, sizeof what, "%s.%s", ctx, key);
        return type_error(err, what, "a string");
    }
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return 0;
}

static const char *type_of(json_t *obj) {
    json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* ------------------------------------------------------------- sections */

static int load_normalizer(ci_tok_builder *b, json_t *n, cinfer_error *err) {
    if (!n || json_is_null(n)) return 0;
    if (!json_is_object(n)) return type_error(err, "normalizer", "an object or null");
    const char *type = type_of(n);
    if (!type) return ci_error(err, CINFER_ERR_FORMAT, "normalizer has no \"type\"");
    if (strcmp(type, "NFC") == 0) {
        ci_tok_builder_set_normalizer(b, CI_NORMALIZER_NFC);
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return type_error(err, "normalizer.normalizers", "an array");
        size_t nfc_count = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *item = json_array_get(list, i);
            const char *it = json_is_object(item) ? type_of(item) : NULL;
            if (!it || strcmp(it, "NFC") != 0)
                return ci_error(err, CINFER_ERR_FORMAT, "normalizer.normalizers[%zu]: type \"%s\" is not supported (only NFC)",
                                i, it ? it : "?");
            nfc_count++;
        }
        if (nfc_count) ci_tok_builder_set_normalizer(b, CI_NORMALIZER_NFC); /* NFC is idempotent */
        return 0;
    }
    return ci_error(err, CINFER_ERR_FORMAT, "normalizer type \"%s\" is not supported (only NFC, Sequence of NFC, null)",
                    type);
}

static int parse_behavior(const char *s, ci_split_behavior *out) {
    static const struct {
        const char *name;
        ci_split_behavior b;
    } names[] = {{"Removed", CI_SPLIT_REMOVED},
                 {"Isolated", CI_SPLIT_ISOLATED},
                 {"MergedWithPrevious", CI_SPLIT_MERGED_WITH_PREVIOUS},
                 {"MergedWithNext", CI_SPLIT_MERGED_WITH_NEXT},
                 {"Contiguous", CI_SPLIT_CONTIGUOUS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].b;
            return 0;
        }
    return -1;
}

static int load_pretokenizer_one(ci_tok_builder *b, json_t *p, const char *ctx, cinfer_error *err) {
    if (!json_is_object(p)) return type_error(err, ctx, "an object");
    const char *type = type_of(p);
    if (!type) return ci_error(err, CINFER_ERR_FORMAT, "%s has no \"type\"", ctx);
    if (strcmp(type, "ByteLevel") == 0) {
        bool add_prefix_space = true, use_regex = true;
        if (get_bool(p, "add_prefix_space", true, &add_prefix_space, ctx, err) ||
            get_bool(p, "use_regex", true, &use_regex, ctx, err))
            return CINFER_ERR_FORMAT;
        return ci_tok_builder_set_byte_level(b, add_prefix_space, use_regex, err);
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pattern = json_object_get(p, "pattern");
        if (!json_is_object(pattern)) return ci_error(err, CINFER_ERR_FORMAT, "%s.pattern must be an object", ctx);
        const char *behavior_name;
        if (get_string(p, "behavior", &behavior_name, NULL, ctx, err)) return CINFER_ERR_FORMAT;
        ci_split_behavior behavior;
        if (!behavior_name || parse_behavior(behavior_name, &behavior) != 0)
            return ci_error(err, CINFER_ERR_FORMAT, "%s.behavior \"%s\" is not a known split behavior", ctx,
                            behavior_name ? behavior_name : "(missing)");
        bool invert = false;
        if (get_bool(p, "invert", false, &invert, ctx, err)) return CINFER_ERR_FORMAT;
        const char *rx, *lit;
        size_t rx_len, lit_len;
        if (get_string(pattern, "Regex", &rx, &rx_len, ctx, err) ||
            get_string(pattern, "String", &lit, &lit_len, ctx, err))
            return CINFER_ERR_FORMAT;
        int rc;
        if (rx) rc = ci_tok_builder_add_split_regex(b, rx, rx_len, behavior, invert, err);
        else if (lit) rc = ci_tok_builder_add_split_literal(b, lit, lit_len, behavior, invert, err);
        else return ci_error(err, CINFER_ERR_FORMAT, "%s.pattern has neither \"Regex\" nor \"String\"", ctx);
        if (rc) ci_error_prefix(err, "%s", ctx);
        return rc;
    }
    return ci_error(err, CINFER_ERR_FORMAT, "%s: pre-tokenizer type \"%s\" is not supported (only Split, ByteLevel)",
                    ctx, type);
}

static int load_pretokenizer(ci_tok_builder *b, json_t *p, cinfer_error *err) {
    if (!p || json_is_null(p))
        return ci_error(err, CINFER_ERR_FORMAT, "pre_tokenizer is null; only byte-level BPE tokenizers are supported");
    const char *type = json_is_object(p) ? type_of(p) : NULL;
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return type_error(err, "pre_tokenizer.pretokenizers", "an array");
        for (size_t i = 0; i < json_array_size(list); i++) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "pre_tokenizer.pretokenizers[%zu]", i);
            int rc = load_pretokenizer_one(b, json_array_get(list, i), ctx, err);
            if (rc) return rc;
        }
        return 0;
    }
    return load_pretokenizer_one(b, p, "pre_tokenizer", err);
}

static int load_decoder(json_t *d, cinfer_error *err) {
    if (!json_is_object(d)) return ci_error(err, CINFER_ERR_FORMAT, "decoder must be a ByteLevel decoder object");
    const char *type = type_of(d);
    if (!type || strcmp(type, "ByteLevel") != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "decoder type \"%s\" is not supported (only ByteLevel)",
                        type ? type : "?");
    return 0;
}

/* TemplateProcessing: remember the special token a "single" template puts
 * first (e.g. Llama-3's <|begin_of_text|>), to expose it. */
static void find_post_bos(ci_tok_builder *b, json_t *pp) {
    if (!json_is_object(pp)) return;
    const char *type = type_of(pp);
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(pp, "processors");
        for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++)
            find_post_bos(b, json_array_get(list, i));
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    json_t *single = json_object_get(pp, "single");
    json_t *first = json_is_array(single) ? json_array_get(single, 0) : NULL;
    json_t *special = json_is_object(first) ? json_object_get(first, "SpecialToken") : NULL;
    json_t *id = json_is_object(special) ? json_object_get(special, "id") : NULL;
    if (json_is_string(id)) ci_tok_builder_set_post_bos(b, json_string_value(id));
}

/* model.vocab as a jansson object (tok_json_scan.c reads it in one pass
 * when it is an object; this handles the rest, and the fallback path). */
static int load_vocab(ci_tok_builder *b, json_t *vocab, cinfer_error *err) {
    if (!json_is_object(vocab)) return type_error(err, "model.vocab", "an object of token -> id");
    if (json_object_size(vocab) > CI_TOK_MAX_IDS)
        return ci_error(err, CINFER_ERR_LIMIT, "model.vocab has %zu entries (limit %d)", json_object_size(vocab),
                        CI_TOK_MAX_IDS);
    for (void *it = json_object_iter(vocab); it; it = json_object_iter_next(vocab, it)) {
        const char *key = json_object_iter_key(it);
        size_t key_len = json_object_iter_key_len(it);
        json_t *value = json_object_iter_value(it);
        if (!json_is_integer(value))
            return ci_error(err, CINFER_ERR_FORMAT, "model.vocab[\"%.80s\"] must be an integer id", key);
        json_int_t id = json_integer_value(value);
        if (id < 0 || id >= CI_TOK_MAX_IDS)
            return ci_error(err, CINFER_ERR_FORMAT, "model.vocab[\"%.80s\"] = %lld is outside [0, %d)", key,
                            (long long)id, CI_TOK_MAX_IDS);
        int rc = ci_tok_builder_add_vocab(b, key, key_len, (int32_t)id, err);
        if (rc) return rc;
    }
    return 0;
}

static int load_merges(ci_tok_builder *b, json_t *merges, cinfer_error *err) {
    if (!merges || json_is_null(merges)) return 0;
    if (!json_is_array(merges)) return type_error(err, "model.merges", "an array");
    if (json_array_size(merges) > CI_TOK_MAX_MERGES)
        return ci_error(err, CINFER_ERR_LIMIT, "model.merges has %zu entries (limit %d)", json_array_size(merges),
                        CI_TOK_MAX_MERGES);
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *mg = json_array_get(merges, i);
        int rc;
        if (json_is_string(mg)) {
            rc = ci_tok_builder_add_merge_string(b, json_string_value(mg), json_string_length(mg), err);
        } else if (json_is_array(mg) && json_array_size(mg) == 2 && json_is_string(json_array_get(mg, 0)) &&
                   json_is_string(json_array_get(mg, 1))) {
            json_t *l = json_array_get(mg, 0), *r = json_array_get(mg, 1);
            rc = ci_tok_builder_add_merge(b, json_string_value(l), json_string_length(l), json_string_value(r),
                                          json_string_length(r), err);
        } else {
            return ci_error(err, CINFER_ERR_FORMAT, "model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", i);
        }
        if (rc) return rc;
    }
    return 0;
}

/* `streamed` says which of vocab / merges the streaming pass already added. */
static int load_model(ci_tok_builder *b, json_t *m, const ci_json_scan_result *streamed, cinfer_error *err) {
    if (!json_is_object(m)) return type_error(err, "model", "an object");
    const char *type = type_of(m);
    if (type && strcmp(type, "BPE") != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "model type \"%s\" is not supported (only BPE)", type);
    const char *s;
    if (get_string(m, "continuing_subword_prefix", &s, NULL, "model", err)) return CINFER_ERR_FORMAT;
    if (s && *s) return ci_error(err, CINFER_ERR_FORMAT, "model.continuing_subword_prefix is not supported");
    if (get_string(m, "end_of_word_suffix", &s, NULL, "model", err)) return CINFER_ERR_FORMAT;
    if (s && *s) return ci_error(err, CINFER_ERR_FORMAT, "model.end_of_word_suffix is not supported");
    bool byte_fallback = false, ignore_merges = false, fuse_unk = false;
    if (get_bool(m, "byte_fallback", false, &byte_fallback, "model", err) ||
        get_bool(m, "ignore_merges", false, &ignore_merges, "model", err) ||
        get_bool(m, "fuse_unk", false, &fuse_unk, "model", err))
        return CINFER_ERR_FORMAT;
    if (byte_fallback) return ci_error(err, CINFER_ERR_FORMAT, "model.byte_fallback=true is not supported");
    json_t *dropout = json_object_get(m, "dropout");
    if (dropout && !json_is_null(dropout)) {
        if (!json_is_number(dropout)) return type_error(err, "model.dropout", "a number or null");
        if (json_number_value(dropout) != 0.0)
            return ci_error(err, CINFER_ERR_FORMAT, "model.dropout is not supported (encoding would be random)");
    }
    const char *unk;
    if (get_string(m, "unk_token", &unk, NULL, "model", err)) return CINFER_ERR_FORMAT;
    ci_tok_builder_set_bpe_options(b, ignore_merges, unk, fuse_unk);

    if (!streamed->vocab.end) {
        int rc = load_vocab(b, json_object_get(m, "vocab"), err);
        if (rc) return rc;
    }
    return streamed->merges.end ? 0 : load_merges(b, json_object_get(m, "merges"), err);
}

static int load_added(ci_tok_builder *b, json_t *list, cinfer_error *err) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return type_error(err, "added_tokens", "an array");
    if (json_array_size(list) > CI_TOK_MAX_ADDED)
        return ci_error(err, CINFER_ERR_LIMIT, "added_tokens has %zu entries (limit %d)", json_array_size(list),
                        CI_TOK_MAX_ADDED);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *a = json_array_get(list, i);
        char ctx[48];
        snprintf(ctx, sizeof ctx, "added_tokens[%zu]", i);
        if (!json_is_object(a)) return type_error(err, ctx, "an object");
        json_t *id = json_object_get(a, "id");
        if (!json_is_integer(id)) return ci_error(err, CINFER_ERR_FORMAT, "%s.id must be an integer", ctx);
        json_int_t idv = json_integer_value(id);
        if (idv < 0 || idv >= CI_TOK_MAX_IDS)
            return ci_error(err, CINFER_ERR_FORMAT, "%s.id = %lld is outside [0, %d)", ctx, (long long)idv,
                            CI_TOK_MAX_IDS);
        ci_added_token_spec spec = {0};
        if (get_string(a, "content", &spec.content, &spec.content_len, ctx, err)) return CINFER_ERR_FORMAT;
        if (!spec.content) return ci_error(err, CINFER_ERR_FORMAT, "%s.content must be a string", ctx);
        spec.id = (int32_t)idv;
        if (get_bool(a, "special", false, &spec.special, ctx, err) ||
            get_bool(a, "lstrip", false, &spec.lstrip, ctx, err) ||
            get_bool(a, "rstrip", false, &spec.rstrip, ctx, err) ||
            get_bool(a, "single_word", false, &spec.single_word, ctx, err) ||
            get_bool(a, "normalized", !spec.special, &spec.normalized, ctx, err))
            return CINFER_ERR_FORMAT;
        int rc = ci_tok_builder_add_added(b, &spec, err);
        if (rc) return rc;
    }
    return 0;
}

/* bos_token / eos_token: a string, null, or {"content": "..."}. */
static int config_token(json_t *cfg, const char *key, char **out, cinfer_error *err) {
    *out = NULL;
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return ci_error(err, CINFER_ERR_FORMAT, "tokenizer_config.json: %s must be a string, null or {\"content\": string}",
                        key);
    *out = ci_strdup(json_string_value(v));
    return 0;
}

/* Parses one JSON document held in memory; `name` prefixes errors. */
static json_t *parse_json(const char *data, size_t len, size_t max_bytes, const char *name, cinfer_error *err) {
    if (len > max_bytes) {
        ci_error(err, CINFER_ERR_LIMIT, "%s: %zu bytes (limit %zu)", name, len, max_bytes);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        ci_error(err, CINFER_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", name, jerr.line, jerr.column,
                 jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ci_error(err, CINFER_ERR_FORMAT, "%s: the top level must be a JSON object", name);
        return NULL;
    }
    return root;
}

/* tokenizer.json sections into the builder. */
static int load_sections(ci_tok_builder *b, json_t *root, const ci_json_scan_result *streamed, cinfer_error *err) {
    if (!json_object_get(root, "model")) return ci_error(err, CINFER_ERR_FORMAT, "no \"model\" section");
    int rc = load_model(b, json_object_get(root, "model"), streamed, err);
    if (!rc) rc = load_normalizer(b, json_object_get(root, "normalizer"), err);
    if (!rc) rc = load_pretokenizer(b, json_object_get(root, "pre_tokenizer"), err);
    if (!rc) rc = load_decoder(json_object_get(root, "decoder"), err);
    if (!rc) rc = load_added(b, json_object_get(root, "added_tokens"), err);
    if (!rc) find_post_bos(b, json_object_get(root, "post_processor"));
    return rc;
}

/* bos/eos strings of tokenizer_config.json into the builder. */
static int load_config(ci_tok_builder *b, const char *cfg_json, size_t cfg_len, const char *name,
                       cinfer_error *err) {
    json_t *cfg = parse_json(cfg_json, cfg_len, CI_TOK_MAX_CONFIG_BYTES, name, err);
    if (!cfg) return err ? err->code : CINFER_ERR_FORMAT;
    char *bos = NULL, *eos = NULL;
    int rc = config_token(cfg, "bos_token", &bos, err);
    if (!rc) rc = config_token(cfg, "eos_token", &eos, err);
    if (rc) ci_error_prefix(err, "%s", name);
    else ci_tok_builder_set_special_strings(b, bos, eos);
    free(bos);
    free(eos);
    json_decref(cfg);
    return rc;
}

/* The text with the streamed values replaced by {} and [], for jansson. */
static char *cut_streamed(const char *json, size_t len, const ci_json_scan_result *r, size_t *out_len) {
    const ci_json_span *first = &r->vocab, *second = &r->merges;
    if (!first->end || (second->end && second->start < first->start)) {
        first = &r->merges;
        second = &r->vocab;
    }
    ci_buf out = {0};
    size_t at = 0;
    const ci_json_span *spans[2] = {first, second};
    for (int i = 0; i < 2; i++) {
        if (!spans[i]->end) continue;
        ci_buf_append(&out, json + at, spans[i]->start - at);
        ci_buf_puts(&out, spans[i] == &r->vocab ? "{}" : "[]");
        at = spans[i]->end;
    }
    ci_buf_append(&out, json + at, len - at);
    return ci_buf_take(&out, out_len);
}

/* Vocabulary and merges through the streaming pass, the rest through
 * jansson. On a syntax error the pass's partial work is dropped and jansson
 * reads the whole text: it reports the error with line and column. */
static json_t *parse_tokenizer_json(ci_tok_builder **b, const char *json, size_t len, const char *name,
                                    ci_json_scan_result *streamed, cinfer_error *err) {
    if (len > CI_TOK_MAX_FILE_BYTES) {
        ci_error(err, CINFER_ERR_LIMIT, "%s: %zu bytes (limit %zu)", name, len, CI_TOK_MAX_FILE_BYTES);
        return NULL;
    }
    int rc = ci_json_scan_model(*b, json, len, streamed, err);
    if (rc == CI_JSON_SCAN_SYNTAX) {
        ci_tok_builder_free(*b);
        *b = ci_tok_builder_new();
        memset(streamed, 0, sizeof *streamed);
        return parse_json(json, len, CI_TOK_MAX_FILE_BYTES, name, err);
    }
    if (rc) {
        ci_error_prefix(err, "%s", name);
        return NULL;
    }
    size_t cut_len;
    char *cut = cut_streamed(json, len, streamed, &cut_len);
    json_t *root = parse_json(cut, cut_len, CI_TOK_MAX_FILE_BYTES, name, err);
    free(cut);
    if (!root && err && err->code == CINFER_ERR_FORMAT) /* positions as in the original text */
        json_decref(parse_json(json, len, CI_TOK_MAX_FILE_BYTES, name, err));
    return root;
}

cinfer_tokenizer *ci_tok_load_hf_memory(const char *json, size_t len, const char *json_name, const char *cfg_json,
                                        size_t cfg_len, const char *cfg_name, cinfer_error *err) {
    ci_tok_builder *b = ci_tok_builder_new();
    ci_json_scan_result streamed;
    json_t *root = parse_tokenizer_json(&b, json, len, json_name, &streamed, err);
    int rc = root ? load_sections(b, root, &streamed, err) : CINFER_ERR_FORMAT;
    json_decref(root);
    if (rc && root) ci_error_prefix(err, "%s", json_name);
    else if (!rc && cfg_json) rc = load_config(b, cfg_json, cfg_len, cfg_name, err);
    if (rc) {
        ci_tok_builder_free(b);
        return NULL;
    }
    cinfer_tokenizer *t = ci_tok_builder_finish(b, err);
    if (!t) ci_error_prefix(err, "%s", json_name);
    return t;
}

cinfer_tokenizer *ci_tok_load_hf_json(const char *json_path, cinfer_error *err) {
    size_t cfg_len = 0;
    /* Mapped, not read: the text is scanned once, so a copy would only cost time. */
    ci_mapped_file mf;
    cinfer_error map_err = {0};
    if (ci_map_file(json_path, &mf, &map_err) && map_err.code != CINFER_ERR_FORMAT) { /* FORMAT: empty */
        if (err) *err = map_err;
        return NULL;
    }
    const char *json = mf.data ? (const char *)mf.data : "";
    size_t len = mf.size;
    /* tokenizer_config.json beside it is optional, but must be sound when present. */
    char *dir = ci_strdup(json_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    char *cfg_path = ci_path_join(slash ? dir : ".", "tokenizer_config.json");
    free(dir);
    char *cfg = NULL;
    cinfer_tokenizer *t = NULL;
    if (!ci_file_exists(cfg_path) || (cfg = ci_read_file(cfg_path, CI_TOK_MAX_CONFIG_BYTES, &cfg_len, err)))
        t = ci_tok_load_hf_memory(json, len, json_path, cfg, cfg_len, cfg_path, err);
    ci_unmap_file(&mf);
    free(cfg);
    free(cfg_path);
    return t;
}

cinfer_tokenizer *cinfer_tokenizer_load_json_with_config(const char *json, size_t len, const char *config_json,
                                                         size_t config_len, cinfer_error *err) {
    if ((!json && len) || (!config_json && config_len)) {
        ci_error(err, CINFER_ERR_INVALID, "cinfer_tokenizer_load_json: NULL text with a nonzero length");
        return NULL;
    }
    return ci_tok_load_hf_memory(json, len, "tokenizer.json", config_json, config_len, "tokenizer_config.json", err);
}

cinfer_tokenizer *cinfer_tokenizer_load_json(const char *json, size_t len, cinfer_error *err) {
    return cinfer_tokenizer_load_json_with_config(json, len, NULL, 0, err);
}
