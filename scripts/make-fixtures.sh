#!/usr/bin/env bash
# Regenerates tests/fixtures/faceapi/ and faceres/ by running face-api.js and TF.js (wasm backend, offline)
# on the package's demo photos. Needs scripts/setup.sh first; installs the reference script's
# npm dependencies (tools/reference/package-lock.json) on first use.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
(cd tools/reference && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
rm -rf tests/fixtures/faceapi
node tools/reference/faceapi_reference.js .cache/face-api/package tests/fixtures/faceapi
# faceres: TF.js running the graph model on chips cut around the faces found above
rm -rf tests/fixtures/faceres
node tools/reference/faceres_reference.js .cache/human-models/package/models .cache/face-api/package tests/fixtures/faceres
