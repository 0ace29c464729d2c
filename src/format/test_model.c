/*
 * test_model.c — see test_model.h. Writes HF folders (config, generation
 * config, tokenizer files, safetensors) and llama.cpp-style GGUF files.
 *
 * Tensor data is produced chunk by chunk (CHUNK elements, a multiple of the
 * 32-weight quantization block, and every row length is too, so blocks never
 * straddle chunks) and written straight to the file: memory use stays at a
 * few MB whatever the shape.
 */
#include "test_model.h"

#include "gguf.h"
#include "numeric.h"
#include "safetensors.h"
#include "kernels/threadpool.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK (1u << 18)
#define TOKENIZER_MAX_BYTES (256u << 20)

static const ci_test_model_shape SHAPES[] = {
    /* name   hidden inter layers heads kv head_dim max_pos  rope_theta vocab */
    {"tiny", 64, 128, 2, 4, 2, 32, 40960, 1000000.0, 151936, 0, 0, 0},
    {"small", 256, 768, 4, 8, 4, 64, 40960, 1000000.0, 151936, 0, 0, 0},
    {"0.6b", 1024, 3072, 28, 16, 8, 128, 40960, 1000000.0, 151936, 0, 0, 0}, /* shared/reference/configs/Qwen3-0.6B */
    {"4b", 2560, 9728, 36, 32, 8, 128, 40960, 1000000.0, 151936, 0, 0, 0},   /* shared/reference/configs/Qwen3-4B */
    /*                                                          experts top-k moe_inter */
    {"tiny-moe", 64, 128, 2, 4, 2, 32, 40960, 1000000.0, 151936, 8, 2, 32},
    {"small-moe", 256, 768, 4, 8, 4, 64, 40960, 1000000.0, 151936, 16, 4, 256}, /* K-quant rows (256) */
    {"30b-a3b", 2048, 6144, 48, 32, 4, 128, 40960, 1000000.0, 151936, 128, 8, 768}, /* reference/configs/Qwen3-30B-A3B */
};

const ci_test_model_shape *ci_test_model_shape_get(const char *name) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (strcmp(SHAPES[i].name, name) == 0) return &SHAPES[i];
    return NULL;
}

/* ---------------------------------------------------------------- tensors */

static ci_test_model_tensor *add_tensor(ci_test_model_tensor *list, size_t *n, ci_test_model_kind kind, const char *hf,
                                        const char *gguf, uint64_t rows, uint64_t cols) {
    ci_test_model_tensor *t = &list[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->hf_name, sizeof t->hf_name, "%s", hf);
    snprintf(t->gguf_name, sizeof t->gguf_name, "%s", gguf);
    snprintf(t->value_name, sizeof t->value_name, "%s", hf);
    t->kind = kind;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    return t;
}

/* A sparse layer's MLP in Qwen3MoeSparseMoeBlock order: router, experts. */
static void add_moe_tensors(ci_test_model_tensor *list, size_t *n, const ci_test_model_shape *s, uint32_t L) {
    uint64_t H = s->hidden_size, Ie = s->moe_intermediate_size, E = s->num_experts;
    char hf[80], gg[48];
    snprintf(hf, sizeof hf, "model.layers.%u.mlp.gate.weight", L);
    snprintf(gg, sizeof gg, "blk.%u.ffn_gate_inp.weight", L);
    add_tensor(list, n, CI_TM_LINEAR, hf, gg, E, H);
    static const struct { const char *hf, *gguf; int kind; bool down; } EXP[] = {
        {"gate_proj", "ffn_gate_exps", CI_TM_LINEAR, false},
        {"up_proj", "ffn_up_exps", CI_TM_LINEAR, false},
        {"down_proj", "ffn_down_exps", CI_TM_LINEAR_OUT, true},
    };
    for (size_t p = 0; p < 3; p++) {
        snprintf(hf, sizeof hf, "model.layers.%u.mlp.experts.%%u.%s.weight", L, EXP[p].hf);
        snprintf(gg, sizeof gg, "blk.%u.%s.weight", L, EXP[p].gguf);
        ci_test_model_tensor *t = add_tensor(list, n, (ci_test_model_kind)EXP[p].kind, hf, gg, E, 0);
        t->n_dims = 3;
        t->shape[1] = EXP[p].down ? H : Ie;
        t->shape[2] = EXP[p].down ? Ie : H;
    }
}

static uint64_t tensor_elems(const ci_test_model_tensor *t) {
    uint64_t n = t->shape[0];
    for (uint32_t d = 1; d < t->n_dims; d++) n *= t->shape[d];
    return n;
}

/* The HF form of a tensor list: each expert stack becomes its experts' 2-D
 * tensors, expert by expert (gate, up, down of expert 0, then 1, ...) as
 * the nn.ModuleList orders them. Caller frees. */
static ci_test_model_tensor *expand_experts(const ci_test_model_tensor *list, size_t *n) {
    size_t total = 0;
    for (size_t i = 0; i < *n; i++) total += list[i].n_dims == 3 ? list[i].shape[0] : 1;
    ci_test_model_tensor *out = ci_calloc(total ? total : 1, sizeof *out);
    size_t m = 0;
    for (size_t i = 0; i < *n;) {
        if (list[i].n_dims != 3) {
            out[m++] = list[i++];
            continue;
        }
        size_t g = i;
        while (g < *n && list[g].n_dims == 3 && list[g].shape[0] == list[i].shape[0]) g++;
        for (uint64_t e = 0; e < list[i].shape[0]; e++)
            for (size_t k = i; k < g; k++) {
                ci_test_model_tensor *t = &out[m++];
                *t = list[k];
                snprintf(t->hf_name, sizeof t->hf_name, list[k].hf_name, (unsigned)e);
                snprintf(t->value_name, sizeof t->value_name, list[k].value_name, (unsigned)e);
                t->n_dims = 2, t->shape[0] = list[k].shape[1], t->shape[1] = list[k].shape[2], t->shape[2] = 0;
            }
        i = g;
    }
    *n = m;
    return out;
}

