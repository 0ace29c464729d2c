#!/usr/bin/env bash
# Installs what cinfer needs to build and test, only when it is missing:
# Debian packages (apt-get) and the npm reference implementations (npm ci
# from the committed package-lock.json). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gcc make cmake pkg-config libc6-dev
  libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libpcre2-dev libutf8proc-dev libedit-dev
  python3 python3-jinja2
  nginx openssl
  chromium
  # make fuzz (libFuzzer) and the clang sanitizer runtimes; strace for the
  # repo_self_contained_trace test (what files a test touches).
  clang libclang-rt-14-dev strace
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root; install these packages first: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm references (tests and benchmarks only). Re-run npm ci when the lock file changed.
stamp=node_modules/.cinfer-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "install-deps: npm ci"
  # Optional platform builds of node-llama-cpp (CUDA, Vulkan, other OSes) are
  # skipped; the CPU build for linux-x64 is a direct dependency.
  npm ci --omit=optional --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
