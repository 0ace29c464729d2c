#!/bin/sh
# Runs the OpenAI SDK suite (sdk_test.mjs); exit 77 = skipped (no node / SDK).
# usage: run_sdk.sh CINFER_BIN MODEL_DIR ROOT WORK_DIR
bin=$1 model=$2 root=$3 work=$4
command -v node >/dev/null 2>&1 || { echo "skipped: node not found"; exit 77; }
[ -f "$root/node_modules/openai/package.json" ] || { echo "skipped: node_modules/openai missing (npm ci)"; exit 77; }
exec node "$root/tests/server/sdk_test.mjs" "$bin" "$model" "$work"
