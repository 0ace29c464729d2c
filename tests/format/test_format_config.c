/*
 * test_format_config.c — config.json / generation_config.json parsing: every
 * real config in tests/data/configs, both transformers 4.x and 5.x key
 * styles, and each bound violation with its message.
 * Usage: test_format_config TEST_DATA_DIR
 */
#include "format/model_config.h"
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *refdir;

static bool load_named(const char *name, ci_model_config *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", refdir, name);
    cinfer_error err = {0};
    int rc = ci_model_config_load(path, c, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.message);
    return rc == 0;
}

static void test_all_reference_files(void) {
    char dirpath[1024];
    snprintf(dirpath, sizeof dirpath, "%s/configs", refdir);
    DIR *d = opendir(dirpath);
    CHECK_MSG(d != NULL, "cannot open %s", dirpath);
    if (!d) return;
    int configs = 0, gens = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dirpath, e->d_name);
        cinfer_error err = {0};
        size_t n = strlen(e->d_name);
        if (n > 23 && !strcmp(e->d_name + n - 23, ".generation_config.json")) {
            ci_generation_config g;
            CHECK_MSG(ci_generation_config_load(path, &g, &err) == 0, "%s: %s", e->d_name, err.message);
            CHECK_MSG(g.n_eos >= 1 && g.has_temperature && g.has_top_k && g.has_top_p, "%s", e->d_name);
            gens++;
        } else if (n > 12 && !strcmp(e->d_name + n - 12, ".config.json")) {
            ci_model_config c;
            CHECK_MSG(ci_model_config_load(path, &c, &err) == 0, "%s: %s", e->d_name, err.message);
            configs++;
        }
    }
    closedir(d);
    CHECK(configs >= 9 && gens >= 3);
}

static void test_values(void) {
    ci_model_config c;
    if (load_named("Qwen3-0.6B.config.json", &c)) {
        CHECK_STREQ(c.model_type, "qwen3");
        CHECK_STREQ(c.architecture, "Qwen3ForCausalLM");
        CHECK_STREQ(c.dtype, "bfloat16");
        CHECK(c.hidden_size == 1024 && c.intermediate_size == 3072 && c.num_hidden_layers == 28);
        CHECK(c.num_attention_heads == 16 && c.num_key_value_heads == 8 && c.head_dim == 128);
        CHECK(c.vocab_size == 151936 && c.max_position_embeddings == 40960);
        CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 && !strcmp(c.rope_type, "default"));
        CHECK(c.tie_word_embeddings && !c.attention_bias);
        CHECK(c.bos_token_id == 151643 && c.n_eos == 1 && c.eos_token_ids[0] == 151645);
    }
    if (load_named("Qwen3-4B.config.json", &c)) /* JS-style numbers (0.000001, 0) */
        CHECK(c.hidden_size == 2560 && c.num_attention_heads == 32 && c.head_dim == 128 && c.rms_norm_eps == 1e-6 &&
              c.tie_word_embeddings && c.num_hidden_layers == 36);
    if (load_named("Qwen3-4B-Instruct-2507.config.json", &c))
        CHECK(c.rope_theta == 5e6 && c.max_position_embeddings == 262144);
    if (load_named("Qwen3-8B.config.json", &c)) CHECK(!c.tie_word_embeddings && c.hidden_size == 4096);
    if (load_named("Qwen3-30B-A3B.config.json", &c)) CHECK_STREQ(c.model_type, "qwen3_moe");
    if (load_named("Qwen2.5-0.5B-Instruct.config.json", &c)) /* no head_dim key: hidden / heads */
        CHECK(c.head_dim == 896 / 14 && c.num_key_value_heads == 2);
    if (load_named("Llama-3.2-1B-Instruct.config.json", &c)) {
        CHECK_STREQ(c.rope_type, "llama3");
        CHECK(c.n_eos == 3 && c.eos_token_ids[2] == 128009 && c.bos_token_id == 128000);
    }
    ci_generation_config g;
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/Qwen3-0.6B.generation_config.json", refdir);
    cinfer_error err = {0};
    CHECK(ci_generation_config_load(path, &g, &err) == 0);
    CHECK(g.has_temperature && g.temperature == 0.6 && g.top_k == 20 && g.top_p == 0.95 && g.do_sample);
    CHECK(!g.has_min_p && !g.has_repetition_penalty && !g.has_max_new_tokens);
    CHECK(g.n_eos == 2 && g.eos_token_ids[0] == 151645 && g.eos_token_ids[1] == 151643);
    CHECK(g.has_pad_token_id && g.pad_token_id == 151643);
    snprintf(path, sizeof path, "%s/configs/Qwen3-4B-Instruct-2507.generation_config.json", refdir);
    CHECK(ci_generation_config_load(path, &g, &err) == 0 && g.temperature == 0.7 && g.top_p == 0.8);
}

#define BASE "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":1000"