size_t ci_test_model_tensors(const ci_test_model_options *o, ci_test_model_tensor **out) {
    const ci_test_model_shape *s = o->shape;
    uint64_t H = s->hidden_size, I = s->intermediate_size, V = s->vocab_size;
    uint64_t q = (uint64_t)s->num_heads * s->head_dim, kv = (uint64_t)s->num_kv_heads * s->head_dim;
    ci_test_model_tensor *list = ci_calloc((size_t)s->num_layers * 12 + 3, sizeof *list);
    size_t n = 0;
    char hf[80], gg[48];
    add_tensor(list, &n, CI_TM_EMBED, "model.embed_tokens.weight", "token_embd.weight", V, H);
    for (uint32_t L = 0; L < s->num_layers; L++) {
        /* nn.Module order of Qwen3DecoderLayer: attention, mlp, then the two norms. */
        static const struct { const char *hf, *gguf; int kind; int rows, cols; } PARTS[] = {
            {"self_attn.q_proj", "attn_q", CI_TM_LINEAR, 'q', 'H'},
            {"self_attn.k_proj", "attn_k", CI_TM_LINEAR, 'k', 'H'},
            {"self_attn.v_proj", "attn_v", CI_TM_LINEAR, 'k', 'H'},
            {"self_attn.o_proj", "attn_output", CI_TM_LINEAR_OUT, 'H', 'q'},
            {"self_attn.q_norm", "attn_q_norm", CI_TM_NORM, 'd', 0},
            {"self_attn.k_norm", "attn_k_norm", CI_TM_NORM, 'd', 0},
            {"mlp.gate_proj", "ffn_gate", CI_TM_LINEAR, 'I', 'H'},
            {"mlp.up_proj", "ffn_up", CI_TM_LINEAR, 'I', 'H'},
            {"mlp.down_proj", "ffn_down", CI_TM_LINEAR_OUT, 'H', 'I'},
            {"input_layernorm", "attn_norm", CI_TM_NORM, 'H', 0},
            {"post_attention_layernorm", "ffn_norm", CI_TM_NORM, 'H', 0},
        };
        for (size_t p = 0; p < sizeof PARTS / sizeof PARTS[0]; p++) {
            if (s->num_experts && PARTS[p].rows == 'I') { /* gate_proj: the sparse MLP instead */
                add_moe_tensors(list, &n, s, L);
                p += 2;
                continue;
            }
            uint64_t dims[2];
            for (int k = 0; k < 2; k++) {
                int c = k ? PARTS[p].cols : PARTS[p].rows;
                dims[k] = c == 'q' ? q : c == 'k' ? kv : c == 'H' ? H : c == 'I' ? I : c == 'd' ? s->head_dim : 0;
            }
            snprintf(hf, sizeof hf, "model.layers.%u.%s.weight", L, PARTS[p].hf);
            snprintf(gg, sizeof gg, "blk.%u.%s.weight", L, PARTS[p].gguf);
            add_tensor(list, &n, (ci_test_model_kind)PARTS[p].kind, hf, gg, dims[0], dims[1]);
        }
    }
    add_tensor(list, &n, CI_TM_NORM, "model.norm.weight", "output_norm.weight", H, 0);
    /* HF: a tied checkpoint may still store lm_head (0.6B/1.7B do, 4B does not).
     * GGUF: llama.cpp's converter writes output.weight only for untied models;
     * llama.cpp then reuses token_embd. */
    bool store_lm_head = o->format == CI_TM_GGUF ? o->untied : (o->untied || !o->no_lm_head);
    if (store_lm_head) {
        add_tensor(list, &n, CI_TM_EMBED, "lm_head.weight", "output.weight", V, H);
        if (!o->untied) snprintf(list[n - 1].value_name, sizeof list[n - 1].value_name, "model.embed_tokens.weight");
    }
    if (o->format == CI_TM_HF && s->num_experts) {
        *out = expand_experts(list, &n);
        free(list);
        return n;
    }
    *out = list;
    return n;
}

/* ------------------------------------------------------------------ values */

#ifndef EMBED_STD
#define EMBED_STD 8.0
#endif
#ifndef RESIDUAL_GAIN
#define RESIDUAL_GAIN 4.0
#endif

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

void ci_test_model_fill(uint64_t seed, const ci_test_model_tensor *t, uint64_t start, size_t count, float *out) {
    if (t->n_dims == 3) { /* an expert stack: each expert's own 2-D values */
        ci_test_model_tensor one = *t;
        uint64_t per = t->shape[1] * t->shape[2];
        one.n_dims = 2, one.shape[0] = t->shape[1], one.shape[1] = t->shape[2], one.shape[2] = 0;
        while (count > 0) {
            uint64_t e = start / per, off = start % per;
            size_t n = per - off < count ? (size_t)(per - off) : count;
            snprintf(one.value_name, sizeof one.value_name, t->value_name, (unsigned)e);
            ci_test_model_fill(seed, &one, off, n, out);
            start += n, out += n, count -= n;
        }
        return;
    }
    uint64_t key = mix64(seed ^ fnv1a64(t->value_name));
    uint64_t in_features = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    double offset = 0.0, amplitude;
    switch (t->kind) {
    case CI_TM_EMBED: amplitude = sqrt(3.0) * EMBED_STD / sqrt((double)in_features); break;
    case CI_TM_LINEAR: amplitude = sqrt(3.0) / sqrt((double)in_features); break;
    case CI_TM_LINEAR_OUT: amplitude = sqrt(3.0) * RESIDUAL_GAIN / sqrt((double)in_features); break;
    default: offset = 1.0, amplitude = 0.1; break;
    }
    for (size_t j = 0; j < count; j++) {
        uint64_t u = mix64(key + (start + j + 1) * 0x9E3779B97F4A7C15ull) >> 40;
        double x = ((double)u + 0.5) / 8388608.0 - 1.0;
        out[j] = (float)(offset + amplitude * x);
    }
}

