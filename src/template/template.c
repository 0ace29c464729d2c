/*
 * template.c — public chat-template API (cinfer.h) on top of the interpreter.
 *
 * Parsing first normalizes the source exactly as Jinja2 does before lexing
 * (every \r\n or \r becomes \n, one trailing newline is dropped), so the
 * token positions point into that normalized copy. Template sources are
 * found the way transformers finds them: chat_template.jinja beats
 * tokenizer_config.json's "chat_template", which may also be a list of named
 * templates where "default" wins.
 */
#include "format/gguf.h"
#include "template/template.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl_internal.h"

void tpl_limits_default(tpl_limits *l) {
    l->max_source_bytes = 1u << 20;     /* real templates are < 20 KiB */
    l->max_nesting = 200;
    l->max_depth = 3000;
    l->max_macro_depth = 100;
    l->max_iterations = 10000000;
    l->max_output_bytes = 256u << 20;
    l->max_string_bytes = 256u << 20;
    /* A render builds a few times its output; this stops loops that keep
     * copying or retaining large values (10M iterations x 256 MiB). */
    l->max_built_bytes = (size_t)1 << 30;
}

cinfer_template *tpl_parse_with_limits(const char *source, size_t len, const tpl_limits *limits,
                                       cinfer_error *err) {
    tpl_limits defaults;
    if (!limits) {
        tpl_limits_default(&defaults);
        limits = &defaults;
    }
    if (!source && len) {
        ci_error(err, CINFER_ERR_INVALID, "template source is NULL");
        return NULL;
    }
    if (len > limits->max_source_bytes) {
        ci_error(err, CINFER_ERR_LIMIT, "template is %zu bytes, limit %zu", len, limits->max_source_bytes);
        return NULL;
    }
    if (!utf8_valid(source ? source : "", len)) {
        ci_error(err, CINFER_ERR_TEMPLATE, "template is not valid UTF-8");
        return NULL;
    }
    cinfer_template *tpl = ci_calloc(1, sizeof *tpl);
    /* newline normalization and trailing-newline removal (jinja2 lexer.tokeniter) */
    char *norm = ci_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = source[i];
        if (c == '\r') {
            if (i + 1 < len && source[i + 1] == '\n') i++;
            c = '\n';
        }
        norm[n++] = c;
    }
    if (n && norm[n - 1] == '\n') n--;
    norm[n] = '\0';
    tpl->source = norm;
    tpl->source_len = n;
    if (tpl_lex(norm, n, &tpl->toks, err) != 0 || tpl_parse(tpl, limits, err) != 0) {
        cinfer_template_free(tpl);
        return NULL;
    }
    return tpl;
}

cinfer_template *cinfer_template_parse(const char *source, size_t len, cinfer_error *err) {
    return tpl_parse_with_limits(source, len, NULL, err);
}

void cinfer_template_free(cinfer_template *tpl) {
    if (!tpl) return;
    tpl_nodes_free(tpl);
    tpl_tokens_free(&tpl->toks);
    free(tpl->source);
    free(tpl);
}

char *cinfer_template_render_json(const cinfer_template *tpl, const char *context_json, size_t context_len,
                                  size_t *len_out, cinfer_error *err) {
    if (!context_json) {
        ci_error(err, CINFER_ERR_INVALID, "template context is NULL");
        return NULL;
    }
    json_error_t jerr;
    json_t *ctx = json_loadb(context_json, context_len, JSON_ALLOW_NUL, &jerr);
    if (!ctx) {
        ci_error(err, CINFER_ERR_INVALID, "template context: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return NULL;
    }
    char *out = tpl_render_jansson(tpl, ctx, NULL, len_out, err);
    json_decref(ctx);
    return out;
}

/* ------------------------------------------------------------ source load */

/* The path loader only finds and reads files; what their bytes mean is
 * decided by the in-memory entry points below, which fuzzers and callers
 * that already hold the bytes (an open GGUF) use directly. */

/* Largest tokenizer_config.json / chat_template.jinja accepted (real ones are
 * < 20 KiB; some configs embed a large added-tokens table). */
#define MAX_CONFIG_BYTES (64u << 20)
#define MAX_JINJA_BYTES (16u << 20)

/* bos_token / eos_token in tokenizer_config.json: a string, null, or an
 * AddedToken object {"content": ...}. */
static char *token_text(const json_t *v) {
    if (json_is_string(v)) return ci_strndup(json_string_value(v), json_string_length(v));
    if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "content");
        if (json_is_string(c)) return ci_strndup(json_string_value(c), json_string_length(c));
    }
    return NULL;
}

