#!/usr/bin/env bash
# Prepare .gpucarry/: everything benchmarks/gpu_check.sh needs on a GPU machine without network.
#
#   bash benchmarks/gpu_carry.sh [--wheel dist/pixelbatch-...-cp312-...whl] [--out .gpucarry]
#                                [--allow-any-wheel]
#
# The GPU machine (see docs/GPU.md, "Checking a GPU machine") has Python 3.12 with numpy,
# Pillow, pytest, PyTorch and CuPy for CUDA 13, and the CUDA 13 runtime wheel
# (nvidia-cuda-runtime) but not nvJPEG or NPP. Carried, and nothing else:
#   * our wheel for CPython 3.12 (manylinux; ./run wheel with PYTHON=python3.12 builds it);
#   * nvidia-nvjpeg 13.x (the wheel, ~4 MB);
#   * libnppc.so.13, libnppig.so.13, libnppicc.so.13 and libnppidei.so.13 with NPP's headers,
#     taken from the nvidia-npp 13.x wheel (~154 MB, most of it libraries spdl.io does not
#     use) into npp-cu13.tar.xz (~23 MB before libnppicc/libnppidei joined), laid out as the wheel lays them out (nvidia/cu13/lib, nvidia/cu13/include);
#   * pytest-asyncio (the tests' async functions; not on that machine).
#   (PyAV is not carried: no GPU test uses it.)
# NVJPEG_SPEC / NPP_SPEC choose other versions (default the newest 13.x, what
# `pip install pixelbatch[cuda13]` gets; "==13.0.*" matches a CUDA 13.0 driver exactly).
# It prints the total with the repository's tracked and untracked files, which travel too:
# the device tool moves at most 64 MiB. Downloads are cached in $SPDL_CUDA_WHEELS_CACHE/dl
# (default /var/cache/spdl-cudawheels/dl); pip's own settings (PIP_FIND_LINKS, ...) apply.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[gpu-carry]\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

OUT=.gpucarry
WHEEL=
ANY_WHEEL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) WHEEL=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --allow-any-wheel) ANY_WHEEL=1; shift ;;   # for a dry run here: a wheel that is not manylinux
        *) sed -n '2,22p' "$0"; exit 2 ;;
    esac
done
CACHE=${SPDL_CUDA_WHEELS_CACHE:-/var/cache/spdl-cudawheels}
DL="$CACHE/dl"
PY=${PYTHON:-python3}
LIMIT=$((64 * 1024 * 1024))
mkdir -p "$DL"

# Our wheel
if [ -z "$WHEEL" ]; then
    WHEEL=$(ls -t dist/*-cp312-cp312-manylinux*_x86_64.whl 2>/dev/null | head -1 || true)
    [ -n "$WHEEL" ] || die "no CPython 3.12 manylinux wheel in dist/: build it with PYTHON=python3.12 ./run wheel"
fi
[ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
case "$(basename "$WHEEL")" in
    *-cp312-cp312-manylinux*_x86_64.whl) ;;
    *) [ "$ANY_WHEEL" = 1 ] || die "$WHEEL is not a CPython 3.12 manylinux x86_64 wheel (--allow-any-wheel for a dry run)" ;;
esac

download() {   # download SPEC: the newest matching wheel for CPython 3.12 on x86_64 Linux, into $DL
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
        -d "$DL" "$1" >&2
}

NVJPEG_SPEC=${NVJPEG_SPEC:->=13,<14}
NPP_SPEC=${NPP_SPEC:->=13,<14}
say "downloading (cached in $DL): nvidia-nvjpeg$NVJPEG_SPEC, nvidia-npp$NPP_SPEC, pytest-asyncio"
download "nvidia-nvjpeg$NVJPEG_SPEC"
download "nvidia-npp$NPP_SPEC"
download "pytest-asyncio>=0.23,<2"
# newest NAME SPEC: the newest wheel of NAME in $DL whose version matches SPEC
newest() { "$PY" - "$DL" "$1" "$2" <<'EOF'
import pathlib, sys
from pip._vendor.packaging.specifiers import SpecifierSet
from pip._vendor.packaging.version import Version
dl, name, spec = sys.argv[1], sys.argv[2], SpecifierSet(sys.argv[3])
found = [(Version(p.name.split("-")[1]), p) for p in pathlib.Path(dl).glob(name + "-*.whl")]
found = [(v, p) for v, p in found if v in spec]
print(max(found)[1] if found else "")
EOF
}
NVJPEG=$(newest nvidia_nvjpeg "$NVJPEG_SPEC")
NPP=$(newest nvidia_npp "$NPP_SPEC")
ASYNCIO=$(newest pytest_asyncio ">=0.23,<2")
[ -n "$NVJPEG" ] && [ -n "$NPP" ] && [ -n "$ASYNCIO" ] || die "a download is missing in $DL"

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$WHEEL" "$NVJPEG" "$ASYNCIO" "$OUT/"

# NPP: only the two libraries spdl.io opens, and the headers (for the layout tests).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" - "$NPP" "$tmp" <<'EOF'
import sys, zipfile
whl, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist()
             if n in ("nvidia/cu13/lib/libnppc.so.13", "nvidia/cu13/lib/libnppig.so.13",
                      "nvidia/cu13/lib/libnppicc.so.13", "nvidia/cu13/lib/libnppidei.so.13")
             or (n.startswith("nvidia/cu13/include/npp") and n.endswith(".h"))]
    assert sum(n.endswith(".so.13") for n in names) == 4, names
    z.extractall(dest, names)
EOF
NPP_VERSION=$(basename "$NPP" | cut -d- -f2)
echo "$NPP_VERSION" > "$tmp/nvidia/cu13/NPP_VERSION"
say "compressing libnppc, libnppig, libnppicc, libnppidei .so.13 ($(du -sm "$tmp/nvidia" | cut -f1) MB) from $(basename "$NPP")"
tar -C "$tmp" -cf - nvidia | xz -T0 -6 > "$OUT/npp-cu13.tar.xz"

# What travels besides: the repository's tracked and untracked, not ignored, files.
grep -qxF "/$OUT/" .git/info/exclude 2>/dev/null || echo "/$OUT/" >> .git/info/exclude
grep -qxF "/gpu_check_out/" .git/info/exclude 2>/dev/null || echo "/gpu_check_out/" >> .git/info/exclude
repo_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
{
    echo "# .gpucarry: what benchmarks/gpu_check.sh installs on the GPU machine (made $(date -u +%FT%TZ))"
    (cd "$OUT" && for f in *; do [ "$f" = MANIFEST.txt ] || echo "$(stat -c %s "$f") $(sha256sum "$f")"; done)
    echo "# npp-cu13.tar.xz: libnppc, libnppig, libnppicc, libnppidei .so.13 and nvidia/cu13/include/npp*.h of $(basename "$NPP")"
} > "$OUT/MANIFEST.txt"
carry_bytes=$(du -sb "$OUT" | cut -f1)
total=$((carry_bytes + repo_bytes))
say "carry folder $OUT: $((carry_bytes / 1024)) KiB"
(cd "$OUT" && ls -l | tail -n +2 | awk '{printf "    %10d  %s\n", $5, $9}') >&2
say "repository files that travel too: $((repo_bytes / 1024)) KiB"
say "total: $((total / 1024)) KiB of $((LIMIT / 1024)) KiB ($((100 * total / LIMIT))%)"
[ "$total" -le "$LIMIT" ] || die "over the 64 MiB the device tool carries"
echo "$OUT"
