/*
 * test_public_tools.c — the tools and defaults cinfer.h offers (what the
 * `cinfer` subcommands are built on), through cinfer.h alone:
 *  - cinfer_make_test_model / cinfer_test_model_check / _tensor_list;
 *  - cinfer_model_load's defaults (CINFER_DEFAULTS.model) and the distinct
 *    CINFER_ERR_KV_TOO_SMALL code, at the exact boundary computed from
 *    config.json (read here with jansson, not by the loader);
 *  - cinfer_quantize: names, stats against the generator's tensor list;
 *  - cinfer_bench_*: argument checks, info against config.json, sane rates.
 * usage: test_public_tools WORKDIR TOKENIZER_DIR
 */
#include "cinfer.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char g_path[4096];
static const char *in_work(const char *work, const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", work, name);
    return g_path;
}

static long config_int(const json_t *cfg, const char *key) { return (long)json_integer_value(json_object_get(cfg, key)); }

static void test_check(const char *tok) {
    cinfer_test_model_options o;
    cinfer_test_model_options_init(&o);
    CHECK_STREQ(o.shape, CINFER_DEFAULTS.test_model.shape);
    o.tokenizer_dir = tok;
    cinfer_error err = {0};
    CHECK(cinfer_test_model_check(&o, &err) == CINFER_OK);
    o.shape = "huge";
    CHECK(cinfer_test_model_check(&o, &err) == CINFER_ERR_INVALID && strstr(err.message, "huge"));
    o.shape = "tiny";
    o.dtype = "q8_0"; /* q8_0 is GGUF only */
    CHECK(cinfer_test_model_check(&o, &err) == CINFER_ERR_INVALID);
    o.format = "gguf";
    CHECK(cinfer_test_model_check(&o, &err) == CINFER_OK);
    o.format = "onnx";
    CHECK(cinfer_test_model_check(&o, &err) == CINFER_ERR_INVALID);
}

/* The KV pool of kv_gib holds floor(kv_gib GiB / block bytes) blocks of
 * block_size positions; one sequence of max_model_len must fit. */
