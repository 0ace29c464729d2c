/*
 * model_config.c — see model_config.h. Missing optional keys get the
 * defaults transformers uses for Qwen2/Qwen3 configs; wrong types are errors
 * (a string where a number belongs means the file is not what we think).
 */
#include "model_config.h"

#include "gguf.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u << 20)

/* Generous upper bounds: far above any released model, far below sizes that
 * would overflow buffer arithmetic downstream. */
#define MAX_HIDDEN (1u << 17)
#define MAX_INTERMEDIATE (1u << 20)
#define MAX_LAYERS CI_CONFIG_MAX_LAYERS
#define MAX_HEADS 1024u
#define MAX_HEAD_DIM 1024u
#define MAX_VOCAB (1u << 22)
#define MAX_POSITIONS (1u << 24)

static int bad_key(cinfer_error *err, const char *name, const char *key, const char *what) {
    return ci_error(err, CINFER_ERR_FORMAT, "%s: \"%s\" %s", name, key, what);
}

/* Reads an optional unsigned integer key; absent leaves *out unchanged. */
static int get_u32(json_t *root, const char *key, const char *name, uint32_t *out, bool required, cinfer_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return required ? bad_key(err, name, key, "is missing") : 0;
    if (!json_is_integer(v)) return bad_key(err, name, key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > (json_int_t)UINT32_MAX) return bad_key(err, name, key, "is out of range");
    *out = (uint32_t)x;
    return 0;
}

static int get_f64(json_t *root, const char *key, const char *name, double *out, cinfer_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad_key(err, name, key, "must be a number");
    *out = json_number_value(v);
    return 0;
}

static int get_bool(json_t *root, const char *key, const char *name, bool *out, bool *present, cinfer_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad_key(err, name, key, "must be true or false");
    *out = json_is_true(v);
    if (present) *present = true;
    return 0;
}

static int get_str(json_t *root, const char *key, const char *name, char *out, size_t cap, cinfer_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return bad_key(err, name, key, "must be a string");
    if (json_string_length(v) >= cap) return bad_key(err, name, key, "is too long");
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_token_id(json_t *v, const char *key, const char *name, int32_t *out, cinfer_error *err) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return bad_key(err, name, key, "must be a non-negative token id");
    *out = (int32_t)json_integer_value(v);
    return 0;
}

/* eos_token_id may be an int or a list of ints. */
static int get_eos(json_t *root, const char *name, int32_t *ids, int *n, cinfer_error *err) {
    json_t *v = json_object_get(root, "eos_token_id");
    *n = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_array(v)) {
        if (json_array_size(v) > CI_CONFIG_MAX_EOS) return bad_key(err, name, "eos_token_id", "lists too many ids");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (get_token_id(e, "eos_token_id", name, &ids[(*n)++], err)) return CINFER_ERR_FORMAT;
        return 0;
    }
    *n = 1;
    return get_token_id(v, "eos_token_id", name, &ids[0], err);
}

static json_t *parse_object(const char *json, size_t len, const char *name, cinfer_error *err) {
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root) {
        ci_error(err, CINFER_ERR_FORMAT, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ci_error(err, CINFER_ERR_FORMAT, "%s: not a JSON object", name);
        return NULL;
    }
    return root;
}

static int validate_moe(const ci_model_config *c, const char *name, cinfer_error *err);