/* --------------------------------------------------------------- options */

int ci_test_model_check_options(const ci_test_model_options *o, cinfer_error *err) {
    if (!o->out || !*o->out) return ci_error(err, CINFER_ERR_INVALID, "no output path");
    if (!o->shape) return ci_error(err, CINFER_ERR_INVALID, "no shape");
    if (o->format == CI_TM_HF && o->dtype == CI_TM_Q8_0)
        return ci_error(err, CINFER_ERR_INVALID,
                        "q8_0 is a GGUF quantization; safetensors checkpoints hold f32/bf16/f16 (use --format gguf)");
    if (o->format == CI_TM_GGUF && o->shards > 1)
        return ci_error(err, CINFER_ERR_INVALID, "--shards is for --format hf (GGUF output is one file)");
    if (o->shards < 1 || o->shards > 99) return ci_error(err, CINFER_ERR_INVALID, "--shards must be 1..99");
    if (o->untied && o->no_lm_head)
        return ci_error(err, CINFER_ERR_INVALID, "--no-lm-head needs tied embeddings (an untied model must store lm_head)");
    if (!o->tokenizer_dir) return ci_error(err, CINFER_ERR_INVALID, "no tokenizer folder");
    return 0;
}

/* ----------------------------------------------------------- data writing */

typedef int (*sink_fn)(void *sink, const void *data, size_t len, cinfer_error *err);

typedef struct progress {
    bool enabled;
    uint64_t total, done, last_shown;
} progress;

static void progress_step(progress *p, uint64_t bytes) {
    p->done += bytes;
    if (!p->enabled || p->total == 0) return;
    if (p->done - p->last_shown < (64u << 20) && p->done != p->total) return;
    p->last_shown = p->done;
    fprintf(stderr, "\rmake-test-model: %6.1f%% (%llu / %llu MiB)", 100.0 * (double)p->done / (double)p->total,
            (unsigned long long)(p->done >> 20), (unsigned long long)(p->total >> 20));
    if (p->done == p->total) fputc('\n', stderr);
}

/* The generator is counter based, so slices of a chunk are independent and
 * can be filled by the thread pool in any order. */
#define FILL_SLICES 16
typedef struct fill_slices {
    uint64_t seed;
    const ci_test_model_tensor *t;
    uint64_t start;
    size_t n;
    float *values;
} fill_slices;

static void fill_slice(void *ctx, int slice, int thread) {
    const fill_slices *f = ctx;
    const size_t per = (f->n + FILL_SLICES - 1) / FILL_SLICES, a = (size_t)slice * per;
    const size_t b = a + per < f->n ? a + per : f->n;
    if (a < b) ci_test_model_fill(f->seed, f->t, f->start + a, b - a, f->values + a);
}

/* Generates a tensor and streams it in `dtype` (already resolved for 1-D).
 * `precision` is the type the values pass through first: a GGUF converted
 * from a BF16 checkpoint keeps its norms as F32 holding BF16 values, so the
 * GGUF and HF forms of one test model carry the same numbers. */
static int stream_tensor(const ci_test_model_options *o, const ci_test_model_tensor *t, ci_test_model_dtype dtype,
                         ci_test_model_dtype precision, sink_fn sink, void *sink_ctx, progress *prog,
                         cinfer_error *err) {
    uint64_t total = tensor_elems(t);
    float *values = ci_malloc(CHUNK * sizeof(float));
    uint8_t *bytes = ci_malloc(CHUNK * sizeof(float));
    int rc = 0;
    for (uint64_t start = 0; start < total && rc == 0; start += CHUNK) {
        size_t n = total - start < CHUNK ? (size_t)(total - start) : CHUNK;
        fill_slices f = {o->seed, t, start, n, values};
        ci_parallel_for(FILL_SLICES, fill_slice, &f);
        if (precision == CI_TM_BF16 && dtype == CI_TM_F32)
            for (size_t j = 0; j < n; j++) values[j] = ci_bf16_to_fp32(ci_fp32_to_bf16(values[j]));
        else if (precision == CI_TM_F16 && dtype == CI_TM_F32)
            for (size_t j = 0; j < n; j++) values[j] = ci_fp16_to_fp32(ci_fp32_to_fp16(values[j]));
        size_t out_len = 0;
        switch (dtype) {
        case CI_TM_F32:
            for (size_t j = 0; j < n; j++) {
                uint32_t bits;
                memcpy(&bits, &values[j], 4);
                ci_store_le32(bytes + 4 * j, bits);
            }
            out_len = 4 * n;
            break;
        case CI_TM_BF16:
            for (size_t j = 0; j < n; j++) ci_store_le16(bytes + 2 * j, ci_fp32_to_bf16(values[j]));
            out_len = 2 * n;
            break;
        case CI_TM_F16:
            for (size_t j = 0; j < n; j++) ci_store_le16(bytes + 2 * j, ci_fp32_to_fp16(values[j]));
            out_len = 2 * n;
            break;
        case CI_TM_Q8_0:
            ci_quantize_row_q8_0(bytes, values, n);
            out_len = n / CI_QK * sizeof(ci_block_q8_0);
            break;
        }
        rc = sink(sink_ctx, bytes, out_len, err);
        progress_step(prog, out_len);
    }
    free(values);
    free(bytes);
    return rc;
}

