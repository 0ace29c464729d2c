#!/usr/bin/env bash
# test_cli.sh — the `cinfer tokenize` / `cinfer detokenize` contracts:
# exact output bytes and exit codes (0 ok, 1 runtime error, 2 usage error).
# usage: test_cli.sh CINFER_BINARY QWEN3_MODEL_DIR WORK_DIR
set -uo pipefail
bin=$1 model=$2 work=$3
if [ ! -f "$model/tokenizer.json" ]; then
  echo "SKIP: $model/tokenizer.json is missing (run 'bash scripts/install-deps.sh')"
  exit 77
fi
mkdir -p "$work"
passed=0 failed=0
check() { # check NAME EXPECTED_RC EXPECTED_STDOUT_FILE -- command...
  local name=$1 want_rc=$2 want_out=$3; shift 4
  "$@" >"$work/out" 2>"$work/err"; local rc=$?
  if [ "$rc" = "$want_rc" ] && { [ "$want_out" = "-" ] || cmp -s "$work/out" "$want_out"; }; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name (rc $rc, want $want_rc)"; echo "  stdout: $(head -c 300 "$work/out")"; echo "  stderr: $(head -c 300 "$work/err")"
  fi
}
want() { printf "$1" >"$work/$2"; echo "$work/$2"; }

check "hello world" 0 "$(want '[9707,1879]\n' w1)" -- "$bin" tokenize --tokenizer "$model" "Hello world"
check "tokenizer.json path" 0 "$(want '[9707,1879]\n' w2)" -- "$bin" tokenize --tokenizer "$model/tokenizer.json" "Hello world"
check "special matched" 0 "$(want '[151645]\n' w3)" -- "$bin" tokenize --tokenizer "$model" "<|im_end|>"
# --no-special: "<|im_end|>" is text; the same ids as the text without the
# special-token matcher, which never contain 151645.
"$bin" tokenize --tokenizer "$model" --no-special "<|im_end|>" >"$work/ns" 2>/dev/null
if grep -q 151645 "$work/ns" || ! grep -q '^\[[0-9,]*\]$' "$work/ns"; then failed=$((failed + 1)); echo "FAIL: --no-special: $(cat "$work/ns")"; else passed=$((passed + 1)); fi
check "empty text" 0 "$(want '[]\n' w4)" -- "$bin" tokenize --tokenizer "$model" ""
printf 'Hello world' >"$work/in.txt"
check "--file" 0 "$(want '[9707,1879]\n' w5)" -- "$bin" tokenize --tokenizer "$model" --file "$work/in.txt"
check "detokenize" 0 "$(want 'Hello world' w6)" -- "$bin" detokenize --tokenizer "$model" "[9707,1879]"
check "detokenize special" 0 "$(want 'Hello world<|im_end|>' w7)" -- "$bin" detokenize --tokenizer "$model" "[9707,1879,151645]"
check "detokenize --skip-special" 0 "$(want 'Hello world' w8)" -- "$bin" detokenize --tokenizer "$model" --skip-special "[9707,1879,151645]"
# the id of <think> as the tokenizer gives it (a one-token text)
think_id=$("$bin" tokenize --tokenizer "$model" "<think>" | tr -d '[]\n')
printf '[%s, 9707]' "$think_id" >"$work/ids.json"
check "detokenize --file" 0 "$(want '<think>Hello' w9)" -- "$bin" detokenize --tokenizer "$model" --file "$work/ids.json"
check "detokenize empty" 0 "$(want '' w10)" -- "$bin" detokenize --tokenizer "$model" "[]"
check "tokenize --help" 0 - -- "$bin" tokenize --help
check "detokenize --help" 0 - -- "$bin" detokenize --help
check "no --tokenizer" 2 - -- "$bin" tokenize "Hello"
check "no input" 2 - -- "$bin" tokenize --tokenizer "$model"
check "text and --file" 2 - -- "$bin" tokenize --tokenizer "$model" --file "$work/in.txt" "Hello"
check "unknown option" 2 - -- "$bin" tokenize --tokenizer "$model" --bogus "Hello"
check "missing tokenizer" 1 - -- "$bin" tokenize --tokenizer /nonexistent "Hello"
check "missing file" 1 - -- "$bin" tokenize --tokenizer "$model" --file /nonexistent
check "bad ids json" 1 - -- "$bin" detokenize --tokenizer "$model" "[1,"
check "negative id" 1 - -- "$bin" detokenize --tokenizer "$model" "[-1]"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