int ci_model_config_validate(const ci_model_config *c, const char *name, cinfer_error *err) {
    struct { const char *key; uint32_t v, max; } sizes[] = {
        {"hidden_size", c->hidden_size, MAX_HIDDEN},
        {"intermediate_size", c->intermediate_size, MAX_INTERMEDIATE},
        {"num_hidden_layers", c->num_hidden_layers, MAX_LAYERS},
        {"num_attention_heads", c->num_attention_heads, MAX_HEADS},
        {"num_key_value_heads", c->num_key_value_heads, MAX_HEADS},
        {"head_dim", c->head_dim, MAX_HEAD_DIM},
        {"vocab_size", c->vocab_size, MAX_VOCAB},
        {"max_position_embeddings", c->max_position_embeddings, MAX_POSITIONS},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i].v == 0) return ci_error(err, CINFER_ERR_FORMAT, "%s: \"%s\" must be positive", name, sizes[i].key);
        if (sizes[i].v > sizes[i].max)
            return ci_error(err, CINFER_ERR_LIMIT, "%s: \"%s\" = %u exceeds the limit of %u", name, sizes[i].key, sizes[i].v,
                            sizes[i].max);
    }
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: num_attention_heads %u is not a multiple of num_key_value_heads %u",
                        name, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: head_dim %u must be even for rotary embeddings", name, c->head_dim);
    if (!(c->rms_norm_eps > 0.0 && c->rms_norm_eps < 1.0))
        return ci_error(err, CINFER_ERR_FORMAT, "%s: rms_norm_eps %g must be in (0, 1)", name, c->rms_norm_eps);
    /* the kernels compute with a float base (as HF), so it must fit one */
    if (!(c->rope_theta > 0.0 && c->rope_theta <= FLT_MAX))
        return ci_error(err, CINFER_ERR_FORMAT, "%s: rope_theta %g must be positive and fit a float", name, c->rope_theta);
    for (int i = 0; i < c->n_eos; i++)
        if ((uint32_t)c->eos_token_ids[i] >= c->vocab_size)
            return ci_error(err, CINFER_ERR_FORMAT, "%s: eos_token_id %d is outside the vocabulary (%u)", name,
                            c->eos_token_ids[i], c->vocab_size);
    if (c->bos_token_id >= 0 && (uint32_t)c->bos_token_id >= c->vocab_size)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: bos_token_id %d is outside the vocabulary (%u)", name,
                        c->bos_token_id, c->vocab_size);
    return validate_moe(c, name, err);
}

bool ci_model_config_layer_is_moe(const ci_model_config *c, uint32_t layer) {
    if (c->num_experts == 0 || layer >= CI_CONFIG_MAX_LAYERS || c->decoder_sparse_step == 0) return false;
    if (c->mlp_only_layers[layer / 64] >> (layer % 64) & 1) return false;
    return (layer + 1) % c->decoder_sparse_step == 0;
}

static int validate_moe(const ci_model_config *c, const char *name, cinfer_error *err) {
    if (c->num_experts == 0) return 0;
    if (c->num_experts > CI_CONFIG_MAX_EXPERTS)
        return ci_error(err, CINFER_ERR_LIMIT, "%s: \"num_experts\" = %u exceeds the limit of %u", name, c->num_experts,
                        CI_CONFIG_MAX_EXPERTS);
    if (c->num_experts_per_tok == 0 || c->num_experts_per_tok > c->num_experts)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: \"num_experts_per_tok\" = %u must be in 1..num_experts (%u)", name,
                        c->num_experts_per_tok, c->num_experts);
    if (c->moe_intermediate_size == 0 || c->moe_intermediate_size > MAX_INTERMEDIATE)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: \"moe_intermediate_size\" = %u must be in 1..%u", name,
                        c->moe_intermediate_size, MAX_INTERMEDIATE);
    if (c->decoder_sparse_step == 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: \"decoder_sparse_step\" must be positive", name);
    return 0;
}

/* Qwen3MoeConfig's defaults for keys a qwen3_moe config.json leaves out. */
static void moe_defaults(ci_model_config *c) {
    c->num_experts = 128;
    c->num_experts_per_tok = 8;
    c->moe_intermediate_size = 768;
    c->norm_topk_prob = false;
    c->decoder_sparse_step = 1;
}

static int get_mlp_only_layers(json_t *root, const char *name, ci_model_config *c, cinfer_error *err) {
    json_t *v = json_object_get(root, "mlp_only_layers");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return bad_key(err, name, "mlp_only_layers", "must be a list of layer indices");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= (json_int_t)c->num_hidden_layers)
            return bad_key(err, name, "mlp_only_layers", "holds a value that is not a layer index below num_hidden_layers");
        json_int_t l = json_integer_value(e);
        c->mlp_only_layers[l / 64] |= (uint64_t)1 << (l % 64);
    }
    return 0;
}

static int get_moe(json_t *root, const char *name, ci_model_config *c, cinfer_error *err) {
    if (strcmp(c->model_type, "qwen3_moe") != 0) return 0;
    moe_defaults(c);
    int rc;
    if ((rc = get_u32(root, "num_experts", name, &c->num_experts, false, err)) ||
        (rc = get_u32(root, "num_experts_per_tok", name, &c->num_experts_per_tok, false, err)) ||
        (rc = get_u32(root, "moe_intermediate_size", name, &c->moe_intermediate_size, false, err)) ||
        (rc = get_bool(root, "norm_topk_prob", name, &c->norm_topk_prob, NULL, err)) ||
        (rc = get_u32(root, "decoder_sparse_step", name, &c->decoder_sparse_step, false, err)))
        return rc;
    if (c->num_experts > 0 && c->decoder_sparse_step == 0)
        return bad_key(err, name, "decoder_sparse_step", "must be positive");
    return get_mlp_only_layers(root, name, c, err);
}

