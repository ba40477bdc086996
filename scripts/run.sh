#!/usr/bin/env bash
# The run command: set-up (idempotent), a release build, then greeter with the given arguments
# (default: find and describe the faces in the face-api demo photos).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --release --locked --quiet
if [ $# -eq 0 ]; then
  set -- detect .cache/face-api/package/demo/sample*.jpg
fi
exec target/release/greeter "$@"
