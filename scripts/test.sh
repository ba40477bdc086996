#!/usr/bin/env bash
# The test command: set-up (idempotent), then every test against the real models.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo test --locked --no-fail-fast "$@"
