#!/bin/sh
# Runs a Node test script, or skips (77) with the reason when node or the
# tokenizer files it needs are missing. usage: run_node.sh SCRIPT CINFER TOKDIR WORK [CASE...]
command -v node >/dev/null 2>&1 || { echo "skipped: node is not installed"; exit 77; }
[ -f "$3/tokenizer.json" ] || { echo "skipped: $3/tokenizer.json missing (make test installs node_modules)"; exit 77; }
rm -rf "$4" && mkdir -p "$4" || exit 1
exec node "$@"