static void config_defaults(ci_model_config *c) {
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->max_position_embeddings = 32768;
    strcpy(c->rope_type, "default");
    c->bos_token_id = -1;
}

int ci_model_config_parse(const char *json, size_t len, const char *name, ci_model_config *c, cinfer_error *err) {
    config_defaults(c);
    json_t *root = parse_object(json, len, name, err);
    if (!root) return CINFER_ERR_FORMAT;
    int rc = 0;
    json_t *archs = json_object_get(root, "architectures");
    if (json_is_array(archs) && json_is_string(json_array_get(archs, 0)) &&
        json_string_length(json_array_get(archs, 0)) < sizeof c->architecture)
        strcpy(c->architecture, json_string_value(json_array_get(archs, 0)));
    bool present = false;
    if ((rc = get_str(root, "model_type", name, c->model_type, sizeof c->model_type, err)) ||
        (rc = get_u32(root, "hidden_size", name, &c->hidden_size, true, err)) ||
        (rc = get_u32(root, "intermediate_size", name, &c->intermediate_size, true, err)) ||
        (rc = get_u32(root, "num_hidden_layers", name, &c->num_hidden_layers, true, err)) ||
        (rc = get_u32(root, "num_attention_heads", name, &c->num_attention_heads, true, err)) ||
        (rc = get_u32(root, "vocab_size", name, &c->vocab_size, true, err)) ||
        (rc = get_u32(root, "max_position_embeddings", name, &c->max_position_embeddings, false, err)) ||
        (rc = get_f64(root, "rms_norm_eps", name, &c->rms_norm_eps, err)) ||
        (rc = get_bool(root, "tie_word_embeddings", name, &c->tie_word_embeddings, &present, err)) ||
        (rc = get_bool(root, "attention_bias", name, &c->attention_bias, NULL, err)) ||
        (rc = get_eos(root, name, c->eos_token_ids, &c->n_eos, err)))
        goto done;
    if (c->num_hidden_layers > MAX_LAYERS) {
        rc = ci_error(err, CINFER_ERR_LIMIT, "%s: \"num_hidden_layers\" = %u exceeds the limit of %u", name,
                      c->num_hidden_layers, MAX_LAYERS);
        goto done;
    }
    if ((rc = get_moe(root, name, c, err))) goto done;
    c->num_key_value_heads = c->num_attention_heads;
    if ((rc = get_u32(root, "num_key_value_heads", name, &c->num_key_value_heads, false, err))) goto done;
    /* Qwen2 configs have no head_dim; transformers derives it. */
    if (c->num_attention_heads) c->head_dim = c->hidden_size / c->num_attention_heads;
    if ((rc = get_u32(root, "head_dim", name, &c->head_dim, false, err))) goto done;
    json_t *bos = json_object_get(root, "bos_token_id");
    if (bos && !json_is_null(bos) && (rc = get_token_id(bos, "bos_token_id", name, &c->bos_token_id, err))) goto done;
    /* dtype: transformers 5 writes "dtype", 4.x "torch_dtype". */
    if ((rc = get_str(root, "torch_dtype", name, c->dtype, sizeof c->dtype, err)) ||
        (rc = get_str(root, "dtype", name, c->dtype, sizeof c->dtype, err)))
        goto done;
    /* RoPE: 4.x has rope_theta (+ rope_scaling, null for Qwen3); 5.x moves
     * both into rope_parameters. */
    if ((rc = get_f64(root, "rope_theta", name, &c->rope_theta, err))) goto done;
    json_t *params = json_object_get(root, "rope_parameters");
    json_t *scaling = json_object_get(root, "rope_scaling");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) {
            rc = bad_key(err, name, "rope_parameters", "must be an object");
            goto done;
        }
        if ((rc = get_f64(params, "rope_theta", name, &c->rope_theta, err)) ||
            (rc = get_str(params, "rope_type", name, c->rope_type, sizeof c->rope_type, err)))
            goto done;
    }
    if (scaling && !json_is_null(scaling)) {
        if (!json_is_object(scaling)) {
            rc = bad_key(err, name, "rope_scaling", "must be an object or null");
            goto done;
        }
        /* Older configs spell the key "type". */
        if ((rc = get_str(scaling, "type", name, c->rope_type, sizeof c->rope_type, err)) ||
            (rc = get_str(scaling, "rope_type", name, c->rope_type, sizeof c->rope_type, err)))
            goto done;
    }
    rc = ci_model_config_validate(c, name, err);
