/*
 * model_config.h — the model hyper-parameters cinfer needs, read from a HF
 * config.json (transformers 4.x keys `torch_dtype`, `rope_theta`,
 * `rope_scaling`, and transformers 5 keys `dtype`,
 * `rope_parameters{rope_theta, rope_type}`) or from GGUF metadata
 * (`qwen3.*`, `qwen3moe.*`), plus generation_config.json sampling defaults.
 *
 * Every value is checked against sane bounds (positive, heads dividing
 * evenly, sizes below generous maxima) so the engine can size buffers from
 * it without further checks; violations produce an error naming the file
 * and the key.
 */
#ifndef CINFER_FORMAT_MODEL_CONFIG_H
#define CINFER_FORMAT_MODEL_CONFIG_H

#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

#define CI_CONFIG_MAX_EOS 8
#define CI_CONFIG_MAX_LAYERS 1024u
#define CI_CONFIG_MAX_EXPERTS 1024u

typedef struct ci_model_config {
    char model_type[32];      /* "qwen3", "qwen2", "llama", ... */
    char architecture[64];    /* architectures[0], e.g. "Qwen3ForCausalLM"; "" when absent */
    char dtype[16];           /* torch_dtype / dtype, e.g. "bfloat16"; "" when absent */
    uint32_t hidden_size;
    uint32_t intermediate_size;
    uint32_t num_hidden_layers;
    uint32_t num_attention_heads;
    uint32_t num_key_value_heads; /* defaults to num_attention_heads */
    uint32_t head_dim;            /* defaults to hidden_size / num_attention_heads (Qwen2 style) */
    uint32_t vocab_size;
    uint32_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;            /* default 10000 when absent */
    char rope_type[32];           /* "default" unless rope_scaling / rope_parameters say otherwise */
    bool tie_word_embeddings;     /* default false, as PretrainedConfig */
    bool attention_bias;
    int32_t bos_token_id;         /* -1 when absent */
    int32_t eos_token_ids[CI_CONFIG_MAX_EOS];
    int n_eos;
    /* Mixture of experts (Qwen3MoeForCausalLM / GGUF qwen3moe); num_experts 0
     * for dense models. A layer is sparse when it is not in mlp_only_layers
     * and (layer + 1) % decoder_sparse_step == 0 (transformers' rule); its
     * experts are SwiGLU MLPs of moe_intermediate_size. */
    uint32_t num_experts;
    uint32_t num_experts_per_tok;
    uint32_t moe_intermediate_size;
    bool norm_topk_prob;
    uint32_t decoder_sparse_step;
    uint64_t mlp_only_layers[CI_CONFIG_MAX_LAYERS / 64]; /* bit set per dense layer */
} ci_model_config;

/* Whether `layer` has a routed-experts MLP (see above). */
bool ci_model_config_layer_is_moe(const ci_model_config *cfg, uint32_t layer);

/* `path` is config.json or a folder holding it. */
int ci_model_config_load(const char *path, ci_model_config *cfg, cinfer_error *err);
/* Parses JSON text; `name` is used in error messages. */
int ci_model_config_parse(const char *json, size_t len, const char *name, ci_model_config *cfg, cinfer_error *err);
/* Reads `<arch>.*` GGUF metadata (arch from general.architecture). */
struct ci_gguf_file;
int ci_model_config_from_gguf(const struct ci_gguf_file *f, ci_model_config *cfg, cinfer_error *err);
/* The bounds checks (already applied by the loaders). */
int ci_model_config_validate(const ci_model_config *cfg, const char *name, cinfer_error *err);

typedef struct ci_generation_config {
    /* has_* false = the file does not set it (use the runtime default). */
    bool has_temperature, has_top_k, has_top_p, has_min_p, has_repetition_penalty, has_do_sample,
        has_max_new_tokens, has_pad_token_id, has_bos_token_id;
    double temperature, top_p, min_p, repetition_penalty;
    int32_t top_k;
    bool do_sample;
    int64_t max_new_tokens;
    int32_t pad_token_id, bos_token_id;
    int32_t eos_token_ids[CI_CONFIG_MAX_EOS];
    int n_eos;
} ci_generation_config;

/* `path` is generation_config.json or a folder holding it. */
int ci_generation_config_load(const char *path, ci_generation_config *gen, cinfer_error *err);
int ci_generation_config_parse(const char *json, size_t len, const char *name, ci_generation_config *gen,
                               cinfer_error *err);

#endif
