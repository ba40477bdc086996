#!/usr/bin/env bash
# The run command: set-up (idempotent), a release build, then `greeter serve` on the embedded
# defaults (port 8080, data in data/, API keys generated into data/api-keys.toml), or greeter
# with the given arguments. `scripts/run.sh --demo`: the same on a demo store (seeded once into
# data-demo/) with the face-api demo photos replayed as a camera.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --release --locked --quiet
if [ $# -eq 0 ]; then
  set -- serve
elif [ "$1" = "--demo" ]; then
  export GREETER_GALLERY__DATA_DIR="$root/data-demo"
  if [ ! -e "$GREETER_GALLERY__DATA_DIR/greeter.sqlite3" ]; then
    target/release/greeter demo seed
  fi
  set -- serve --replay .cache/face-api/package/demo
fi
exec target/release/greeter "$@"
