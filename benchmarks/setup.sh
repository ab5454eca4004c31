#!/usr/bin/env bash
# One-time (idempotent) setup for the spdl benchmarks:
#   1. apt packages: libturbojpeg0 (PyTurboJPEG), FFmpeg libraries + headers
#      (to build spdl and for the reference spdl-io wheel), dpkg/apt tools
#      (data.py unpacks wallpaper .debs);
#   2. the benchmark venv (repo .venv if present, else benchmarks/.venv-bench)
#      with benchmarks/requirements.txt and `pip install -e <repo>`;
#   3. the reference venv ~/.cache/spdl-bench/venv-spdl-ref with spdl-io;
#   4. the image sets (benchmarks/data.py);
#   5. with SPDL_BENCH_TRAIN=1 (run.sh --train sets it): the peers of the
#      training-batch benchmark, benchmarks/requirements-train.txt (DALI,
#      torch, torchvision), into the benchmark venv.
# Re-running skips whatever is already in place.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"

log() { printf '[setup] %s\n' "$*"; }

# ---------------------------------------------------------------- apt
APT_PKGS=(libturbojpeg0 dpkg apt pkg-config
          libavcodec-dev libavformat-dev libavfilter-dev libavutil-dev
          libswscale-dev libswresample-dev libavdevice-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then SUDO=sudo; else
            log "missing apt packages: ${missing[*]} (not root, no sudo): install them yourself"
            exit 1
        fi
    fi
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# apt-get download (data.py) needs package lists.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
    log "apt-get update (package lists are empty)"
    ${SUDO:-} apt-get update -qq || true
fi

# ---------------------------------------------------------------- bench venv
if [ ! -x "$BENCH_PY" ]; then
    log "creating $BENCH_VENV"
    "$PYTHON" -m venv "$BENCH_VENV"
fi
"$BENCH_PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
log "installing peer libraries into $BENCH_VENV"
"$BENCH_PY" -m pip install -q -r "$BENCH_DIR/requirements.txt"

if [ -f "$REPO_DIR/setup.py" ] || [ -f "$REPO_DIR/pyproject.toml" ]; then
    log "pip install -e $REPO_DIR (spdl, 'ours')"
    if ! "$BENCH_PY" -m pip install -q -e "$REPO_DIR"; then
        log "WARNING: pip install -e $REPO_DIR failed; 'ours' methods will be skipped"
        [ "${SPDL_BENCH_REQUIRE_OURS:-0}" = "1" ] && exit 1
    fi
else
    log "WARNING: no setup.py/pyproject.toml in $REPO_DIR; 'ours' methods will be skipped"
fi

if [ "${SPDL_BENCH_TRAIN:-0}" = "1" ]; then
    log "installing the training benchmark's peers (DALI, torch, torchvision) into $BENCH_VENV"
    "$BENCH_PY" -m pip install -q -r "$BENCH_DIR/requirements-train.txt"
fi

# ---------------------------------------------------------------- reference venv
if [ ! -x "$REF_PY" ]; then
    log "creating $REF_VENV"
    mkdir -p "$ROOT"
    "$PYTHON" -m venv "$REF_VENV"
fi
if ! "$REF_PY" - "$REF_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import numpy  # noqa: F401
sys.exit(0 if version("spdl-io") == sys.argv[1] else 1)
PY
then
    log "installing spdl-io==$REF_VERSION numpy into $REF_VENV"
    "$REF_PY" -m pip install -q "spdl-io==$REF_VERSION" numpy
fi
"$REF_PY" -c 'import spdl.io; spdl.io.get_video_filter_desc(scale_width=8, scale_height=8)' \
    || { log "reference spdl-io does not import (FFmpeg libraries missing?)"; exit 1; }

# ---------------------------------------------------------------- data
log "building image sets under $ROOT"
"$BENCH_PY" "$BENCH_DIR/data.py" --root "$ROOT"
log "done (bench python: $BENCH_PY, reference python: $REF_PY)"