static int template_from_config(const json_t *cfg, const char *name, char **out, cinfer_error *err) {
    const json_t *ct = json_object_get(cfg, "chat_template");
    if (json_is_string(ct)) {
        *out = ci_strndup(json_string_value(ct), json_string_length(ct));
        return 0;
    }
    if (json_is_array(ct)) {
        size_t i;
        const json_t *entry;
        json_array_foreach(ct, i, entry) {
            const json_t *tname = json_object_get(entry, "name"), *text = json_object_get(entry, "template");
            if (json_is_string(tname) && strcmp(json_string_value(tname), "default") == 0 && json_is_string(text)) {
                *out = ci_strndup(json_string_value(text), json_string_length(text));
                return 0;
            }
        }
        return ci_error(err, CINFER_ERR_FORMAT, "%s: chat_template lists named templates but none is \"default\"",
                        name);
    }
    if (ct && !json_is_null(ct)) return ci_error(err, CINFER_ERR_FORMAT, "%s: chat_template is neither a string nor a list", name);
    return ci_error(err, CINFER_ERR_FORMAT, "%s: no chat_template", name);
}

static int parse_config(const char *text, size_t len, const char *name, json_t **cfg, cinfer_error *err) {
    if (len > MAX_CONFIG_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "%s: %zu bytes, limit %u", name, len, MAX_CONFIG_BYTES);
    json_error_t jerr;
    *cfg = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!*cfg || !json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return ci_error(err, CINFER_ERR_FORMAT, "%s: invalid JSON (line %d: %s)", name, jerr.line, jerr.text);
    }
    return 0;
}

int cinfer_chat_template_source_from_memory(const char *config_json, size_t config_len, const char *jinja,
                                            size_t jinja_len, const char *name, cinfer_chat_template_source *out,
                                            cinfer_error *err) {
    if (!out || (!config_json && config_len) || (!jinja && jinja_len))
        return ci_error(err, CINFER_ERR_INVALID, "chat template source: NULL argument");
    memset(out, 0, sizeof *out);
    if (!name) name = jinja ? "chat_template.jinja" : "tokenizer_config.json";
    if (!config_json && !jinja)
        return ci_error(err, CINFER_ERR_INVALID, "%s: neither chat_template.jinja nor tokenizer_config.json given", name);
    if (jinja && jinja_len > MAX_JINJA_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "%s: chat_template.jinja is %zu bytes, limit %u", name, jinja_len,
                        MAX_JINJA_BYTES);
    json_t *cfg = NULL;
    int rc = config_json ? parse_config(config_json, config_len, name, &cfg, err) : 0;
    if (rc == 0) {
        if (jinja) out->template_text = ci_strndup(jinja, jinja_len); /* the .jinja file beats the config */
        else rc = template_from_config(cfg, name, &out->template_text, err);
    }
    if (rc == 0 && cfg) {
        out->bos_token = token_text(json_object_get(cfg, "bos_token"));
        out->eos_token = token_text(json_object_get(cfg, "eos_token"));
    }
    json_decref(cfg);
    if (rc != 0) cinfer_chat_template_source_free(out);
    return rc;
}

/* A GGUF file carries the template as tokenizer.chat_template and the
 * special tokens as ids into tokenizer.ggml.tokens. */
