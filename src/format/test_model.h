/*
 * test_model.h — deterministic random-weight Qwen3 checkpoints in the exact
 * layouts of the real ones (`cinfer make-test-model`).
 *
 * Weights. Every tensor's values come from a counter-based generator, so any
 * element can be computed on its own (streaming, parallel, and checkable by
 * tests without storing the model):
 *   key    = splitmix64_mix(seed ^ fnv1a64(value_name))
 *   u_i    = splitmix64_mix(key + (i + 1) * 0x9E3779B97F4A7C15) >> 40   (24 bits)
 *   x_i    = (u_i + 0.5) / 2^23 - 1                                      (in (-1, 1))
 *   value  = (float)(offset + amplitude * x_i)   computed in double
 * where i is the element index in PyTorch row-major order ([out, in]; GGUF
 * stores the same order with ne = {in, out}) and value_name is the HF tensor
 * name (a tied lm_head uses "model.embed_tokens.weight").
 *
 * Scales (uniform, so amplitude = sqrt(3) * std):
 *   embed_tokens / lm_head  std 8/sqrt(hidden): after the final RMSNorm the
 *       hidden state has rms ~1, so logits have std ~8. Among 151936 tokens
 *       the top logit then sits ~4.4 std above the mean with typical gaps of
 *       ~1.5 to the runner-up: next-token distributions are peaked (the
 *       argmax usually carries most of the mass), so greedy decoding is
 *       stable and comparisons between runtimes are meaningful.
 *   linear projections      std 1/sqrt(in_features): variance preserving, so
 *       each sub-layer adds O(1) per component to the residual stream and the
 *       input embedding does not dominate the output (which would make every
 *       model just repeat its input token).
 *   norm weights            1 + U(-0.1, 0.1): near 1, yet not all equal so a
 *       runtime that ignores them is caught.
 */
#ifndef CINFER_FORMAT_TEST_MODEL_H
#define CINFER_FORMAT_TEST_MODEL_H

#include "format/gguf.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ci_test_model_shape {
    const char *name;
    uint32_t hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    uint32_t max_position_embeddings;
    double rope_theta;
    uint32_t vocab_size;
    /* Mixture of experts (Qwen3MoeForCausalLM / qwen3moe), every layer
     * sparse; num_experts 0 for dense shapes. */
    uint32_t num_experts, experts_per_tok, moe_intermediate_size;
} ci_test_model_shape;

/* "tiny", "small", "0.6b", "4b", "tiny-moe", "small-moe", "30b-a3b"; NULL when unknown. */
const ci_test_model_shape *ci_test_model_shape_get(const char *name);

typedef enum ci_test_model_dtype { CI_TM_F32, CI_TM_BF16, CI_TM_F16, CI_TM_Q8_0 } ci_test_model_dtype;
typedef enum ci_test_model_format { CI_TM_HF, CI_TM_GGUF } ci_test_model_format;
/* LINEAR_OUT: projections whose output is added to the residual stream (o_proj, down_proj). */
typedef enum ci_test_model_kind { CI_TM_EMBED, CI_TM_LINEAR, CI_TM_LINEAR_OUT, CI_TM_NORM } ci_test_model_kind;

/* A 3-D tensor is a stack of experts (GGUF ffn_{gate,up,down}_exps):
 * shape [E, out, in]; its hf_name and value_name hold one "%u" for the
 * expert, HF stores expert e as the 2-D tensor printf(hf_name, e), and the
 * values of expert e are those of that 2-D tensor (index from 0 per expert),
 * so the two layouts carry the same numbers. */
typedef struct ci_test_model_tensor {
    char hf_name[80];
    char gguf_name[48];
    char value_name[80];  /* whose values it holds (tied lm_head: the embedding) */
    uint32_t n_dims;      /* 1, 2, or 3 (expert stack) */
    uint64_t shape[3];    /* PyTorch order: [out, in] or [n] or [E, out, in] */
    ci_test_model_kind kind;
} ci_test_model_tensor;

typedef struct ci_test_model_options {
    const char *out;
    const ci_test_model_shape *shape;
    ci_test_model_dtype dtype;
    ci_test_model_format format;
    uint32_t shards;          /* hf only; 1 = model.safetensors */
    bool untied;              /* independent lm_head, tie_word_embeddings false */
    bool no_lm_head;          /* tied models: omit lm_head.weight (like the 4B files) */
    uint64_t seed;
    const char *tokenizer_dir;/* folder with tokenizer.json + tokenizer_config.json */
    bool progress;            /* progress lines on stderr */
} ci_test_model_options;

/* The tensors of a checkpoint in model (module) order. For GGUF the list
 * follows llama.cpp's converter: a tied model has no output.weight. MoE
 * shapes list their experts as 3-D stacks (see above) for GGUF and as
 * each expert's 2-D tensors for HF.
 * Caller frees *out. */
size_t ci_test_model_tensors(const ci_test_model_options *o, ci_test_model_tensor **out);

/* `--list`: one line per tensor, "name\t[dims]\ttype", dims as the format
 * lists them (GGUF innermost first), the type as stored. Caller frees. */
char *ci_test_model_list_text(const ci_test_model_options *o);

/* Element values (see the top of this file). */
void ci_test_model_fill(uint64_t seed, const ci_test_model_tensor *t, uint64_t start, size_t count, float *out);

/* Validates option combinations (q8_0 only for gguf, shards only for hf, ...). */
int ci_test_model_check_options(const ci_test_model_options *o, cinfer_error *err);
int ci_test_model_write(const ci_test_model_options *o, cinfer_error *err);

/* What the GGUF header of a Qwen3 says besides the tokenizer. */
typedef struct ci_qwen3_gguf_meta {
    const char *name;          /* general.name */
    uint32_t layers, context_length, hidden, intermediate, heads, kv_heads, head_dim, vocab_size;
    double rope_theta, rms_eps;
    uint32_t file_type;        /* general.file_type (CI_GGUF_FTYPE_*) */
    uint32_t experts, experts_used, expert_intermediate; /* > 0: arch qwen3moe */
    bool has_seed;             /* test models: general.seed */
    uint64_t seed;
} ci_qwen3_gguf_meta;

/* Writes the metadata of cinfer's Qwen3 GGUF files as llama.cpp's converter
 * lays it out: architecture and hyper-parameters, file type, and the
 * tokenizer (vocabulary, token types, merges, special ids) and chat
 * template read from tokenizer_dir's tokenizer.json + tokenizer_config.json.
 * Used by make-test-model and `cinfer quantize`. */
int ci_gguf_write_qwen3_metadata(ci_gguf_writer *w, const ci_qwen3_gguf_meta *m, const char *tokenizer_dir,
                                 cinfer_error *err);

/* config.json / generation_config.json text in HF's own formatting (for the
 * 0.6b shape, bf16, tied: byte-identical to the real Qwen3-0.6B files).
 * Caller frees. */
char *ci_test_model_config_json(const ci_test_model_options *o);
char *ci_test_model_generation_config_json(void);

#endif