/* --------------------------------------------------------------- tokenizer */

typedef struct vocab {
    size_t n;            /* = vocab_size */
    char **tokens;
    size_t *lens;
    int32_t *types;
    size_t n_merges;
    char **merges;
    char *chat_template;
    int32_t eos_id, pad_id, bos_id;
} vocab;

static void vocab_free(vocab *v) {
    for (size_t i = 0; i < v->n; i++) free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->lens);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
    memset(v, 0, sizeof *v);
}

/* llama.cpp's converter (does_token_look_special) marks added tokens spelled
 * like <|...|> as CONTROL even when tokenizer.json says special: false. */
static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]")) return true;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return true;
    if (n >= 8 && !strncmp(s, "<\xef\xbd\x9c", 4) && !strcmp(s + n - 4, "\xef\xbd\x9c>")) return true; /* <｜ ｜> */
    if (!strncmp(s, "<unused", 7) && s[n - 1] == '>') return true;
    return false;
}

static json_t *load_json(const char *dir, const char *name, cinfer_error *err) {
    char *path = ci_path_join(dir, name);
    size_t len;
    char *text = ci_read_file(path, TOKENIZER_MAX_BYTES, &len, err);
    json_t *root = NULL;
    if (text) {
        json_error_t je;
        root = json_loadb(text, len, 0, &je);
        if (!root) ci_error(err, CINFER_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        else if (!json_is_object(root)) {
            ci_error(err, CINFER_ERR_FORMAT, "%s: top level is not a JSON object", path);
            json_decref(root);
            root = NULL;
        }
    }
    free(text);
    free(path);
    return root;
}

static int32_t lookup_token(const vocab *v, const char *text, int32_t fallback) {
    if (!text) return fallback;
    for (size_t i = v->n; i-- > 0;) /* added tokens live at the end */
        if (v->tokens[i] && strcmp(v->tokens[i], text) == 0) return (int32_t)i;
    return fallback;
}

static int vocab_load(const char *dir, size_t vocab_size, vocab *v, cinfer_error *err) {
    memset(v, 0, sizeof *v);
    json_t *tok = load_json(dir, "tokenizer.json", err);
    if (!tok) return CINFER_ERR_FORMAT;
    json_t *cfg = load_json(dir, "tokenizer_config.json", err);
    if (!cfg) {
        json_decref(tok);
        return CINFER_ERR_FORMAT;
    }
    int rc = 0;
    json_t *model = json_object_get(tok, "model");
    json_t *vmap = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(tok, "added_tokens");
    if (!json_is_object(vmap) || !json_is_array(merges) || (added && !json_is_array(added))) {
        rc = ci_error(err, CINFER_ERR_FORMAT, "%s/tokenizer.json: expected a BPE model with vocab and merges", dir);
        goto done;
    }
    v->n = vocab_size;
    v->tokens = ci_calloc(vocab_size, sizeof *v->tokens);
    v->lens = ci_calloc(vocab_size, sizeof *v->lens);
    v->types = ci_calloc(vocab_size, sizeof *v->types);
    const char *text;
    json_t *idv;
    json_object_foreach(vmap, text, idv) {
        json_int_t id = json_integer_value(idv);
        if (!json_is_integer(idv) || id < 0 || (size_t)id >= vocab_size || v->tokens[id]) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s/tokenizer.json: vocab entry '%s' has a bad or duplicate id", dir, text);
            goto done;
        }
        v->tokens[id] = ci_strdup(text);
        v->types[id] = 1; /* NORMAL */
    }
    size_t i;
    json_t *entry;
    json_array_foreach(added, i, entry) {
        json_int_t id = json_integer_value(json_object_get(entry, "id"));
        const char *content = json_string_value(json_object_get(entry, "content"));
        if (!content || id < 0 || (size_t)id >= vocab_size) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s/tokenizer.json: added token #%zu has no content or a bad id", dir, i);
            goto done;
        }
        free(v->tokens[id]);
        v->tokens[id] = ci_strdup(content);
        v->types[id] = json_is_true(json_object_get(entry, "special")) || looks_special(content) ? 3 /* CONTROL */
                                                                                                : 4 /* USER_DEFINED */;
    }
    for (size_t id = 0; id < vocab_size; id++) {
        if (!v->tokens[id]) {
            /* Rows of the embedding with no token, named as the converter does. */
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%zu]", id);
            v->tokens[id] = ci_strdup(pad);
            v->types[id] = 5; /* UNUSED */
        }
        v->lens[id] = strlen(v->tokens[id]);
    }
    v->n_merges = json_array_size(merges);
    v->merges = ci_calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    json_array_foreach(merges, i, entry) {
        /* Newer tokenizers store [left, right]; older ones "left right". */
        if (json_is_string(entry)) v->merges[i] = ci_strdup(json_string_value(entry));
        else if (json_is_array(entry) && json_array_size(entry) == 2 && json_is_string(json_array_get(entry, 0)) &&
                 json_is_string(json_array_get(entry, 1))) {
            ci_buf b = {0};
            ci_buf_printf(&b, "%s %s", json_string_value(json_array_get(entry, 0)), json_string_value(json_array_get(entry, 1)));
            v->merges[i] = ci_buf_take(&b, NULL);
        } else {
            v->merges[i] = ci_strdup("");
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s/tokenizer.json: merge #%zu is neither \"a b\" nor [a, b]", dir, i);
            goto done;
        }
    }
    json_t *tpl = json_object_get(cfg, "chat_template");
    if (json_is_string(tpl)) v->chat_template = ci_strdup(json_string_value(tpl));
    else if (json_is_array(tpl)) {
        json_array_foreach(tpl, i, entry)
            if (!v->chat_template && json_is_string(json_object_get(entry, "template")) &&
                !strcmp(json_string_value(json_object_get(entry, "name")) ? json_string_value(json_object_get(entry, "name")) : "", "default"))
                v->chat_template = ci_strdup(json_string_value(json_object_get(entry, "template")));
    }
    /* Special ids the way the converter's SpecialVocab finds them: token
     * strings from tokenizer_config.json; Qwen3 has bos_token null there, so
     * bos comes from config.json's bos_token_id (151643 = <|endoftext|>). */
    v->eos_id = lookup_token(v, json_string_value(json_object_get(cfg, "eos_token")), 151645);
    v->pad_id = lookup_token(v, json_string_value(json_object_get(cfg, "pad_token")), 151643);
    v->bos_id = lookup_token(v, json_string_value(json_object_get(cfg, "bos_token")), 151643);
