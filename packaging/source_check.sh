#!/usr/bin/env bash
# Prove that `pip install .` from source still builds against a system FFmpeg 7.x, and that a
# build with neither the system libraries nor the bundle stops with an error naming both ways.
# In a fresh Debian 13 (trixie: FFmpeg 7.1) root, or Debian 12 (bookworm: 5.1) with --root,
# with the build tools and the -dev packages of FFmpeg, libjpeg-turbo, libtiff, libwebp, libavif:
#   1. the source tree (tracked and untracked files git does not ignore: no .venv, build,
#      dist, *.so, *.c) is copied in; pip install ".[test]" into a venv;
#   2. test_batch.py and test_pixels.py run against it, from outside the source tree; the
#      FFmpeg version the extension was compiled against and the one it runs are printed;
#   3. pip install . again with pkg-config pointed at nothing (no system FFmpeg found) and
#      no bundle: it must fail, and its message must name both the -dev packages and
#      packaging/build_native.sh.
#
#   bash packaging/source_check.sh [--root trixie|bookworm] [--no-tests]
#
# Needs root, debootstrap, zstd and the network (Debian archive, PyPI). The root is cached in
# ${SPDL_ROOT_CACHE:-/var/cache/spdl-roots} like wheel_check.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source packaging/clean_root.sh

run_tests=1
suite=trixie
while [ $# -gt 0 ]; do
    case "$1" in
        --root) shift; case "${1:-}" in
                    trixie|bookworm) suite=$1 ;;
                    *) die "--root takes trixie or bookworm" ;;
                esac ;;
        --no-tests) run_tests=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount): sudo bash $0"

SRC_PKGS=(python3 python3-dev python3-venv ca-certificates pkg-config gcc g++
    libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev libturbojpeg0-dev libjpeg-dev
    libtiff-dev libwebp-dev libavif-dev)
t0=$SECONDS
root_open "$(root_tarball source "$suite" "${SRC_PKGS[@]}")"
say "$suite: libavcodec $(in_root pkg-config --modversion libavcodec) (pkg-config), $(in_root python3 -V)"

mkdir -p "$ROOT/src" "$ROOT/check/run"
git ls-files -z --cached --others --exclude-standard | grep -zv '^\(dist\|build\)/' \
    | xargs -0 -r sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh \
    | tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT/src" -xf -
cp -r "$ROOT/src/tests" "$ROOT/check/tests"
rm -rf "$ROOT/src/tests"

say "$suite: pip install .[test] (compiles every module against the system FFmpeg)"
in_root python3 -m venv /opt/venv
t1=$SECONDS
# Only the test dependencies as binaries; the project itself builds from source.
in_root sh -c 'cd /src && /opt/venv/bin/pip install -q --only-binary pytest,pytest-asyncio,pillow,av,numpy ".[test]"'
build_s=$((SECONDS - t1))

say "$suite: the FFmpeg spdl.io was built against and runs with"
in_root sh -c 'cd /check/run && exec /opt/venv/bin/python -' <<'EOF' | tee "$ROOT/check/ffmpeg.txt"
import ctypes, sysconfig
from pathlib import Path
import spdl.io
where = Path(spdl.io.__file__).resolve().parent
print(f"spdl.io from {where}")
assert where.parent.parent == Path(sysconfig.get_paths()["platlib"]).resolve(), where
maps = {l.split()[-1] for l in open("/proc/self/maps") if "/libav" in l or "turbojpeg" in l}
for lib in sorted(maps):
    print(f"  loaded {lib}")
avutil = ctypes.CDLL(next(m for m in maps if "/libavutil." in m))
avutil.av_version_info.restype = ctypes.c_char_p
print(f"FFmpeg {avutil.av_version_info().decode()}")
EOF

status=0 summary="tests not run"
if [ "$run_tests" -eq 1 ]; then
    say "$suite: test_batch.py and test_pixels.py against the source build"
    in_root sh -c 'cd /check/run && exec /opt/venv/bin/python -m pytest -p no:cacheprovider -q \
        -o asyncio_mode=auto -o asyncio_default_fixture_loop_scope=function \
        --rootdir /check/tests /check/tests/test_batch.py /check/tests/test_pixels.py' \
        | tee "$ROOT/check/pytest.log" || status=1
    summary=$(tail -n 1 "$ROOT/check/pytest.log")
fi

say "$suite: pip install . with no system FFmpeg found and no bundle: must fail, naming both ways"
err=$(in_root sh -c 'cd /src && PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=/nonexistent SPDL_NATIVE= \
    /opt/venv/bin/pip install --no-deps --force-reinstall . 2>&1' || true)
if grep -q "Successfully installed" <<<"$err"; then
    say "it installed"; status=1
elif grep -q "libavformat-dev" <<<"$err" && grep -q "build_native" <<<"$err"; then
    say "it failed, naming both:"; grep -m3 -E "libavformat-dev|build_native" <<<"$err" >&2
else
    say "its message does not name both the -dev packages and packaging/build_native.sh:"
    tail -n 15 <<<"$err" >&2; status=1
fi

verdict=PASS
[ "$status" -eq 0 ] || verdict=FAIL
printf '\n%s source build on %s (%s): compile+install %d s, tests: %s, total %d s\n' \
    "$verdict" "$suite" "$(grep -m1 '^FFmpeg' "$ROOT/check/ffmpeg.txt")" "$build_s" "$summary" \
    $((SECONDS - t0))
exit "$status"
