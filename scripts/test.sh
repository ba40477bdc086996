#!/usr/bin/env bash
# The test command: set-up (idempotent), the browser-test tools, then every test against the
# real models.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
# the browser tests: Debian's chromium, driven by playwright-core (no browser download), and
# CJK fonts so the screenshots show the Chinese greetings rather than boxes
missing=()
for package in chromium fonts-noto-cjk; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi
cargo test --locked --no-fail-fast "$@"
