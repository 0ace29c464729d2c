#!/bin/sh
# test_moe.sh BIN TEST_MOE FORWARD_DUMP WORKDIR TOKENIZER_DIR — Qwen3 MoE
# checkpoints end to end: the router and batch invariance (test_moe), the HF
# folder and the GGUF of the same F32 weights giving bitwise the same logits,
# every GGUF weight type loading and generating, and lying or broken
# checkpoints failing with a message naming the key or the tensor (exit
# status 1, never a signal). llama.cpp parity is in llama_parity.sh.
set -u
bin=$1 test_moe=$2 dump=$3 work=$4 tok=$5
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
mk() { out=$1; shift; rm -rf "$out"; "$bin" make-test-model "$out" --shape tiny-moe --seed 31 --tokenizer "$tok" "$@" >/dev/null || bad "make-test-model $out $*"; }
expect_error() { # expect_error MODEL WHAT PATTERN...
  dir=$1 what=$2; shift 2
  "$bin" run "$dir" -p "Hi" --max-tokens 1 --ctx-size 256 >/dev/null 2>"$work/moe-err.txt"
  rc=$?
  if [ $rc -ne 1 ]; then bad "$what: exit status $rc (want 1): $(cat "$work/moe-err.txt")"; return; fi
  for p in "$@"; do
    if ! grep -q -- "$p" "$work/moe-err.txt"; then bad "$what: message lacks '$p': $(cat "$work/moe-err.txt")"; return; fi
  done
  ok
}
fresh_copy() { rm -rf "$2"; cp -r "$1" "$2"; }
edit_config() { # edit_config DIR PYTHON_EXPR_ON_c
  /usr/bin/python3 -c "import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); $2; json.dump(c, open(p,'w'), indent=2)" "$1"
}

mk "$work/moe-f32-hf" --format hf --dtype f32 --shards 2
mk "$work/moe-f32-one" --format hf --dtype f32
for t in f32 f16 bf16 q8_0; do mk "$work/moe-$t.gguf" --format gguf --dtype $t; done

# Router reference and batch invariance, on both layouts.
for m in "$work/moe-f32-hf" "$work/moe-f32.gguf" "$work/moe-q8_0.gguf"; do
  if "$test_moe" "$m"; then ok; else bad "test_moe $m"; fi
done

# Same weights, two layouts: identical logits; and chunked prefill == one call.
ids='[785,3974,13876,38835,34208,916,279,15678,5562,13,220,108386,3837,99489,6313,151645,198,151644]'
"$dump" "$work/moe-f32-hf" "$ids" --bin > "$work/moe-hf.logits"
"$dump" "$work/moe-f32.gguf" "$ids" --bin > "$work/moe-gguf.logits"
"$dump" "$work/moe-f32.gguf" "$ids" --bin --chunk 4 > "$work/moe-chunk.logits"
if [ -s "$work/moe-hf.logits" ] && cmp -s "$work/moe-hf.logits" "$work/moe-gguf.logits"; then ok; else bad "HF and GGUF F32 logits differ"; fi
if cmp -s "$work/moe-gguf.logits" "$work/moe-chunk.logits"; then ok; else bad "chunked prefill logits differ"; fi

# Every weight type loads and generates.
for t in f16 bf16 q8_0; do
  out=$("$bin" run "$work/moe-$t.gguf" --raw -p "Hello" --max-tokens 4 --temperature 0 --json 2>"$work/moe-err.txt")
  case "$out" in *'"tokens"'*) ok ;; *) bad "run $t: $(cat "$work/moe-err.txt")" ;; esac
done

