#!/usr/bin/env bash
# Runs the libFuzzer harnesses built in BUILD (make fuzz builds them there).
#   usage: run.sh BUILD SECONDS [HARNESS...]   (default: every harness)
# Each harness runs SECONDS with its seed corpus and regressions as extra
# corpora; new inputs go to its working corpus tests/fuzz/work/<name> (not
# committed, kept between sessions so the time adds up), crashes, leaks,
# timeouts and OOMs to tests/fuzz/crashes/<name>/ (turn each into a
# regression input: tests/fuzz/regressions/<name>/, see docs/TESTING.md).
# FUZZ_SKIP_REGRESSIONS=1 leaves the regression inputs out (while a known
# one still crashes). Every session is appended to tests/fuzz/work/sessions.tsv; the summary
# printed at the end gives the per-harness totals for docs/TESTING.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD SECONDS [HARNESS...]}
seconds=${2:?usage: run.sh BUILD SECONDS [HARNESS...]}
shift 2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(gguf safetensors st_index config tokenizer_json tokenizer template sse toolcall openai_request)

declare -A dict=([gguf]=gguf [safetensors]=json [st_index]=json [config]=json [tokenizer_json]=json
                 [template]=jinja [sse]=sse [toolcall]=toolcall [openai_request]=json)
declare -A max_len=([gguf]=65536 [safetensors]=65536 [st_index]=65536 [config]=16384 [tokenizer_json]=65536
                    [tokenizer]=4096 [template]=8192 [sse]=16384 [toolcall]=8192 [openai_request]=16384)

work=$here/work
mkdir -p "$work/logs"
sessions=$work/sessions.tsv
[ -f "$sessions" ] || printf 'date\tharness\tseconds\texecs\texecs_per_s\tcov\tft\tcorpus\tresult\n' >"$sessions"
status=0
for h in "${harnesses[@]}"; do
  bin=$build/tests/fuzz/fuzz_$h
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin not built (make fuzz builds it)" >&2
    status=1
    continue
  fi
  mkdir -p "$work/$h" "$here/crashes/$h"
  log=$work/logs/$h-$(date -u +%Y%m%dT%H%M%SZ).log
  args=(-max_total_time="$seconds" -max_len="${max_len[$h]}" -rss_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$here/crashes/$h/")
  [ -n "${dict[$h]:-}" ] && args+=(-dict="$here/dict/${dict[$h]}.dict")
  corpora=("$work/$h" "$here/corpus/$h")
  # A regression input that still crashes stops libFuzzer at start-up;
  # FUZZ_SKIP_REGRESSIONS=1 fuzzes without them until the fix is in.
  [ -d "$here/regressions/$h" ] && [ "${FUZZ_SKIP_REGRESSIONS:-0}" != 1 ] && corpora+=("$here/regressions/$h")
  echo "== fuzz_$h: ${seconds}s"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" "${args[@]}" "${corpora[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED(exit $rc)"
    status=1
    grep -E 'ERROR: |runtime error:|Test unit written|property violated' "$log" | head -5
    echo "   log: $log"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$h" "$seconds" "${execs:-?}" "${eps:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" >>"$sessions"
  echo "   execs ${execs:-?} (${eps:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}: $result"
done

echo "== totals over every session (tests/fuzz/work/sessions.tsv)"
awk -F'\t' 'NR > 1 { s[$2] += $3; e[$2] += $4; n[$2]++; c[$2] = $6; if ($9 != "ok") f[$2]++ }
            END { printf "%-16s %10s %14s %8s %9s %9s\n", "harness", "minutes", "execs", "cov", "sessions", "failures";
                  for (h in s) printf "%-16s %10.1f %14d %8s %9d %9d\n", h, s[h] / 60, e[h], c[h], n[h], f[h] }' "$sessions"
exit $status
