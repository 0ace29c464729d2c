/*
 * quantize.h — `cinfer quantize`: a Qwen3 checkpoint (Hugging Face folder
 * or GGUF) to a quantized GGUF, with llama.cpp's llama-quantize choices.
 *
 * Which type each tensor gets (llama.cpp's llama_tensor_get_type, for the
 * tensors a dense Qwen3 has; no importance matrix):
 *  - 1-D tensors (norms) stay F32 (HF input: converted exactly; GGUF input:
 *    copied as stored).
 *  - The output projection — output.weight, or token_embd.weight when the
 *    embeddings are tied and no output.weight exists — gets Q6_K for every
 *    scheme except q8_0 (Q8_0).
 *  - q4_k_m: attn_v.weight and ffn_down.weight of the layers where
 *    use_more_bits(i, n) = i < n/8 || i ≥ 7n/8 || (i - n/8) % 3 == 2 get
 *    Q6_K, all other matrices Q4_K (token_embd too, when output.weight exists).
 *  - q4_k / q6_k / q4_0 / q8_0: every other matrix gets that type.
 *  - Mixture of experts (qwen3moe): the router ffn_gate_inp stays F32; the
 *    stacked experts follow the rules above by name (ffn_down_exps counts as
 *    ffn_down, one per layer). Models with exactly 8 experts get llama.cpp's
 *    special case: attn_k / attn_v Q8_0, and attn_output Q5_K under q4_k /
 *    q4_k_m, which cinfer writes as Q6_K (it has no Q5_K; counted as a
 *    fallback).
 * Fallback when a matrix's row length does not fit its type's block (K-quants
 * need a multiple of 256): llama.cpp turns Q6_K into Q8_0 and Q4_K into
 * Q5_0; cinfer has no Q5_0 kernels, so Q4_K becomes Q8_0 too (never fewer
 * bits than asked for). A row length that is not a multiple of 32 either
 * becomes F16 (llama.cpp's last resort). The weights are quantized with
 * ggml's reference quantizers (kernels.h), so the result holds the values
 * llama-quantize would write.
 *
 * Metadata: from a GGUF every key is copied except general.file_type /
 * quantization_version (rewritten), general.alignment and split.*; from an
 * HF folder it is what cinfer's GGUF writer produces for make-test-model
 * (ci_gguf_write_qwen3_metadata: hyper-parameters from config.json, the
 * tokenizer and chat template from tokenizer.json / tokenizer_config.json).
 */
#ifndef CINFER_MODEL_QUANTIZE_H
#define CINFER_MODEL_QUANTIZE_H

#include "kernels/kernels.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum ci_quant_scheme { CI_QS_Q8_0, CI_QS_Q4_0, CI_QS_Q4_K, CI_QS_Q6_K, CI_QS_Q4_K_M, CI_QS_COUNT } ci_quant_scheme;

/* "q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m" (case-insensitive); false when unknown. */
bool ci_quant_scheme_parse(const char *name, ci_quant_scheme *out);
const char *ci_quant_scheme_name(ci_quant_scheme s);

/* The type llama.cpp's rules give a weight matrix `name` with rows of `cols`
 * elements. i_attn_v / n_attn_v and i_ffn_down / n_ffn_down count the
 * attn_v / ffn_down matrices in file order (the caller advances them);
 * has_output: the checkpoint stores output.weight. *fallback is set when
 * the row length (or a missing type) forced another type; n_experts: 0 for
 * dense models. */
ci_wtype ci_quant_pick_type(ci_quant_scheme s, const char *name, uint64_t cols, bool has_output, int i_attn_v,
                            int n_attn_v, int i_ffn_down, int n_ffn_down, int n_experts, bool *fallback);

typedef struct ci_quantize_stats {
    size_t n_tensors;
    size_t per_type[CI_WT_COUNT]; /* matrices written per type */
    size_t n_fallback;
    size_t n_copied;              /* tensors copied as stored / converted to F32 */
    uint64_t in_bytes, out_bytes; /* tensor data */
} ci_quantize_stats;

/* progress(user, tensor name, its type, bytes written so far, total bytes). */
typedef void (*ci_quantize_progress)(void *user, const char *tensor, ci_wtype type, uint64_t done, uint64_t total);

/* Quantizes `in` (HF folder / .safetensors path, or .gguf) into the GGUF file
 * `out` (created or truncated; deleted again on failure). Threads: the thread pool (threadpool.h). */
int ci_quantize_model(const char *in, const char *out, ci_quant_scheme scheme, ci_quantize_progress progress,
                      void *user, ci_quantize_stats *stats, cinfer_error *err);

#endif