# Lying configs.
src="$work/moe-f32-one"
fresh_copy "$src" "$work/moe-topk"; edit_config "$work/moe-topk" "c['num_experts_per_tok']=9"
expect_error "$work/moe-topk" "top-k above the expert count" "num_experts_per_tok"
fresh_copy "$src" "$work/moe-experts"; edit_config "$work/moe-experts" "c['num_experts']=16"
expect_error "$work/moe-experts" "more experts than stored" "model.layers.0.mlp.gate.weight" "shape"
fresh_copy "$src" "$work/moe-width"; edit_config "$work/moe-width" "c['moe_intermediate_size']=64"
expect_error "$work/moe-width" "wrong expert width" "model.layers.0.mlp.experts.0.gate_proj.weight" "shape"
fresh_copy "$src" "$work/moe-dense-layer"; edit_config "$work/moe-dense-layer" "c['mlp_only_layers']=[1]"
expect_error "$work/moe-dense-layer" "layer claimed dense" "model.layers.1.mlp.gate_proj.weight" "missing"
fresh_copy "$src" "$work/moe-bad-layer"; edit_config "$work/moe-bad-layer" "c['mlp_only_layers']=[7]"
expect_error "$work/moe-bad-layer" "mlp_only_layers past the last layer" "mlp_only_layers"
fresh_copy "$src" "$work/moe-step"; edit_config "$work/moe-step" "c['decoder_sparse_step']=0"
expect_error "$work/moe-step" "decoder_sparse_step 0" "decoder_sparse_step"
fresh_copy "$src" "$work/moe-zero"; edit_config "$work/moe-zero" "c['num_experts_per_tok']=0"
expect_error "$work/moe-zero" "top-k 0" "num_experts_per_tok"

# A missing expert tensor: drop one entry from the safetensors header (padded
# to the same length, so the other offsets stay valid).
fresh_copy "$src" "$work/moe-lost"
/usr/bin/python3 - "$work/moe-lost/model.safetensors" <<'EOF'
import json, struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
del h['model.layers.1.mlp.experts.5.up_proj.weight']
t = json.dumps(h, separators=(',', ':')).encode().ljust(n, b' ')
assert len(t) == n
b[8:8 + n] = t
open(p, 'wb').write(b)
EOF
expect_error "$work/moe-lost" "missing expert tensor" "model.layers.1.mlp.experts.5.up_proj.weight" "missing"

# GGUF metadata that disagrees with the tensors (u32 values patched in place).
patch_u32() { # patch_u32 IN OUT KEY VALUE
  /usr/bin/python3 - "$@" <<'EOF'
import struct, sys
src, dst, key, val = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
b = bytearray(open(src, 'rb').read())
i = b.index(struct.pack('<Q', len(key)) + key) + 8 + len(key)
assert struct.unpack('<I', b[i:i + 4])[0] == 4  # GGUF_TYPE_UINT32
b[i + 4:i + 8] = struct.pack('<I', val)
open(dst, 'wb').write(b)
EOF
}
patch_u32 "$work/moe-f32.gguf" "$work/moe-topk.gguf" qwen3moe.expert_used_count 9
expect_error "$work/moe-topk.gguf" "GGUF top-k above the expert count" "num_experts_per_tok" "moe-topk.gguf"
patch_u32 "$work/moe-f32.gguf" "$work/moe-count.gguf" qwen3moe.expert_count 4
expect_error "$work/moe-count.gguf" "GGUF expert count below the stacks" "blk.0.ffn_gate_inp.weight" "shape"
patch_u32 "$work/moe-f32.gguf" "$work/moe-ff.gguf" qwen3moe.expert_feed_forward_length 64
expect_error "$work/moe-ff.gguf" "GGUF expert width" "blk.0.ffn_gate_exps.weight" "shape"
patch_u32 "$work/moe-f32.gguf" "$work/moe-none.gguf" qwen3moe.expert_count 0
expect_error "$work/moe-none.gguf" "GGUF without experts" "expert_count"

