/*
 * loader.h — opens a Qwen3 checkpoint as downloaded and fills qwen3_model.
 *
 * Accepted: a Hugging Face folder (config.json, generation_config.json,
 * model.safetensors or sharded model-*.safetensors + index), a single
 * .safetensors file next to its config.json, or a GGUF file written by
 * llama.cpp's converter (arch "qwen3" or "qwen3moe"; the HF config
 * Qwen3ForCausalLM or Qwen3MoeForCausalLM). Matrices stay in the memory-mapped
 * files in their stored type (BF16, F16, F32, Q8_0, Q4_0, Q4_K, Q6_K); only the small
 * norm vectors are converted to fp32 copies. Every tensor the config implies
 * is checked for presence, shape and type before the model is usable, and
 * errors name the file and the tensor.
 */
#ifndef CINFER_LOADER_H
#define CINFER_LOADER_H

#include "format/gguf.h"
#include "format/model_config.h"
#include "format/safetensors.h"
#include "model/qwen3.h"

typedef struct qwen3_checkpoint {
    char *path;
    bool is_gguf;
    qwen3_model model;
    ci_model_config config;
    ci_generation_config generation;  /* zeroed when the checkpoint has none */
    bool has_generation_config;
    ci_st_model *safetensors;
    ci_gguf_file *gguf;
    float *norms;                     /* fp32 copies of all norm vectors */
    ci_weight *experts;               /* [n_layers][gate, up, down][E] expert views (MoE) */
} qwen3_checkpoint;

/* progress(user, done, total) is called while tensors are checked (may be NULL). */
typedef void (*ci_load_progress)(void *user, size_t done, size_t total);

int qwen3_checkpoint_open(const char *path, qwen3_checkpoint *ck, ci_load_progress progress, void *user,
                          cinfer_error *err);
void qwen3_checkpoint_close(qwen3_checkpoint *ck);

#endif