done:
    json_decref(tok);
    json_decref(cfg);
    if (rc) vocab_free(v);
    return rc;
}

/* ------------------------------------------------------------------- GGUF */

static int gguf_sink(void *ctx, const void *data, size_t len, cinfer_error *err) {
    return ci_gguf_writer_write(ctx, data, len, err);
}

static uint32_t ggml_type_for(ci_test_model_dtype dtype, const ci_test_model_tensor *t) {
    /* llama.cpp's converter keeps vectors and the MoE router in F32 */
    if (t->n_dims == 1 || strstr(t->gguf_name, "ffn_gate_inp")) return CI_GGML_F32;
    switch (dtype) {
    case CI_TM_F32: return CI_GGML_F32;
    case CI_TM_BF16: return CI_GGML_BF16;
    case CI_TM_F16: return CI_GGML_F16;
    case CI_TM_Q8_0: return CI_GGML_Q8_0;
    }
    return CI_GGML_F32;
}

int ci_gguf_write_qwen3_metadata(ci_gguf_writer *w, const ci_qwen3_gguf_meta *m, const char *tokenizer_dir,
                                 cinfer_error *err) {
    vocab v;
    int rc = vocab_load(tokenizer_dir, m->vocab_size, &v, err);
    if (rc) return rc;
    const char *arch = m->experts ? "qwen3moe" : "qwen3";
    char key[64];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    ci_gguf_writer_kv_str(w, "general.architecture", arch, strlen(arch));
    ci_gguf_writer_kv_str(w, "general.type", "model", 5);
    ci_gguf_writer_kv_str(w, "general.name", m->name, strlen(m->name));
    ci_gguf_writer_kv_u32(w, KEY("block_count"), m->layers);
    ci_gguf_writer_kv_u32(w, KEY("context_length"), m->context_length);
    ci_gguf_writer_kv_u32(w, KEY("embedding_length"), m->hidden);
    ci_gguf_writer_kv_u32(w, KEY("feed_forward_length"), m->intermediate);
    ci_gguf_writer_kv_u32(w, KEY("attention.head_count"), m->heads);
    ci_gguf_writer_kv_u32(w, KEY("attention.head_count_kv"), m->kv_heads);
    ci_gguf_writer_kv_f32(w, KEY("rope.freq_base"), (float)m->rope_theta);
    ci_gguf_writer_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)m->rms_eps);
    ci_gguf_writer_kv_u32(w, KEY("attention.key_length"), m->head_dim);
    ci_gguf_writer_kv_u32(w, KEY("attention.value_length"), m->head_dim);
    if (m->experts) { /* convert_hf_to_gguf's Qwen2MoeModel / Qwen3MoeModel */
        ci_gguf_writer_kv_u32(w, KEY("expert_count"), m->experts);
        ci_gguf_writer_kv_u32(w, KEY("expert_used_count"), m->experts_used);
        ci_gguf_writer_kv_u32(w, KEY("expert_feed_forward_length"), m->expert_intermediate);
    }
#undef KEY
    ci_gguf_writer_kv_u32(w, "general.file_type", m->file_type);
    ci_gguf_writer_kv_u32(w, "general.quantization_version", 2);
    if (m->has_seed) ci_gguf_writer_kv_u64(w, "general.seed", m->seed); /* not a llama.cpp key; says which weights these are */
    ci_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2", 4);
    ci_gguf_writer_kv_str(w, "tokenizer.ggml.pre", "qwen2", 5);
    ci_gguf_writer_kv_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.lens, v.n);
    ci_gguf_writer_kv_array(w, "tokenizer.ggml.token_type", CI_GGUF_INT32, v.types, v.n);
    ci_gguf_writer_kv_str_array(w, "tokenizer.ggml.merges", (const char *const *)v.merges, NULL, v.n_merges);
    ci_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos_id);
    ci_gguf_writer_kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v.pad_id);
    ci_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v.bos_id);
    ci_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", false);
    if (v.chat_template) ci_gguf_writer_kv_str(w, "tokenizer.chat_template", v.chat_template, strlen(v.chat_template));
    vocab_free(&v);
    return 0;
}

