#!/bin/sh
# test_quantize.sh BIN FORWARD_DUMP WORKDIR TOKENIZER_DIR — `cinfer quantize`
# end to end: a generated small Qwen3 (BF16, HF folder) quantized to every
# type, the tensor types read back by an independent GGUF parser
# (gguf_types.py) against llama.cpp's rules, each file loaded and run, the
# error against the BF16 model ordered by bits; a GGUF as input; bad input
# and corrupt/truncated K-quant files failing with clear messages and no
# partial output.
set -u
bin=$1 dump=$2 work=$3 tok=$4
here=$(dirname "$0")
py=/usr/bin/python3
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
mk() { out=$1; shift; rm -rf "$out"; "$bin" make-test-model "$out" --tokenizer "$tok" --seed 31 "$@" >/dev/null; }
# expect_fail STATUS WHAT PATTERN... -- CMD...: CMD exits with STATUS and stderr matches every pattern
expect_fail() {
  want=$1 what=$2; shift 2
  pats=""
  while [ "$1" != "--" ]; do pats="$pats
$1"; shift; done
  shift
  "$@" >/dev/null 2>"$work/err.txt"
  rc=$?
  if [ $rc -ne "$want" ]; then bad "$what: exit status $rc (want $want): $(cat "$work/err.txt")"; return; fi
  echo "$pats" | while IFS= read -r p; do
    [ -z "$p" ] && continue
    grep -q -- "$p" "$work/err.txt" || echo "$p"
  done > "$work/missing.txt"
  if [ -s "$work/missing.txt" ]; then bad "$what: message lacks '$(head -1 "$work/missing.txt")': $(cat "$work/err.txt")"; else ok; fi
}
no_leftovers() { # no_leftovers WHAT OUT: neither OUT nor a partial file next to it
  if [ -e "$2" ] || ls "$2".partial-* >/dev/null 2>&1; then bad "$1: output or partial file left behind"; else ok; fi
}

mk "$work/q-small" --shape small --dtype bf16
mk "$work/q-tiny" --shape tiny --dtype bf16

# Expected ggml type ids (llama.cpp's llama_tensor_get_type for a tied
# Qwen3: token_embd is the output projection) computed here independently.
check_types() { # check_types FILE SCHEME N_LAYERS FALLBACK(0|1)
  "$py" "$here/gguf_types.py" "$1" > "$work/types.txt" || { bad "$1: unreadable GGUF"; return; }
  "$py" - "$work/types.txt" "$2" "$3" "$4" <<'EOF' > "$work/types-bad.txt"
import sys
lines, scheme, n, fallback = open(sys.argv[1]).read().split("\n"), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
F32, Q4_0, Q8_0, Q4_K, Q6_K = 0, 2, 8, 12, 14
base = {"q8_0": Q8_0, "q4_0": Q4_0, "q4_k": Q4_K, "q6_k": Q6_K, "q4_k_m": Q4_K}[scheme]
more = lambda i: i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2
for line in filter(None, lines):
    name, t, dims = line.split()
    t, rank = int(t), len(dims.split("x"))
    if rank == 1: want = F32
    elif name == "token_embd.weight": want = Q8_0 if scheme == "q8_0" else Q6_K
    elif scheme == "q4_k_m" and ("attn_v" in name or "ffn_down" in name) and more(int(name.split(".")[1])): want = Q6_K
    else: want = base
    if fallback and want in (Q4_K, Q6_K): want = Q8_0
    if t != want: print(f"{name}: type {t}, want {want}")
EOF
  if [ -s "$work/types-bad.txt" ]; then bad "$1 ($2): $(head -3 "$work/types-bad.txt")"; else ok; fi
}

ids='[785,3974,13876,38835,34208,916,279,15678,5562,13,220,108386,3837,99489,6313,151645,198,151644]'
"$dump" "$work/q-small" "$ids" --bin > "$work/q-ref.logits"
for t in q8_0 q4_0 q4_k q6_k q4_k_m; do
  out="$work/q-small-$t.gguf"
  rm -f "$out"
  if ! "$bin" quantize "$work/q-small" "$out" --type "$t" > "$work/q-summary.txt" 2>"$work/err.txt"; then
    bad "quantize --type $t: $(cat "$work/err.txt")"; continue
  fi
  check_types "$out" "$t" 4 0
  n=$("$bin" run "$out" -p "Hello there" --max-tokens 8 --temperature 0 --json --ctx-size 256 2>"$work/err.txt" |
      "$py" -c "import json,sys; print(json.load(sys.stdin)['usage']['completion_tokens'])" 2>/dev/null)
  if [ "$n" = 8 ]; then ok; else bad "$t: run produced '$n' tokens: $(cat "$work/err.txt")"; fi
  "$dump" "$out" "$ids" --bin > "$work/q-$t.logits" || bad "$t: forward_dump failed"
