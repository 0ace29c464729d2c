#!/bin/sh
# test_cli.sh BIN WORKDIR TOKENIZER_DIR CLI_SRC — contracts of the `cinfer`
# program that no other suite covers:
#  - layering: src/cli includes cinfer.h and its own headers only, plus the
#    one documented exception (cmd_serve.c: server/server_internal.h);
#  - serve: a KV cache too small for one sequence fails with exit 1 and the
#    hint chosen by the error code; the server limits' options validate;
#  - bench: --json carries the options it ran with and sane rates.
set -u
bin=$1 work=$2 tok=$3 src=$4
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# --- layering
extra=$(grep -H '^#include "' "$src"/*.c "$src"/*.h |
        grep -v -e '"commands.h"' -e '"gen_args.h"' -e '"cinfer.h"')
if [ "$extra" = "$src/cmd_serve.c:#include \"server/server_internal.h\" /* the documented exception, see above */" ]; then ok
else bad "src/cli includes beyond cinfer.h and the serve exception: $extra"; fi

# --- serve
rm -rf "$work/tiny"
"$bin" make-test-model "$work/tiny" --tokenizer "$tok" >/dev/null || { echo "FAIL: make-test-model"; exit 1; }
# 0.001 GiB holds 131 blocks of 16 positions of the tiny model (8 KiB each): fewer than 32768 positions need
"$bin" serve "$work/tiny" --port 0 --kv-cache-memory 0.001 2>"$work/err.txt"; rc=$?
if [ $rc = 1 ] && grep -q -- "give a larger --kv-cache-memory or a smaller --max-model-len" "$work/err.txt"; then ok
else bad "serve with a small KV cache: rc $rc, $(cat "$work/err.txt")"; fi
for args in "--max-body-mb 0" "--max-waiting -1" "--max-connections 0" "--max-connections-per-ip x" \
            "--shutdown-timeout -1" "--shutdown-timeout" "--port 65536"; do
  # shellcheck disable=SC2086
  "$bin" serve "$work/tiny" $args 2>"$work/err.txt"; rc=$?
  if [ $rc = 2 ] && grep -q "see 'cinfer serve --help'" "$work/err.txt"; then ok; else bad "serve $args: rc $rc"; fi
done

# --- bench
if out=$("$bin" bench "$work/tiny" -p 8 -n 4 -r 1 -b 2 --json 2>"$work/err.txt") &&
   printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert (r["n_prompt"], r["n_gen"], r["batch"], r["reps"]) == (8, 4, 2, 1), r
for t in ("pp", "tg"):
    assert 0 < r[t + "_min"] <= r[t + "_tps"] <= r[t + "_max"], r
'; then ok; else bad "bench --json: $out $(cat "$work/err.txt")"; fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