static int write_gguf(const ci_test_model_options *o, cinfer_error *err) {
    const ci_test_model_shape *s = o->shape;
    ci_gguf_writer *w = ci_gguf_writer_open(o->out, 0, err);
    if (!w) return CINFER_ERR_IO;
    static const uint32_t FTYPES[] = {CI_GGUF_FTYPE_ALL_F32, CI_GGUF_FTYPE_MOSTLY_BF16, CI_GGUF_FTYPE_MOSTLY_F16,
                                      CI_GGUF_FTYPE_MOSTLY_Q8_0};
    char name[64];
    snprintf(name, sizeof name, "cinfer test Qwen3%s %s", s->num_experts ? "MoE" : "", s->name);
    const ci_qwen3_gguf_meta meta = {
        .name = name, .layers = s->num_layers, .context_length = s->max_position_embeddings,
        .hidden = s->hidden_size, .intermediate = s->intermediate_size, .heads = s->num_heads,
        .kv_heads = s->num_kv_heads, .head_dim = s->head_dim, .vocab_size = s->vocab_size,
        .rope_theta = s->rope_theta, .rms_eps = 1e-6, .file_type = FTYPES[o->dtype], .has_seed = true, .seed = o->seed,
        .experts = s->num_experts, .experts_used = s->experts_per_tok, .expert_intermediate = s->moe_intermediate_size,
    };
    int rc = ci_gguf_write_qwen3_metadata(w, &meta, o->tokenizer_dir, err);
    if (rc) {
        ci_gguf_writer_abort(w);
        return rc;
    }

    ci_test_model_tensor *tensors;
    size_t n = ci_test_model_tensors(o, &tensors);
    progress prog = {o->progress, 0, 0, 0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* GGUF lists dimensions innermost first: PyTorch [out, in] -> ne {in, out}. */
        const ci_test_model_tensor *t = &tensors[i];
        uint64_t ne[3] = {t->shape[0], 1, 1};
        if (t->n_dims == 2) ne[0] = t->shape[1], ne[1] = t->shape[0];
        if (t->n_dims == 3) ne[0] = t->shape[2], ne[1] = t->shape[1], ne[2] = t->shape[0];
        uint32_t type = ggml_type_for(o->dtype, t);
        uint64_t bytes = 0;
        ci_ggml_tensor_bytes(type, tensors[i].n_dims, ne, &bytes);
        prog.total += bytes;
        rc = ci_gguf_writer_add_tensor(w, tensors[i].gguf_name, type, tensors[i].n_dims, ne, err);
    }
    if (!rc) rc = ci_gguf_writer_begin_data(w, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool f32 = ggml_type_for(o->dtype, &tensors[i]) == CI_GGML_F32;
        rc = stream_tensor(o, &tensors[i], f32 ? CI_TM_F32 : o->dtype, o->dtype, gguf_sink, w, &prog, err);
    }
    free(tensors);
    if (rc) {
        ci_gguf_writer_abort(w);
        return rc;
    }
    return ci_gguf_writer_close(w, err);
}

char *ci_test_model_list_text(const ci_test_model_options *o) {
    static const char *const STORED[] = {[CI_TM_F32] = "F32", [CI_TM_BF16] = "BF16", [CI_TM_F16] = "F16",
                                         [CI_TM_Q8_0] = "Q8_0"};
    bool gguf = o->format == CI_TM_GGUF;
    ci_test_model_tensor *list;
    size_t n = ci_test_model_tensors(o, &list);
    ci_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        const ci_test_model_tensor *x = &list[i];
        const char *dt = gguf && ggml_type_for(o->dtype, x) == CI_GGML_F32 ? "F32" : STORED[o->dtype];
        ci_buf_printf(&b, "%s\t[", gguf ? x->gguf_name : x->hf_name);
        for (uint32_t d = 0; d < x->n_dims; d++) /* GGUF lists dimensions innermost first */
            ci_buf_printf(&b, "%s%llu", d ? ", " : "", (unsigned long long)x->shape[gguf ? x->n_dims - 1 - d : d]);
        ci_buf_printf(&b, "]\t%s\n", dt);
    }
    free(list);
    return ci_buf_take(&b, NULL);
}

/* --------------------------------------------------------------------- HF */

static const char *torch_dtype_name(ci_test_model_dtype d) {
    return d == CI_TM_F32 ? "float32" : d == CI_TM_F16 ? "float16" : "bfloat16";
}

/* As shared/reference/configs/Qwen3-30B-A3B.config.json. */
static char *moe_config_json(const ci_test_model_options *o) {
    const ci_test_model_shape *s = o->shape;
    ci_buf b = {0};
    ci_buf_printf(&b,
                  "{\n"
                  "  \"architectures\": [\n"
                  "    \"Qwen3MoeForCausalLM\"\n"
                  "  ],\n"
                  "  \"attention_bias\": false,\n"
                  "  \"attention_dropout\": 0.0,\n"
                  "  \"bos_token_id\": 151643,\n"
                  "  \"decoder_sparse_step\": 1,\n"
                  "  \"eos_token_id\": 151645,\n"
                  "  \"head_dim\": %u,\n"
                  "  \"hidden_act\": \"silu\",\n"
                  "  \"hidden_size\": %u,\n"
                  "  \"initializer_range\": 0.02,\n"
                  "  \"intermediate_size\": %u,\n"
                  "  \"max_position_embeddings\": %u,\n"
                  "  \"max_window_layers\": %u,\n"
                  "  \"mlp_only_layers\": [],\n"
                  "  \"model_type\": \"qwen3_moe\",\n"
                  "  \"moe_intermediate_size\": %u,\n"
                  "  \"norm_topk_prob\": true,\n"
                  "  \"num_attention_heads\": %u,\n"
                  "  \"num_experts\": %u,\n"
                  "  \"num_experts_per_tok\": %u,\n"
                  "  \"num_hidden_layers\": %u,\n"
                  "  \"num_key_value_heads\": %u,\n"
                  "  \"output_router_logits\": false,\n"
                  "  \"rms_norm_eps\": 1e-06,\n"
                  "  \"rope_scaling\": null,\n"
                  "  \"rope_theta\": %.17g,\n"
                  "  \"router_aux_loss_coef\": 0.001,\n"
                  "  \"sliding_window\": null,\n"
                  "  \"tie_word_embeddings\": %s,\n"
                  "  \"torch_dtype\": \"%s\",\n"
                  "  \"transformers_version\": \"4.51.0\",\n"
                  "  \"use_cache\": true,\n"
                  "  \"use_sliding_window\": false,\n"
                  "  \"vocab_size\": %u\n"
                  "}",
                  s->head_dim, s->hidden_size, s->intermediate_size, s->max_position_embeddings, s->num_layers,
                  s->moe_intermediate_size, s->num_heads, s->num_experts, s->experts_per_tok, s->num_layers,
                  s->num_kv_heads, s->rope_theta, o->untied ? "false" : "true", torch_dtype_name(o->dtype),
                  s->vocab_size);
    return ci_buf_take(&b, NULL);
}