done

# Distance to the BF16 model: mean KL(bf16 || quantized) over the positions.
# More bits must mean less error: q8_0 < q6_k < every 4-bit type (this
# random model is too chaotic to rank the 4-bit types reliably).
"$py" - "$work" <<'EOF' > "$work/kl.txt"
import array, math, sys
w = sys.argv[1]
def load(name):
    a = array.array("f"); a.frombytes(open(f"{w}/q-{name}.logits", "rb").read()); return a
ref, V = load("ref"), 151936
n = len(ref) // V
def logsm(row):
    m = max(row); z = math.log(sum(math.exp(x - m) for x in row)) + m
    return [x - z for x in row]
refs = [logsm(ref[i * V:(i + 1) * V]) for i in range(n)]
for t in ["q8_0", "q6_k", "q4_k_m", "q4_k", "q4_0"]:
    q = load(t); kl = 0.0
    for i in range(n):
        s = logsm(q[i * V:(i + 1) * V])
        kl += sum(math.exp(a) * (a - b) for a, b in zip(refs[i], s) if a > -30)
    print(t, kl / n)
EOF
cat "$work/kl.txt"
if "$py" -c "
import sys
k = dict((l.split()[0], float(l.split()[1])) for l in open('$work/kl.txt'))
four = min(k['q4_k_m'], k['q4_k'], k['q4_0'])
sys.exit(0 if k['q8_0'] < k['q6_k'] < four and k['q8_0'] < 0.05 and max(k.values()) < 3 else 1)
"; then ok; else bad "KL to the BF16 model out of order or too large: $(tr '\n' ' ' < "$work/kl.txt")"; fi

# Rows of 64/128 elements (tiny shape): every K-quant matrix falls back to Q8_0.
rm -f "$work/q-tiny.gguf"
if "$bin" quantize "$work/q-tiny" "$work/q-tiny.gguf" --type q4_k_m --quiet 2>"$work/err.txt"; then
  check_types "$work/q-tiny.gguf" q4_k_m 2 1
  "$bin" run "$work/q-tiny.gguf" -p "Hi" --max-tokens 4 --ctx-size 128 >/dev/null 2>&1 && ok || bad "tiny q4_k_m does not run"
else bad "quantize tiny: $(cat "$work/err.txt")"; fi

# A GGUF as input: metadata (here: the chat template) carried over; a file
# already in the chosen type is copied unchanged (identical logits).
rm -f "$work/q-from-gguf.gguf" "$work/q-same.gguf"
"$bin" quantize "$work/q-small-q8_0.gguf" "$work/q-from-gguf.gguf" --type q4_k_m --quiet 2>"$work/err.txt" || bad "gguf input: $(cat "$work/err.txt")"
check_types "$work/q-from-gguf.gguf" q4_k_m 4 0
printf '%s' '{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true}' > "$work/ctx.json"
"$bin" template --model "$work/q-small" --context "$work/ctx.json" > "$work/tpl-a.txt" 2>/dev/null
"$bin" template --model "$work/q-from-gguf.gguf" --context "$work/ctx.json" > "$work/tpl-b.txt" 2>/dev/null
if [ -s "$work/tpl-a.txt" ] && cmp -s "$work/tpl-a.txt" "$work/tpl-b.txt"; then ok; else bad "chat template not carried over"; fi
"$bin" quantize "$work/q-small-q4_k_m.gguf" "$work/q-same.gguf" --type q4_k_m --quiet 2>"$work/err.txt" || bad "requantize: $(cat "$work/err.txt")"
"$dump" "$work/q-same.gguf" "$ids" --bin > "$work/q-same.logits"
if cmp -s "$work/q-same.logits" "$work/q-q4_k_m.logits"; then ok; else bad "q4_k_m → q4_k_m changed the weights"; fi

