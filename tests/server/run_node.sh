#!/bin/sh
# Runs one node suite against `cinfer serve`; exit 77 = skipped (no node, or
# the client package the suite drives is not installed).
# usage: run_node.sh SCRIPT PACKAGE CINFER_BIN MODEL_DIR ROOT WORK_DIR
script=$1 pkg=$2 bin=$3 model=$4 root=$5 work=$6
command -v node >/dev/null 2>&1 || { echo "skipped: node not found"; exit 77; }
[ -z "$pkg" ] || [ -f "$root/node_modules/$pkg/package.json" ] || { echo "skipped: node_modules/$pkg missing (npm ci)"; exit 77; }
exec node "$script" "$bin" "$model" "$work"
