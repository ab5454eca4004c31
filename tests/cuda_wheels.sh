#!/usr/bin/env bash
# The CUDA loader against the real CUDA 13 and CUDA 12 wheels, on a machine without a GPU.
#
#   bash tests/cuda_wheels.sh            prepare (cached) the two virtualenvs, then run the tests
#   bash tests/cuda_wheels.sh --prepare  only prepare them
#
# Two virtualenvs, made from the same Python as the one spdl.io is built for, hold the NVIDIA
# wheels that `pip install pixelbatch[cuda13]` / `[cuda12]` install:
#   venv-cu13-pyXY: nvidia-cuda-runtime, nvidia-nvjpeg, nvidia-npp (13.x; npp is ~154 MB)
#   venv-cu12-pyXY: nvidia-cuda-runtime-cu12, nvidia-nvjpeg-cu12, nvidia-npp-cu12 (npp ~282 MB)
# plus what the tests need (numpy, pytest, pytest-asyncio, pillow, cython, setuptools). They live
# in $SPDL_CUDA_WHEELS_CACHE (default /var/cache/spdl-cudawheels) and are made again only when
# the list below changes, so a CI machine that keeps that folder pays for the download once.
# spdl.io is not installed into them: the tests put the folder it is imported from on PYTHONPATH.
#
# Then it runs, with $SPDL_PYTHON (default .venv/bin/python, the Python spdl.io is built for):
#   1. tests/test_cuda_wheels.py: each venv's loader picks its own set, cuda_info() reports
#      the paths inside the venv and versions 13.x / 12.x, every GPU entry point says
#      "no CUDA device" (no NVIDIA driver here), never "library missing";
#   2. tests/test_cuda.py inside each venv: the constants, struct layouts and NPP function
#      prototypes against that set's headers (nvidia/cu13/include, nvidia/<name>/include), the
#      symbols of every library the loader opens (libnvjpeg, libnppc, libnppig, libnppicc,
#      libnppidei).
# Environment: SPDL_PYTHON, SPDL_CUDA_WHEELS_CACHE, and pip's own (PIP_FIND_LINKS,
# PIP_INDEX_URL, ...) for a local wheel folder or mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[cuda-wheels]\033[0m %s\n' "$*" >&2; }

SPDL_PYTHON=${SPDL_PYTHON:-.venv/bin/python}
CACHE=${SPDL_CUDA_WHEELS_CACHE:-/var/cache/spdl-cudawheels}
export SPDL_CUDA_WHEELS_CACHE=$CACHE

[ -x "$SPDL_PYTHON" ] || command -v "$SPDL_PYTHON" >/dev/null || {
    say "no Python at $SPDL_PYTHON (set SPDL_PYTHON to the Python spdl.io is built for)"; exit 2; }
# The interpreter the venvs are made from, and the folder spdl is imported from.
read -r BASE_PY PYTAG SPDL_ROOT < <("$SPDL_PYTHON" -c '
import os, sys, spdl
print(getattr(sys, "_base_executable", sys.executable), "%d%d" % sys.version_info[:2],
      os.path.dirname(os.path.dirname(os.path.abspath(spdl.__file__))))')

TEST_DEPS=(numpy pytest pytest-asyncio pillow cython setuptools)
declare -A WHEELS=(
    [13]="nvidia-cuda-runtime>=13,<14 nvidia-nvjpeg>=13,<14 nvidia-npp>=13,<14"
    [12]="nvidia-cuda-runtime-cu12>=12,<13 nvidia-nvjpeg-cu12>=12,<13 nvidia-npp-cu12>=12,<13"
)

prepare() {
    local major=$1 venv="$CACHE/venv-cu$1-py$PYTAG"
    local want="$BASE_PY ${WHEELS[$major]} ${TEST_DEPS[*]}"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.spdl-wheels" 2>/dev/null)" = "$want" ]; then
        say "CUDA $major wheels: $venv (cached)"
        return
    fi
    say "CUDA $major wheels: making $venv"
    mkdir -p "$CACHE"
    rm -rf "$venv"
    "$BASE_PY" -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install -q --disable-pip-version-check ${WHEELS[$major]} "${TEST_DEPS[@]}"
    echo "$want" > "$venv/.spdl-wheels"
    "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -i '^nvidia' >&2 || true
}

t0=$SECONDS
prepare 13
prepare 12
say "prepared in $((SECONDS - t0)) s"
[ "${1:-}" = "--prepare" ] && exit 0

status=0
say "tests/test_cuda_wheels.py with $SPDL_PYTHON"
"$SPDL_PYTHON" -m pytest tests/test_cuda_wheels.py -q -rs -p no:cacheprovider || status=1
for major in 13 12; do
    venv="$CACHE/venv-cu$major-py$PYTAG"
    say "tests/test_cuda.py inside $venv"
    PYTHONPATH="$SPDL_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -m pytest tests/test_cuda.py \
        -q -rs -p no:cacheprovider || status=1
done
say "done in $((SECONDS - t0)) s: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
