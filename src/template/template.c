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

static int template_from_config(const json_t *cfg, const char *path, char **out, cinfer_error *err) {
    const json_t *ct = json_object_get(cfg, "chat_template");
    if (json_is_string(ct)) {
        *out = ci_strndup(json_string_value(ct), json_string_length(ct));
        return 0;
    }
    if (json_is_array(ct)) {
        size_t i;
        const json_t *entry;
        json_array_foreach(ct, i, entry) {
            const json_t *name = json_object_get(entry, "name"), *text = json_object_get(entry, "template");
            if (json_is_string(name) && strcmp(json_string_value(name), "default") == 0 && json_is_string(text)) {
                *out = ci_strndup(json_string_value(text), json_string_length(text));
                return 0;
            }
        }
        return ci_error(err, CINFER_ERR_FORMAT, "%s: chat_template lists named templates but none is \"default\"",
                        path);
    }
    if (ct && !json_is_null(ct)) return ci_error(err, CINFER_ERR_FORMAT, "%s: chat_template is neither a string nor a list", path);
    return ci_error(err, CINFER_ERR_FORMAT, "%s: no chat_template", path);
}

static int load_config(const char *path, json_t **cfg, cinfer_error *err) {
    size_t len;
    char *text = ci_read_file(path, 64u << 20, &len, err);
    if (!text) return err ? err->code : CINFER_ERR_IO;
    json_error_t jerr;
    *cfg = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    free(text);
    if (!*cfg || !json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return ci_error(err, CINFER_ERR_FORMAT, "%s: invalid JSON (line %d: %s)", path, jerr.line, jerr.text);
    }
    return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A GGUF file carries the template as tokenizer.chat_template and the
 * special tokens as ids into tokenizer.ggml.tokens. Returns 1 when `path` is
 * not a GGUF file (so other sources are tried). */
static char *gguf_token_text(const ci_gguf_file *f, const char *key) {
    const ci_gguf_value *tokens = ci_gguf_get_array(f, "tokenizer.ggml.tokens", CI_GGUF_STRING);
    uint32_t id;
    if (!tokens || !ci_gguf_get_u32(f, key, &id) || id >= tokens->v.arr.count) return NULL;
    return ci_strndup(tokens->v.arr.strings[id].ptr, tokens->v.arr.strings[id].len);
}

static int load_from_gguf(const char *path, cinfer_chat_template_source *out, cinfer_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 1;
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) return 1;
    ci_gguf_file *f = ci_gguf_open(path, err);
    if (!f) return err ? err->code : CINFER_ERR_FORMAT;
    out->template_text = ci_gguf_dup_str(f, "tokenizer.chat_template");
    out->bos_token = gguf_token_text(f, "tokenizer.ggml.bos_token_id");
    out->eos_token = gguf_token_text(f, "tokenizer.ggml.eos_token_id");
    ci_gguf_close(f);
    if (!out->template_text) {
        cinfer_chat_template_source_free(out);
        return ci_error(err, CINFER_ERR_FORMAT, "%s: no tokenizer.chat_template in this GGUF file", path);
    }
    return 0;
}

int cinfer_chat_template_source_load(const char *path, cinfer_chat_template_source *out, cinfer_error *err) {
    if (!path || !out) return ci_error(err, CINFER_ERR_INVALID, "chat template source: NULL argument");
    memset(out, 0, sizeof *out);
    json_t *cfg = NULL;
    int rc;
    if (ci_is_directory(path)) {
        char *jinja = ci_path_join(path, "chat_template.jinja");
        char *cfg_path = ci_path_join(path, "tokenizer_config.json");
        bool have_cfg = ci_file_exists(cfg_path);
        if (have_cfg && (rc = load_config(cfg_path, &cfg, err)) != 0) {
            free(jinja);
            free(cfg_path);
            return rc;
        }
        if (ci_file_exists(jinja)) {
            size_t len;
            out->template_text = ci_read_file(jinja, 16u << 20, &len, err);
            rc = out->template_text ? 0 : (err ? err->code : CINFER_ERR_IO);
        } else if (have_cfg) {
            rc = template_from_config(cfg, cfg_path, &out->template_text, err);
        } else {
            rc = ci_error(err, CINFER_ERR_IO, "%s: no chat_template.jinja or tokenizer_config.json", path);
        }
        free(jinja);
        free(cfg_path);
    } else {
        rc = load_from_gguf(path, out, err);
        if (rc <= 0) return rc;
        if (has_suffix(path, ".jinja")) {
            size_t len;
            out->template_text = ci_read_file(path, 16u << 20, &len, err);
            return out->template_text ? 0 : (err ? err->code : CINFER_ERR_IO);
        }
        if ((rc = load_config(path, &cfg, err)) == 0) rc = template_from_config(cfg, path, &out->template_text, err);
    }
    if (rc == 0 && cfg) {
        out->bos_token = token_text(json_object_get(cfg, "bos_token"));
        out->eos_token = token_text(json_object_get(cfg, "eos_token"));
    }
    json_decref(cfg);
    if (rc != 0) cinfer_chat_template_source_free(out);
    return rc;
}

void cinfer_chat_template_source_free(cinfer_chat_template_source *src) {
    if (!src) return;
    free(src->template_text);
    free(src->bos_token);
    free(src->eos_token);
    memset(src, 0, sizeof *src);
}