char *ci_test_model_config_json(const ci_test_model_options *o) {
    const ci_test_model_shape *s = o->shape;
    if (s->num_experts) return moe_config_json(o);
    ci_buf b = {0};
    /* Key order and number formatting follow transformers' to_json_string
     * (sorted keys, 2-space indent) as in the real Qwen3-0.6B config.json. */
    ci_buf_printf(&b,
                  "{\n"
                  "  \"architectures\": [\n"
                  "    \"Qwen3ForCausalLM\"\n"
                  "  ],\n"
                  "  \"attention_bias\": false,\n"
                  "  \"attention_dropout\": 0.0,\n"
                  "  \"bos_token_id\": 151643,\n"
                  "  \"eos_token_id\": 151645,\n"
                  "  \"head_dim\": %u,\n"
                  "  \"hidden_act\": \"silu\",\n"
                  "  \"hidden_size\": %u,\n"
                  "  \"initializer_range\": 0.02,\n"
                  "  \"intermediate_size\": %u,\n"
                  "  \"max_position_embeddings\": %u,\n"
                  "  \"max_window_layers\": %u,\n"
                  "  \"model_type\": \"qwen3\",\n"
                  "  \"num_attention_heads\": %u,\n"
                  "  \"num_hidden_layers\": %u,\n"
                  "  \"num_key_value_heads\": %u,\n"
                  "  \"rms_norm_eps\": 1e-06,\n"
                  "  \"rope_scaling\": null,\n"
                  "  \"rope_theta\": %.17g,\n"
                  "  \"sliding_window\": null,\n"
                  "  \"tie_word_embeddings\": %s,\n"
                  "  \"torch_dtype\": \"%s\",\n"
                  "  \"transformers_version\": \"4.51.0\",\n"
                  "  \"use_cache\": true,\n"
                  "  \"use_sliding_window\": false,\n"
                  "  \"vocab_size\": %u\n"
                  "}",
                  s->head_dim, s->hidden_size, s->intermediate_size, s->max_position_embeddings, s->num_layers,
                  s->num_heads, s->num_layers, s->num_kv_heads, s->rope_theta, o->untied ? "false" : "true",
                  torch_dtype_name(o->dtype), s->vocab_size);
    return ci_buf_take(&b, NULL);
}

char *ci_test_model_generation_config_json(void) {
    /* Verbatim Qwen3-0.6B generation_config.json (GenerationConfig uses 4 spaces). */
    return ci_strdup("{\n"
                     "    \"bos_token_id\": 151643,\n"
                     "    \"do_sample\": true,\n"
                     "    \"eos_token_id\": [\n"
                     "        151645,\n"
                     "        151643\n"
                     "    ],\n"
                     "    \"pad_token_id\": 151643,\n"
                     "    \"temperature\": 0.6,\n"
                     "    \"top_k\": 20,\n"
                     "    \"top_p\": 0.95,\n"
                     "    \"transformers_version\": \"4.51.0\"\n"
                     "}");
}

static int write_text_file(const char *dir, const char *name, const char *text, size_t len, cinfer_error *err) {
    char *path = ci_path_join(dir, name);
    FILE *fp = fopen(path, "wb");
    int rc = 0;
    if (!fp) rc = ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
    else {
        if (fwrite(text, 1, len, fp) != len) rc = ci_error(err, CINFER_ERR_IO, "%s: write failed", path);
        if (fclose(fp) != 0 && !rc) rc = ci_error(err, CINFER_ERR_IO, "%s: close failed", path);
    }
    free(path);
    return rc;
}

static int copy_file(const char *src_dir, const char *dst_dir, const char *name, cinfer_error *err) {
    char *src = ci_path_join(src_dir, name);
    size_t len;
    char *data = ci_read_file(src, TOKENIZER_MAX_BYTES, &len, err);
    free(src);
    if (!data) return CINFER_ERR_IO;
    int rc = write_text_file(dst_dir, name, data, len, err);
    free(data);
    return rc;
}

static int st_sink(void *ctx, const void *data, size_t len, cinfer_error *err) { return ci_st_writer_write(ctx, data, len, err); }

static ci_st_dtype st_dtype_for(ci_test_model_dtype d) {
    return d == CI_TM_F32 ? CI_ST_F32 : d == CI_TM_F16 ? CI_ST_F16 : CI_ST_BF16;
}