static void expect_config_error(const char *json, const char *must_contain) {
    ci_model_config c;
    cinfer_error err = {0};
    int rc = ci_model_config_parse(json, strlen(json), "cfg.json", &c, &err);
    CHECK_MSG(rc != 0, "accepted: %s", json);
    CHECK_MSG(strstr(err.message, "cfg.json") && strstr(err.message, must_contain), "'%s' not in: %s", must_contain, err.message);
}

static void test_styles_and_errors(void) {
    ci_model_config c;
    cinfer_error err = {0};
    const char *v5 = "{" BASE ",\"head_dim\":32,\"num_key_value_heads\":2,\"dtype\":\"float32\","
                     "\"rope_parameters\":{\"rope_theta\":500000.0,\"rope_type\":\"default\"},"
                     "\"layer_types\":[\"full_attention\",\"full_attention\"],\"eos_token_id\":[5,6]}";
    CHECK_MSG(ci_model_config_parse(v5, strlen(v5), "v5.json", &c, &err) == 0, "%s", err.message);
    CHECK(c.rope_theta == 500000.0 && !strcmp(c.dtype, "float32") && c.head_dim == 32 && c.n_eos == 2);
    CHECK(!c.tie_word_embeddings && c.bos_token_id == -1 && c.rope_theta > 0);
    const char *scaled = "{" BASE ",\"rope_theta\":1e4,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0}}";
    CHECK(ci_model_config_parse(scaled, strlen(scaled), "s.json", &c, &err) == 0 && !strcmp(c.rope_type, "yarn"));
    const char *minimal = "{" BASE "}";
    CHECK(ci_model_config_parse(minimal, strlen(minimal), "m.json", &c, &err) == 0 && c.head_dim == 16 &&
          c.num_key_value_heads == 4 && c.rope_theta == 10000.0);

    expect_config_error("{\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":10}",
                        "\"hidden_size\" is missing");
    expect_config_error("{" BASE ",\"num_key_value_heads\":3}", "not a multiple");
    expect_config_error("{\"hidden_size\":0,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                        "\"vocab_size\":10}", "\"hidden_size\" must be positive");
    expect_config_error("{\"hidden_size\":\"64\",\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                        "\"vocab_size\":10}", "must be an integer");
    expect_config_error("{\"hidden_size\":-64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                        "\"vocab_size\":10}", "out of range");
    expect_config_error("{" BASE ",\"num_hidden_layers\":100000}", "num_hidden_layers");
    expect_config_error("{" BASE ",\"head_dim\":33}", "even");
    expect_config_error("{" BASE ",\"rms_norm_eps\":0}", "rms_norm_eps");
    expect_config_error("{" BASE ",\"rope_theta\":-1}", "rope_theta");
    expect_config_error("{" BASE ",\"rope_theta\":1e39}", "rope_theta"); /* beyond float: the kernels use float */
    expect_config_error("{" BASE ",\"rope_parameters\":{\"rope_theta\":\"x\"}}", "rope_theta");
    expect_config_error("{" BASE ",\"eos_token_id\":5000}", "outside the vocabulary");
    expect_config_error("{" BASE ",\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}", "too many");
    expect_config_error("{" BASE ",\"eos_token_id\":\"x\"}", "eos_token_id");
    expect_config_error("{" BASE ",\"tie_word_embeddings\":1}", "true or false");
    expect_config_error("{" BASE ",\"vocab_size\":99999999}", "vocab_size");
    expect_config_error("[1]", "not a JSON object");
    expect_config_error("{", "cfg.json:");
    CHECK(ci_model_config_load("/nonexistent/config.json", &c, &err) == CINFER_ERR_IO);

    ci_generation_config g;
    const char *gj = "{\"temperature\":0.7,\"top_k\":0,\"top_p\":1,\"min_p\":0.05,\"repetition_penalty\":1.1,"
                     "\"do_sample\":false,\"eos_token_id\":7,\"max_new_tokens\":32}";
    CHECK(ci_generation_config_parse(gj, strlen(gj), "g.json", &g, &err) == 0 && g.n_eos == 1 && g.eos_token_ids[0] == 7 &&
          g.min_p == 0.05 && g.repetition_penalty == 1.1 && !g.do_sample && g.has_do_sample && g.max_new_tokens == 32);
    const char *bad[] = {"{\"top_p\":2}", "{\"temperature\":\"hot\"}", "{\"top_k\":-1}", "{\"repetition_penalty\":0}",
                         "{\"do_sample\":\"yes\"}", "{\"pad_token_id\":-3}", "{\"max_new_tokens\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ci_generation_config_parse(bad[i], strlen(bad[i]), "g.json", &g, &err);
        CHECK_MSG(rc != 0 && strstr(err.message, "g.json"), "accepted %s", bad[i]);
    }
}

int main(int argc, char **argv) {
    refdir = argc > 1 ? argv[1] : "tests/data";
    test_all_reference_files();
    test_values();
    test_styles_and_errors();
    TEST_MAIN_END();
}
