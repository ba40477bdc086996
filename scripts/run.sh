#!/usr/bin/env bash
# The run command: set-up (idempotent), a release build, then `greeter serve` on the embedded
# defaults (port 8080, data in data/, API keys generated into data/api-keys.toml), or greeter
# with the given arguments.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --release --locked --quiet
if [ $# -eq 0 ]; then
  set -- serve
fi
exec target/release/greeter "$@"