static int write_shard(const ci_test_model_options *o, const char *path, ci_test_model_tensor *tensors, size_t first,
                       size_t last, progress *prog, cinfer_error *err) {
    ci_st_writer *w = ci_st_writer_open(path, err);
    if (!w) return CINFER_ERR_IO;
    ci_st_dtype dt = st_dtype_for(o->dtype);
    int rc = 0;
    for (size_t i = first; i < last && rc == 0; i++)
        rc = ci_st_writer_add(w, tensors[i].hf_name, dt, tensors[i].n_dims, tensors[i].shape, err);
    if (!rc) rc = ci_st_writer_begin_data(w, err);
    /* The writer orders data by name; find each name's tensor. */
    for (size_t k = 0; k < ci_st_writer_count(w) && rc == 0; k++) {
        const char *name = ci_st_writer_name(w, k);
        for (size_t i = first; i < last; i++)
            if (strcmp(tensors[i].hf_name, name) == 0) {
                rc = stream_tensor(o, &tensors[i], o->dtype, o->dtype, st_sink, w, prog, err);
                break;
            }
    }
    if (rc) {
        ci_st_writer_abort(w);
        return rc;
    }
    return ci_st_writer_close(w, err);
}

static int by_hf_name(const void *a, const void *b) {
    return strcmp((*(const ci_test_model_tensor *const *)a)->hf_name, (*(const ci_test_model_tensor *const *)b)->hf_name);
}

static int write_hf(const ci_test_model_options *o, cinfer_error *err) {
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) return ci_error(err, CINFER_ERR_IO, "%s: %s", o->out, strerror(errno));
    if (!ci_is_directory(o->out)) return ci_error(err, CINFER_ERR_IO, "%s: exists and is not a folder", o->out);
    char *cfg = ci_test_model_config_json(o), *gen = ci_test_model_generation_config_json();
    int rc = write_text_file(o->out, "config.json", cfg, strlen(cfg), err);
    if (!rc) rc = write_text_file(o->out, "generation_config.json", gen, strlen(gen), err);
    free(cfg);
    free(gen);
    if (!rc) rc = copy_file(o->tokenizer_dir, o->out, "tokenizer.json", err);
    if (!rc) rc = copy_file(o->tokenizer_dir, o->out, "tokenizer_config.json", err);
    if (rc) return rc;

    ci_test_model_tensor *tensors;
    size_t n = ci_test_model_tensors(o, &tensors);
    size_t elem = o->dtype == CI_TM_F32 ? 4 : 2;
    uint64_t total = 0;
    uint64_t *bytes = ci_calloc(n, sizeof *bytes);
    for (size_t i = 0; i < n; i++) {
        bytes[i] = tensor_elems(&tensors[i]) * elem;
        total += bytes[i];
    }
    progress prog = {o->progress, total, 0, 0};
    if (o->shards == 1) {
        char *path = ci_path_join(o->out, "model.safetensors");
        rc = write_shard(o, path, tensors, 0, n, &prog, err);
        free(path);
    } else {
        /* Fill shards in model order up to an equal share each, as HF's
         * max_shard_size splitting does (a shard boundary may fall inside a
         * layer, like the real 4B files). */
        size_t *shard_of = ci_calloc(n, sizeof *shard_of);
        uint64_t target = (total + o->shards - 1) / o->shards, acc = 0;
        size_t shard = 0;
        for (size_t i = 0; i < n; i++) {
            if (acc > 0 && acc + bytes[i] > target && shard + 1 < o->shards) shard++, acc = 0;
            shard_of[i] = shard;
            acc += bytes[i];
        }
        size_t used = shard + 1;
        /* One huge tensor (the embedding of a tiny model) can leave shards
         * empty; split the shard with the most tensors until N are used, so
         * --shards N always gives N files (when there are N tensors). */
        while (used < o->shards && used < n) {
            size_t best = 0, best_count = 0;
            for (size_t s = 0; s < used; s++) {
                size_t count = 0;
                for (size_t i = 0; i < n; i++) count += shard_of[i] == s;
                if (count > best_count) best = s, best_count = count;
            }
            if (best_count < 2) break;
            size_t seen = 0;
            for (size_t i = 0; i < n; i++) {
                if (shard_of[i] > best) shard_of[i]++;
                else if (shard_of[i] == best && seen++ >= best_count / 2) shard_of[i]++;
            }
            used++;
        }
        size_t first = 0;
        ci_buf index = {0};
        char (*names)[64] = ci_calloc(used, sizeof *names);
        for (size_t s = 0; s < used; s++) snprintf(names[s], sizeof names[s], "model-%05zu-of-%05zu.safetensors", s + 1, used);
        for (size_t s = 0; s < used && rc == 0; s++) {
            size_t last = first;
            while (last < n && shard_of[last] == s) last++;
            char *path = ci_path_join(o->out, names[s]);
            rc = write_shard(o, path, tensors, first, last, &prog, err);
            free(path);
            first = last;
        }
        if (!rc) {
            /* Index with sorted weight_map, indent 2, as HF writes it. */
            const ci_test_model_tensor **order = ci_calloc(n, sizeof *order);
            for (size_t i = 0; i < n; i++) order[i] = &tensors[i];
            qsort(order, n, sizeof *order, by_hf_name); /* ~19k names for 30b-a3b */
            ci_buf_printf(&index, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {\n",
                          (unsigned long long)total);
            for (size_t k = 0; k < n; k++)
                ci_buf_printf(&index, "    \"%s\": \"%s\"%s\n", order[k]->hf_name, names[shard_of[order[k] - tensors]],
                              k + 1 < n ? "," : "");
            ci_buf_puts(&index, "  }\n}\n");
            rc = write_text_file(o->out, "model.safetensors.index.json", index.data, index.len, err);
            free(order);
        }
        ci_buf_free(&index);
        free(names);
        free(shard_of);
    }
    free(bytes);
    free(tensors);
    return rc;
}

int ci_test_model_write(const ci_test_model_options *o, cinfer_error *err) {
    int rc = ci_test_model_check_options(o, err);
    if (rc) return rc;
    return o->format == CI_TM_GGUF ? write_gguf(o, err) : write_hf(o, err);
}