done:
    json_decref(root);
    return rc;
}

static char *read_json_file(const char *path, const char *default_name, char **name_out, size_t *len, cinfer_error *err) {
    char *file = ci_is_directory(path) ? ci_path_join(path, default_name) : ci_strdup(path);
    char *text = ci_read_file(file, CONFIG_MAX_BYTES, len, err);
    if (!text) {
        free(file);
        return NULL;
    }
    *name_out = file;
    return text;
}

int ci_model_config_load(const char *path, ci_model_config *cfg, cinfer_error *err) {
    size_t len;
    char *name;
    char *text = read_json_file(path, "config.json", &name, &len, err);
    if (!text) return CINFER_ERR_IO;
    int rc = ci_model_config_parse(text, len, name, cfg, err);
    free(text);
    free(name);
    return rc;
}

int ci_model_config_from_gguf(const ci_gguf_file *f, ci_model_config *c, cinfer_error *err) {
    config_defaults(c);
    ci_gguf_str arch;
    if (!ci_gguf_get_str(f, "general.architecture", &arch) || arch.len == 0 || arch.len >= sizeof c->model_type)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: general.architecture missing or invalid", f->path);
    memcpy(c->model_type, arch.ptr, arch.len);
    c->model_type[arch.len] = '\0';
    char key[96];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, c->model_type), key)
    /* llama.cpp's qwen3moe: every layer is sparse, the top-k weights are
     * always renormalised (build_moe_ffn with norm_w = true). */
    bool moe = strcmp(c->model_type, "qwen3moe") == 0;
    struct { const char *suffix; uint32_t *dst; bool required; } u32s[] = {
        {"embedding_length", &c->hidden_size, true},
        {"feed_forward_length", &c->intermediate_size, !moe},
        {"expert_count", &c->num_experts, moe},
        {"expert_used_count", &c->num_experts_per_tok, moe},
        {"expert_feed_forward_length", &c->moe_intermediate_size, false},
        {"block_count", &c->num_hidden_layers, true},
        {"attention.head_count", &c->num_attention_heads, true},
        {"context_length", &c->max_position_embeddings, false},
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", c->model_type, u32s[i].suffix);
        if (!ci_gguf_get_u32(f, key, u32s[i].dst) && u32s[i].required)
            return ci_error(err, CINFER_ERR_FORMAT, "%s: metadata %s missing or not an unsigned integer", f->path, key);
    }
    if (moe) {
        if (c->num_experts == 0)
            return ci_error(err, CINFER_ERR_FORMAT, "%s: metadata %s.expert_count must be positive", f->path, c->model_type);
        /* llama.cpp: n_ff_exp defaults to n_ff / n_expert_used */
        if (c->moe_intermediate_size == 0 && c->num_experts_per_tok)
            c->moe_intermediate_size = c->intermediate_size / c->num_experts_per_tok;
        if (c->intermediate_size == 0) c->intermediate_size = c->moe_intermediate_size; /* unused: no dense layer */
        c->norm_topk_prob = true;
        c->decoder_sparse_step = 1;
    }
    c->num_key_value_heads = c->num_attention_heads;
    ci_gguf_get_u32(f, ARCH_KEY("attention.head_count_kv"), &c->num_key_value_heads);
    if (c->num_attention_heads) c->head_dim = c->hidden_size / c->num_attention_heads;
    ci_gguf_get_u32(f, ARCH_KEY("attention.key_length"), &c->head_dim);
    ci_gguf_get_f64(f, ARCH_KEY("attention.layer_norm_rms_epsilon"), &c->rms_norm_eps);
    ci_gguf_get_f64(f, ARCH_KEY("rope.freq_base"), &c->rope_theta);
    /* vocab_size: the explicit key when present, else the token list length. */
    if (!ci_gguf_get_u32(f, ARCH_KEY("vocab_size"), &c->vocab_size)) {
        const ci_gguf_value *tokens = ci_gguf_get_array(f, "tokenizer.ggml.tokens", CI_GGUF_STRING);
        if (tokens && tokens->v.arr.count <= UINT32_MAX) c->vocab_size = (uint32_t)tokens->v.arr.count;
    }