# `cinfer quantize` of MoE checkpoints: llama.cpp's type rules read back by
# an independent GGUF parser; the HF folder and the GGUF of the same weights
# quantize to the same tensors (same logits); the 8-expert special case.
check_moe_types() { # check_moe_types FILE SCHEME N_LAYERS N_EXPERTS
  /usr/bin/python3 "$(dirname "$0")/gguf_types.py" "$1" > "$work/moe-types.txt" || { bad "$1: unreadable GGUF"; return; }
  /usr/bin/python3 - "$work/moe-types.txt" "$2" "$3" "$4" <<'EOF' > "$work/moe-types-bad.txt"
import sys
lines, scheme, n, E = open(sys.argv[1]).read().split("\n"), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
F32, Q4_0, Q8_0, Q4_K, Q6_K = 0, 2, 8, 12, 14
base = {"q8_0": Q8_0, "q4_0": Q4_0, "q4_k": Q4_K, "q6_k": Q6_K, "q4_k_m": Q4_K}[scheme]
more = lambda i: i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2
seen_exps = 0
for line in filter(None, lines):
    name, t, dims = line.split()
    t, ne = int(t), [int(d) for d in dims.split("x")]
    if "_exps" in name: seen_exps += 1
    if len(ne) == 1 or "ffn_gate_inp" in name: want = F32
    elif name == "token_embd.weight": want = Q8_0 if scheme == "q8_0" else Q6_K
    elif E == 8 and ("attn_k." in name or "attn_v." in name): want = Q8_0
    elif E == 8 and "attn_output" in name and scheme in ("q4_k", "q4_k_m"): want = Q6_K
    elif scheme == "q4_k_m" and ("attn_v" in name or "ffn_down" in name) and more(int(name.split(".")[1])): want = Q6_K
    else: want = base
    if want in (Q4_K, Q6_K) and ne[0] % 256: want = Q8_0
    if t != want: print(f"{name}: type {t}, want {want}")
if seen_exps != 3 * n: print(f"{seen_exps} expert stacks, want {3 * n}")
EOF
  if [ -s "$work/moe-types-bad.txt" ]; then bad "$1 ($2): $(head -3 "$work/moe-types-bad.txt")"; else ok; fi
}
mk "$work/moe-small-hf" --format hf --shape small-moe --dtype bf16 --shards 2
mk "$work/moe-small-bf16.gguf" --format gguf --shape small-moe --dtype bf16
"$bin" quantize "$work/moe-small-hf" "$work/moe-small-q4km.gguf" --type q4_k_m --quiet || bad "quantize small-moe"
"$bin" quantize "$work/moe-small-bf16.gguf" "$work/moe-small-q4km-g.gguf" --type q4_k_m --quiet || bad "quantize small-moe GGUF"
check_moe_types "$work/moe-small-q4km.gguf" q4_k_m 4 16
check_moe_types "$work/moe-small-q4km-g.gguf" q4_k_m 4 16
"$dump" "$work/moe-small-q4km.gguf" "$ids" --bin > "$work/moe-q1.logits"
"$dump" "$work/moe-small-q4km-g.gguf" "$ids" --bin > "$work/moe-q2.logits"
if [ -s "$work/moe-q1.logits" ] && cmp -s "$work/moe-q1.logits" "$work/moe-q2.logits"; then ok; else bad "quantized from HF and from GGUF differ"; fi
mk "$work/moe-tiny-bf16-hf" --format hf --dtype bf16
for t in q4_0 q4_k_m q8_0; do
  "$bin" quantize "$work/moe-tiny-bf16-hf" "$work/moe-tiny-$t.gguf" --type $t --quiet || bad "quantize tiny-moe $t"
  check_moe_types "$work/moe-tiny-$t.gguf" $t 2 8
done
fresh_copy "$work/moe-tiny-bf16-hf" "$work/moe-q-dense"; edit_config "$work/moe-q-dense" "c['mlp_only_layers']=[0]"
rm -f "$work/moe-q-dense.gguf"
"$bin" quantize "$work/moe-q-dense" "$work/moe-q-dense.gguf" --type q8_0 --quiet 2>"$work/moe-err.txt"
if [ $? -eq 1 ] && grep -q "dense MLP" "$work/moe-err.txt" && [ ! -e "$work/moe-q-dense.gguf" ]; then ok; else bad "quantize of a dense layer in qwen3moe: $(cat "$work/moe-err.txt")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
