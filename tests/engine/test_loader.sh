#!/bin/sh
# test_loader.sh BIN WORKDIR TOKENIZER_DIR — checkpoint loading as users meet
# it: tied models with and without a stored lm_head, untied models, shards,
# and broken or lying checkpoints, each of which must fail with a message
# naming the file and the tensor (never a crash: exit status 1, not a signal).
set -u
bin=$1 work=$2 tok=$3
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
mk() { out=$1; shift; rm -rf "$out"; "$bin" make-test-model "$out" --shape tiny --dtype bf16 --seed 21 --tokenizer "$tok" "$@" >/dev/null; }
greedy() { "$bin" run "$1" -p "Hi there" --max-tokens 8 --temperature 0 --json --ctx-size 256 2>"$work/err.txt"; }
# expect_error DIR WHAT PATTERN...: loading fails with status 1 and stderr matches every pattern
expect_error() {
  dir=$1 what=$2; shift 2
  "$bin" run "$dir" -p "Hi" --max-tokens 1 --ctx-size 256 >/dev/null 2>"$work/err.txt"
  rc=$?
  if [ $rc -ne 1 ]; then bad "$what: exit status $rc (want 1): $(cat "$work/err.txt")"; return; fi
  for p in "$@"; do
    if ! grep -q -- "$p" "$work/err.txt"; then bad "$what: message lacks '$p': $(cat "$work/err.txt")"; return; fi
  done
  ok
}
fresh_copy() { rm -rf "$2"; cp -r "$1" "$2"; }
edit_config() { # edit_config DIR PYTHON_EXPR_ON_c
  /usr/bin/python3 -c "import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); $2; json.dump(c, open(p,'w'), indent=2)" "$1"
}

# Tied embeddings: the same weights with and without a stored lm_head give the same tokens.
mk "$work/tied"
mk "$work/tied-nohead" --no-lm-head
a=$(greedy "$work/tied") ; b=$(greedy "$work/tied-nohead")
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "tied with and without lm_head differ: $a / $b"; fi
# Sharded checkpoints give the same tokens as one file.
mk "$work/sharded" --shards 3
c=$(greedy "$work/sharded")
if [ "$a" = "$c" ]; then ok; else bad "3 shards differ from one file"; fi
# Untied models load and run.
mk "$work/untied" --untied
if greedy "$work/untied" >/dev/null; then ok; else bad "untied model: $(cat "$work/err.txt")"; fi

# Lying configs.
fresh_copy "$work/tied" "$work/more-layers"; edit_config "$work/more-layers" "c['num_hidden_layers']=3"
expect_error "$work/more-layers" "config with an extra layer" "model.layers.2." "missing"
fresh_copy "$work/tied" "$work/wrong-width"; edit_config "$work/wrong-width" "c['intermediate_size']=256"
expect_error "$work/wrong-width" "config with a wrong width" "mlp.gate_proj.weight" "shape"
fresh_copy "$work/tied-nohead" "$work/untied-nohead"; edit_config "$work/untied-nohead" "c['tie_word_embeddings']=False"
expect_error "$work/untied-nohead" "untied config without lm_head" "lm_head.weight"
fresh_copy "$work/tied" "$work/bad-type"; edit_config "$work/bad-type" "c['model_type']='mamba'"
expect_error "$work/bad-type" "unsupported model_type" "mamba"
fresh_copy "$work/tied" "$work/negative"; edit_config "$work/negative" "c['num_attention_heads']=-4"
expect_error "$work/negative" "negative head count" "num_attention_heads"
fresh_copy "$work/tied" "$work/garbage"; printf '{"hidden_size": 64,' > "$work/garbage/config.json"
expect_error "$work/garbage" "truncated config.json" "config.json"
fresh_copy "$work/tied" "$work/noconfig"; rm "$work/noconfig/config.json"
expect_error "$work/noconfig" "missing config.json" "config.json"

# Broken weight files.
fresh_copy "$work/tied" "$work/truncated"
size=$(stat -c %s "$work/truncated/model.safetensors")
truncate -s $((size / 2)) "$work/truncated/model.safetensors"
expect_error "$work/truncated" "truncated safetensors" "model.safetensors"
fresh_copy "$work/sharded" "$work/lost-shard"; rm "$work/lost-shard/model-00002-of-00003.safetensors"
expect_error "$work/lost-shard" "missing shard" "model-00002-of-00003.safetensors"
fresh_copy "$work/tied" "$work/zeroed-header"
printf '\377\377\377\377\377\377\377\177' | dd of="$work/zeroed-header/model.safetensors" conv=notrunc status=none
expect_error "$work/zeroed-header" "huge header length" "model.safetensors"
"$bin" make-test-model "$work/t.gguf" --format gguf --shape tiny --dtype q8_0 --seed 21 --tokenizer "$tok" >/dev/null
size=$(stat -c %s "$work/t.gguf")
for cut in 3 100 5000 $((size / 2)) $((size - 1)); do
  head -c "$cut" "$work/t.gguf" > "$work/cut.gguf"
  expect_error "$work/cut.gguf" "GGUF cut at $cut bytes" "cut.gguf"
done
# The chat template inside the GGUF renders exactly as the one in the HF folder.
printf '%s' '{"messages":[{"role":"system","content":"S"},{"role":"user","content":"hi"}],"add_generation_prompt":true,"enable_thinking":false}' > "$work/ctx.json"
"$bin" template --model "$work/tied" --context "$work/ctx.json" > "$work/tpl-hf.txt"
"$bin" template --model "$work/t.gguf" --context "$work/ctx.json" > "$work/tpl-gguf.txt"
if [ -s "$work/tpl-hf.txt" ] && cmp -s "$work/tpl-hf.txt" "$work/tpl-gguf.txt"; then ok; else bad "GGUF chat template renders differently"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
