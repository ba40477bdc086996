#!/usr/bin/env bash
# Everything greeter needs on a fresh Debian machine, idempotently (a second run only checks):
#   apt packages (cmake, OpenBLAS, LAPACK, venv, clang for bindgen),
#   .venv with the pinned onnxruntime / onnx / numpy (tools/requirements.txt),
#   .cache/onnxruntime/libonnxruntime.so.1.31.1 (from the onnxruntime wheel),
#   .cache/face-api/package (npm pack of @vladmandic/face-api, sha512 checked),
#   models/*.onnx converted from it and checked against models/models.toml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { echo "setup: $*" >&2; }

# --- Debian packages ------------------------------------------------------------------------
packages=(cmake libopenblas-dev liblapack-dev nasm python3-venv libclang-dev pkg-config nodejs npm)
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

# --- face-api package (weights, demo photos, sources) ---------------------------------------
field() { sed -n "s/^$1 = \"\(.*\)\"/\1/p" models/models.toml | head -n1; }
package=$(field package)
version=$(field version)
integrity=$(field integrity)
tarball=".cache/face-api/$(echo "${package#@}" | tr / -)-$version.tgz"
if [ ! -f .cache/face-api/package/.verified ]; then
  mkdir -p .cache/face-api
  if [ ! -f "$tarball" ]; then
    say "fetching $package@$version"
    (cd .cache/face-api && npm pack --silent "$package@$version" >/dev/null)
  fi
  actual=$(python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
  if [ "$actual" != "$integrity" ]; then
    rm -f "$tarball"
    say "integrity mismatch for $tarball: got $actual, expected $integrity"
    exit 1
  fi
  rm -rf .cache/face-api/package
  tar -xzf "$tarball" -C .cache/face-api
  touch .cache/face-api/package/.verified
fi

# --- ONNX models ------------------------------------------------------------------------------
.venv/bin/python tools/convert_faceapi.py .cache/face-api/package models
say "ready (models in models/, onnxruntime in .cache/onnxruntime/)"