# Bad input: usage errors (status 2), failures (status 1) leave nothing behind.
expect_fail 2 "unknown type" "q5_k" -- "$bin" quantize "$work/q-small" "$work/x.gguf" --type q5_k
expect_fail 2 "missing type" "--type" -- "$bin" quantize "$work/q-small" "$work/x.gguf"
expect_fail 2 "OUT not .gguf" ".gguf" -- "$bin" quantize "$work/q-small" "$work/x.bin" --type q8_0
expect_fail 2 "OUT is IN" "input file" -- "$bin" quantize "$work/q-small-q8_0.gguf" "$work/q-small-q8_0.gguf" --type q8_0
expect_fail 1 "missing input" "no-such-model" -- "$bin" quantize "$work/no-such-model" "$work/x.gguf" --type q8_0
no_leftovers "missing input" "$work/x.gguf"
rm -rf "$work/q-notok"; cp -r "$work/q-small" "$work/q-notok"; rm "$work/q-notok/tokenizer.json"
expect_fail 1 "HF folder without tokenizer.json" "tokenizer.json" -- "$bin" quantize "$work/q-notok" "$work/x.gguf" --type q4_k
no_leftovers "no tokenizer" "$work/x.gguf"
# A NaN in the last tensor of the safetensors file: found after most of the output was written.
rm -rf "$work/q-nan"; cp -r "$work/q-small" "$work/q-nan"
printf '\300\177' | dd of="$work/q-nan/model.safetensors" bs=1 seek=$(($(stat -c %s "$work/q-nan/model.safetensors") - 2)) conv=notrunc status=none
expect_fail 1 "NaN weight" "NaN" -- "$bin" quantize "$work/q-nan" "$work/x.gguf" --type q4_k_m
no_leftovers "NaN weight" "$work/x.gguf"
"$py" "$here/gguf_types.py" "$work/q-small-q8_0.gguf" --set-type blk.1.attn_q.weight 7 "$work/q-q5_1.gguf"
expect_fail 1 "input type cinfer cannot read" "blk.1.attn_q.weight" "Q5_1" -- "$bin" quantize "$work/q-q5_1.gguf" "$work/x.gguf" --type q4_k
no_leftovers "Q5_1 input" "$work/x.gguf"

# Corrupt and truncated K-quant files fail to load with messages naming the
# file and the tensor (never a crash).
run_model() { "$bin" run "$1" -p "Hi" --max-tokens 1 --ctx-size 128; }
size=$(stat -c %s "$work/q-small-q4_k_m.gguf")
for cut in 5 4000 8000000 $((size / 2)) $((size - 1)); do
  head -c "$cut" "$work/q-small-q4_k_m.gguf" > "$work/q-cut.gguf"
  expect_fail 1 "q4_k_m cut at $cut bytes" "q-cut.gguf" -- run_model "$work/q-cut.gguf"
done
# 64-element rows (tiny, Q8_0) relabelled as Q4_K / Q6_K: not a multiple of 256.
"$bin" make-test-model "$work/q-tiny8.gguf" --format gguf --shape tiny --dtype q8_0 --tokenizer "$tok" >/dev/null
"$py" "$here/gguf_types.py" "$work/q-tiny8.gguf" --set-type blk.0.attn_q.weight 12 "$work/q-bad4.gguf"
expect_fail 1 "64-wide Q4_K" "blk.0.attn_q.weight" "256" -- run_model "$work/q-bad4.gguf"
"$py" "$here/gguf_types.py" "$work/q-tiny8.gguf" --set-type blk.1.ffn_down.weight 14 "$work/q-bad6.gguf"
expect_fail 1 "128-wide Q6_K" "blk.1.ffn_down.weight" "256" -- run_model "$work/q-bad6.gguf"
# The last matrix claims Q6_K (210 bytes per 256) over Q4_K data (144): it runs past the end of the file.
"$py" "$here/gguf_types.py" "$work/q-small-q4_k.gguf" --set-type blk.3.ffn_down.weight 14 "$work/q-grown.gguf"
expect_fail 1 "Q4_K data relabelled Q6_K" "blk.3.ffn_down.weight" "outside the file" -- run_model "$work/q-grown.gguf"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
