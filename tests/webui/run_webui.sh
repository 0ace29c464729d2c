#!/bin/sh
# Runs the browser test of the web chat (webui_test.mjs); exit 77 = skipped.
# usage: run_webui.sh CINFER_BIN MODEL_DIR ROOT WORK_DIR
bin=$1 model=$2 root=$3 work=$4
chromium=${CINFER_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "skipped: Chromium not found at $chromium (apt-get install chromium, or set CINFER_CHROMIUM)"; exit 77; }
command -v node >/dev/null 2>&1 || { echo "skipped: node not found"; exit 77; }
[ -f "$root/node_modules/puppeteer-core/package.json" ] || { echo "skipped: node_modules/puppeteer-core missing (npm ci)"; exit 77; }
exec node "$root/tests/webui/webui_test.mjs" "$bin" "$model" "$work" "$chromium"