#undef ARCH_KEY
    /* llama.cpp's rule: a GGUF without output.weight reuses token_embd. */
    c->tie_word_embeddings = ci_gguf_find_tensor(f, "output.weight") == NULL;
    uint32_t id;
    if (ci_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &id) && id <= INT32_MAX) c->bos_token_id = (int32_t)id;
    if (ci_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &id) && id <= INT32_MAX) c->eos_token_ids[c->n_eos++] = (int32_t)id;
    if (ci_gguf_get_u32(f, "tokenizer.ggml.eot_token_id", &id) && id <= INT32_MAX &&
        !(c->n_eos && c->eos_token_ids[0] == (int32_t)id))
        c->eos_token_ids[c->n_eos++] = (int32_t)id;
    uint32_t ftype;
    if (ci_gguf_get_u32(f, "general.file_type", &ftype))
        snprintf(c->dtype, sizeof c->dtype, "%s", ftype == 0 ? "float32" : ftype == 1 ? "float16" : ftype == 32 ? "bfloat16" : "quantized");
    return ci_model_config_validate(c, f->path, err);
}

int ci_generation_config_parse(const char *json, size_t len, const char *name, ci_generation_config *g, cinfer_error *err) {
    memset(g, 0, sizeof *g);
    json_t *root = parse_object(json, len, name, err);
    if (!root) return CINFER_ERR_FORMAT;
    int rc = 0;
    struct { const char *key; double *dst; bool *has; double lo, hi; } floats[] = {
        {"temperature", &g->temperature, &g->has_temperature, 0.0, 100.0},
        {"top_p", &g->top_p, &g->has_top_p, 0.0, 1.0},
        {"min_p", &g->min_p, &g->has_min_p, 0.0, 1.0},
        {"repetition_penalty", &g->repetition_penalty, &g->has_repetition_penalty, 1e-6, 100.0},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0] && !rc; i++) {
        json_t *v = json_object_get(root, floats[i].key);
        if (!v || json_is_null(v)) continue;
        if (!json_is_number(v)) rc = bad_key(err, name, floats[i].key, "must be a number");
        else if (json_number_value(v) < floats[i].lo || json_number_value(v) > floats[i].hi) {
            char what[64];
            snprintf(what, sizeof what, "must be in [%g, %g]", floats[i].lo, floats[i].hi);
            rc = bad_key(err, name, floats[i].key, what);
        } else {
            *floats[i].dst = json_number_value(v);
            *floats[i].has = true;
        }
    }
    if (rc) goto done;
    json_t *v = json_object_get(root, "top_k");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            rc = bad_key(err, name, "top_k", "must be a non-negative integer");
            goto done;
        }
        g->top_k = (int32_t)json_integer_value(v);
        g->has_top_k = true;
    }
    v = json_object_get(root, "max_new_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            rc = bad_key(err, name, "max_new_tokens", "must be a non-negative integer");
            goto done;
        }
        g->max_new_tokens = json_integer_value(v);
        g->has_max_new_tokens = true;
    }
    if ((rc = get_bool(root, "do_sample", name, &g->do_sample, &g->has_do_sample, err))) goto done;
    if ((v = json_object_get(root, "pad_token_id")) && !json_is_null(v)) {
        if ((rc = get_token_id(v, "pad_token_id", name, &g->pad_token_id, err))) goto done;
        g->has_pad_token_id = true;
    }
    if ((v = json_object_get(root, "bos_token_id")) && !json_is_null(v)) {
        if ((rc = get_token_id(v, "bos_token_id", name, &g->bos_token_id, err))) goto done;
        g->has_bos_token_id = true;
    }
    rc = get_eos(root, name, g->eos_token_ids, &g->n_eos, err);
done:
    json_decref(root);
    return rc;
}

int ci_generation_config_load(const char *path, ci_generation_config *gen, cinfer_error *err) {
    size_t len;
    char *name;
    char *text = read_json_file(path, "generation_config.json", &name, &len, err);
    if (!text) return CINFER_ERR_IO;
    int rc = ci_generation_config_parse(text, len, name, gen, err);
    free(text);
    free(name);
    return rc;
}