static char *gguf_token_text(const ci_gguf_file *f, const char *key) {
    const ci_gguf_value *tokens = ci_gguf_get_array(f, "tokenizer.ggml.tokens", CI_GGUF_STRING);
    uint32_t id;
    if (!tokens || !ci_gguf_get_u32(f, key, &id) || id >= tokens->v.arr.count) return NULL;
    return ci_strndup(tokens->v.arr.strings[id].ptr, tokens->v.arr.strings[id].len);
}

int tpl_source_from_gguf(const ci_gguf_file *f, const char *name, cinfer_chat_template_source *out,
                         cinfer_error *err) {
    if (!f || !out) return ci_error(err, CINFER_ERR_INVALID, "chat template source: NULL argument");
    memset(out, 0, sizeof *out);
    out->template_text = ci_gguf_dup_str(f, "tokenizer.chat_template");
    if (!out->template_text)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: no tokenizer.chat_template in this GGUF file", name ? name : "GGUF");
    out->bos_token = gguf_token_text(f, "tokenizer.ggml.bos_token_id");
    out->eos_token = gguf_token_text(f, "tokenizer.ggml.eos_token_id");
    return 0;
}

/* Returns 1 when `path` is not a GGUF file (so other sources are tried). */
static int load_from_gguf(const char *path, cinfer_chat_template_source *out, cinfer_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 1;
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) return 1;
    ci_gguf_file *f = ci_gguf_open(path, err);
    if (!f) return err ? err->code : CINFER_ERR_FORMAT;
    int rc = tpl_source_from_gguf(f, path, out, err);
    ci_gguf_close(f);
    return rc;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Reads `path` into *text when it exists (leaves *text NULL when not). */
static int read_if_present(const char *path, size_t max, char **text, size_t *len, cinfer_error *err) {
    if (!ci_file_exists(path)) return 0;
    *text = ci_read_file(path, max, len, err);
    return *text ? 0 : (err ? err->code : CINFER_ERR_IO);
}

int cinfer_chat_template_source_load(const char *path, cinfer_chat_template_source *out, cinfer_error *err) {
    if (!path || !out) return ci_error(err, CINFER_ERR_INVALID, "chat template source: NULL argument");
    memset(out, 0, sizeof *out);
    char *cfg_text = NULL, *jinja_text = NULL, *cfg_path = NULL;
    size_t cfg_len = 0, jinja_len = 0;
    const char *name = path;
    int rc;
    if (ci_is_directory(path)) {
        cfg_path = ci_path_join(path, "tokenizer_config.json");
        char *jinja_path = ci_path_join(path, "chat_template.jinja");
        name = cfg_path;
        rc = read_if_present(cfg_path, MAX_CONFIG_BYTES, &cfg_text, &cfg_len, err);
        if (rc == 0) rc = read_if_present(jinja_path, MAX_JINJA_BYTES, &jinja_text, &jinja_len, err);
        if (rc == 0 && !cfg_text && !jinja_text)
            rc = ci_error(err, CINFER_ERR_IO, "%s: no chat_template.jinja or tokenizer_config.json", path);
        free(jinja_path);
    } else if ((rc = load_from_gguf(path, out, err)) <= 0) {
        return rc;
    } else if (has_suffix(path, ".jinja")) {
        jinja_text = ci_read_file(path, MAX_JINJA_BYTES, &jinja_len, err);
        rc = jinja_text ? 0 : (err ? err->code : CINFER_ERR_IO);
    } else {
        cfg_text = ci_read_file(path, MAX_CONFIG_BYTES, &cfg_len, err);
        rc = cfg_text ? 0 : (err ? err->code : CINFER_ERR_IO);
    }
    if (rc == 0)
        rc = cinfer_chat_template_source_from_memory(cfg_text, cfg_len, jinja_text, jinja_len, name, out, err);
    free(cfg_text);
    free(jinja_text);
    free(cfg_path);
    return rc;
}

void cinfer_chat_template_source_free(cinfer_chat_template_source *src) {
    if (!src) return;
    free(src->template_text);
    free(src->bos_token);
    free(src->eos_token);
    memset(src, 0, sizeof *src);
}