static void test_kv_boundary(const char *model, const json_t *cfg) {
    long layers = config_int(cfg, "num_hidden_layers"), kv_heads = config_int(cfg, "num_key_value_heads");
    long head_dim = config_int(cfg, "head_dim"), max_pos = config_int(cfg, "max_position_embeddings");
    long bs = CINFER_DEFAULTS.model.kv_block_size;
    double gib = 0.01;
    long block_bytes = 2 * layers * kv_heads * head_dim * bs * 2; /* K and V, f16 */
    long blocks = (long)(gib * 1073741824.0 / (double)block_bytes);
    long fits = blocks * bs;
    CHECK_MSG(fits > 16 && fits < max_pos, "the boundary %ld must lie inside the model's %ld positions", fits, max_pos);

    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.kv_cache_gib = gib;
    cinfer_error err = {0};
    mo.max_model_len = (int)fits;
    cinfer_model *m = cinfer_model_load(model, &mo, &err);
    CHECK_MSG(m != NULL, "max_model_len %ld in %ld blocks: %s", fits, blocks, err.message);
    cinfer_model_free(m);
    mo.max_model_len = (int)fits + 1;
    m = cinfer_model_load(model, &mo, &err);
    CHECK_MSG(!m && err.code == CINFER_ERR_KV_TOO_SMALL, "max_model_len %ld: code %d %s", fits + 1, err.code, err.message);
    cinfer_model_free(m);
    /* max_model_len 0: min(model maximum, CINFER_DEFAULTS.model.max_model_len) */
    cinfer_model_options_init(&mo);
    m = cinfer_model_load(model, &mo, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    if (m) {
        long want = max_pos < CINFER_DEFAULTS.model.max_model_len ? max_pos : CINFER_DEFAULTS.model.max_model_len;
        char needle[64];
        snprintf(needle, sizeof needle, "context %ld", want);
        CHECK_MSG(strstr(cinfer_model_describe(m), needle) != NULL, "%s lacks %s", cinfer_model_describe(m), needle);
    }
    cinfer_model_free(m);
}

/* Matrices in the GGUF tensor list: lines with two dimensions. */
static size_t count_matrices(const char *list) {
    size_t n = 0;
    for (const char *p = list; (p = strstr(p, ", ")) != NULL; p++) n++;
    return n;
}

static void test_quantize(const char *work, const char *model, const char *tok) {
    CHECK_STREQ(cinfer_quantize_scheme_name("Q4_K_M"), "q4_k_m");
    CHECK(cinfer_quantize_scheme_name("q5_k") == NULL && cinfer_quantize_scheme_name(NULL) == NULL);
    cinfer_error err = {0};
    char out[4200];
    snprintf(out, sizeof out, "%s/tiny-q8_0.gguf", work);
    CHECK(cinfer_quantize(model, out, "q5_k", NULL, NULL, NULL, &err) == CINFER_ERR_INVALID);
    cinfer_quantize_stats st;
    int rc = cinfer_quantize(model, out, "q8_0", NULL, NULL, &st, &err);
    CHECK_MSG(rc == CINFER_OK, "%s", err.message);
    if (rc) return;
    cinfer_test_model_options o;
    cinfer_test_model_options_init(&o);
    o.format = "gguf";
    o.tokenizer_dir = tok;
    char *list = cinfer_test_model_tensor_list(&o, &err);
    CHECK(list != NULL);
    size_t matrices = list ? count_matrices(list) : 0;
    /* q8_0 puts every matrix, the output projection included, in Q8_0. */
    CHECK_MSG(st.n_types == 1 && !strcmp(st.per_type[0].type, "q8_0") && st.per_type[0].count == matrices,
              "%d types, first %s x %zu; %zu matrices", st.n_types, st.n_types ? st.per_type[0].type : "-",
              st.n_types ? st.per_type[0].count : 0, matrices);
    CHECK(st.n_tensors == matrices + st.n_copied && st.out_bytes < st.in_bytes);
    cinfer_free(list);
}

static void check_stat(const char *what, const cinfer_bench_stat *s) {
    CHECK_MSG(s->median > 0 && s->min <= s->median && s->median <= s->max, "%s: %g %g %g", what, s->min, s->median,
              s->max);
}

static void test_bench(const char *model, const json_t *cfg) {
    cinfer_bench_options o;
    cinfer_bench_options_init(&o);
    CHECK(o.n_prompt == CINFER_DEFAULTS.bench.n_prompt && o.repetitions == CINFER_DEFAULTS.bench.repetitions);
    cinfer_error err = {0};
    o.n_seqs = CINFER_BENCH_MAX_SEQS + 1;
    CHECK(!cinfer_bench_open(model, &o, &err) && err.code == CINFER_ERR_INVALID);
    o.n_seqs = 2, o.n_prompt = 0, o.n_gen = 0;
    CHECK(!cinfer_bench_open(model, &o, &err) && err.code == CINFER_ERR_INVALID);
    o.n_prompt = 8, o.n_gen = 4, o.repetitions = 1;
    cinfer_bench *b = cinfer_bench_open(model, &o, &err);
    CHECK_MSG(b != NULL, "%s", err.message);
    if (!b) return;
    cinfer_bench_info in;
    cinfer_bench_get_info(b, &in);
    CHECK(in.n_layers == config_int(cfg, "num_hidden_layers") && in.hidden == config_int(cfg, "hidden_size"));
    CHECK_STREQ(in.weight_type, "bf16");
    CHECK(in.n_threads >= 1 && in.kernels && *in.kernels);
    cinfer_bench_stat pp, tg;
    CHECK_MSG(cinfer_bench_run_pp(b, &pp, &err) == CINFER_OK, "%s", err.message);
    check_stat("pp", &pp);
    CHECK_MSG(cinfer_bench_run_tg(b, &tg, &err) == CINFER_OK, "%s", err.message);
    check_stat("tg", &tg);
    cinfer_bench_free(b);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_public_tools WORKDIR TOKENIZER_DIR\n");
        return 2;
    }
    const char *work = argv[1], *tok = argv[2];
    test_check(tok);
    cinfer_test_model_options o;
    cinfer_test_model_options_init(&o);
    o.tokenizer_dir = tok;
    o.seed = 3;
    char model[4200];
    snprintf(model, sizeof model, "%s", in_work(work, "tiny"));
    cinfer_error err = {0};
    int rc = cinfer_make_test_model(model, &o, &err);
    CHECK_MSG(rc == CINFER_OK, "%s", err.message);
    json_t *cfg = rc ? NULL : json_load_file(in_work(work, "tiny/config.json"), 0, NULL);
    CHECK(cfg != NULL);
    if (cfg) {
        test_kv_boundary(model, cfg);
        test_quantize(work, model, tok);
        test_bench(model, cfg);
    }
    json_decref(cfg);
    TEST_MAIN_END();
}
