#!/usr/bin/env bash
# Prove the wheels in dist/ where nothing else is: a fresh Debian root (debootstrap minbase with
# only python3, python3-venv and ca-certificates; no FFmpeg, no compiler, no -dev packages) per
# Debian release. In each: pip install the wheel and its [test] extra into a venv, load a
# JPEG/PNG/WebP batch (packaging/wheel_smoke.py), check that every shared object of the installed
# package resolves (ldd), and run the test suite against the installed wheel from outside any
# source tree.
#
#   bash packaging/wheel_check.sh [--root bookworm|trixie|all] [--quick] [--wheel FILE] [-- ARGS]
#     --root    which root (default all): bookworm = Debian 12, Python 3.11; trixie = Debian 13, 3.13
#     --quick   install, smoke batch and ldd only, no test suite
#     --wheel   check FILE instead of the matching wheel in dist/ (one root only)
#     -- ARGS   more pytest arguments (-k EXPR, a test file under tests/ as /check/tests/FILE)
#
# Needs root (chroot, mount), debootstrap, zstd and the network (Debian archive, PyPI). Roots are
# cached as tarballs in ${SPDL_ROOT_CACHE:-/var/cache/spdl-roots}; each check unpacks a fresh copy
# and removes it on exit. Prints one line per root: PASS/FAIL, tests passed/skipped/failed, seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source packaging/clean_root.sh

declare -A PY=([bookworm]=3.11 [trixie]=3.13)
ROOT_PKGS=(python3 python3-venv ca-certificates)
roots=(bookworm trixie)
quick=0
wheel_arg=
pytest_args=()

while [ $# -gt 0 ]; do
    case "$1" in
        --root) shift; case "${1:-}" in
                    all) roots=(bookworm trixie) ;;
                    bookworm|trixie) roots=("$1") ;;
                    *) die "--root takes bookworm, trixie or all" ;;
                esac ;;
        --quick) quick=1 ;;
        --wheel) shift; wheel_arg=$(realpath "${1:?--wheel takes a file}") ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount): sudo bash $0"
[ -z "$wheel_arg" ] || [ ${#roots[@]} -eq 1 ] || die "--wheel checks one root: add --root"

# The manylinux wheel in dist/ for Python $1 (3.11), or a clear error saying how to build it.
pick_wheel() {
    local tag="cp${1/./}" w
    w=$(ls -t "$REPO"/dist/*-"$tag"-"$tag"-*manylinux*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$w" ]; then
        local how="./run wheel"
        [ "$1" = "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ] \
            || how="PYTHON=python$1 ./run wheel"
        die "no manylinux wheel for Python $1 in dist/ (want *-$tag-$tag-manylinux*.whl): build it with: $how"
    fi
    echo "$w"
}

# check ROOTNAME: one whole check; prints the summary line; returns non-zero on failure.
check_root() {
    local name=$1 py=${PY[$1]} t0=$SECONDS wheel=$wheel_arg
    if [ -z "$wheel" ]; then wheel=$(pick_wheel "$py"); fi   # (in an || list, set -e would not stop)
    local whl; whl=$(basename "$wheel")
    local newer; newer=$(find spdl setup.py pyproject.toml -newer "$wheel" -type f \
        \( -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' -o -name '*.toml' \) \
        -print -quit)
    [ -z "$newer" ] || say "WARNING: $newer is newer than $whl: the copied tests may not match" \
        "the wheel; rebuild it (./run wheel) if they fail for that"
    local dist=${whl%%-*}
    local tarball; tarball=$(root_tarball wheel "$name" "${ROOT_PKGS[@]}")
    say "$name: checking $whl"
    root_open "$tarball"
    local have; have=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$have" = "$py" ] || die "the $name root has Python $have, expected $py"

    mkdir -p "$ROOT/check/run"
    cp "$wheel" "$ROOT/check/"
    cp packaging/wheel_smoke.py "$ROOT/check/"
    # the tests, and the examples they run against the installed wheel (test_typing's typed
    # example, test_train_example's training loop)
    tar -C "$REPO" --exclude=__pycache__ -cf - tests examples | tar -C "$ROOT/check" -xf -
    write_pytest_config "$ROOT/check"

    # The [test] extra if the wheel declares one, else the suite's imports by name.
    local extra=() deps=()
    if python3 - "$wheel" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    sys.exit(0 if "Provides-Extra: test" in z.read(meta).decode() else 1)
EOF
    then extra=("/check/$whl[test]")
    else extra=("/check/$whl"); deps=(pytest pytest-asyncio pillow av)
    fi
    say "$name: venv, pip install ${extra[*]} ${deps[*]}"
    in_root python3 -m venv /opt/venv
    # Binary wheels only: the root has no compiler, and nothing may quietly build from source.
    in_root /opt/venv/bin/pip install -q --only-binary :all: "${extra[@]}" "${deps[@]}"

    local status=0 passed=- skipped=- failed=-
    say "$name: smoke batch"
    in_root sh -c 'cd /check/run && exec /opt/venv/bin/python /check/wheel_smoke.py' || status=1

    say "$name: ldd of every shared object of $dist"
    in_root sh -c 'cd /check/run && exec /opt/venv/bin/python - "$1"' sh "$dist" <<'EOF' || status=1
import importlib.metadata as md, re, subprocess, sys, sysconfig
files = [f.locate() for f in md.files(sys.argv[1]) if ".so" in f.name]
venv = sysconfig.get_paths()["platlib"]
# glibc's and the compiler runtime's, which manylinux lets a wheel take from the system;
# anything else (a system libtiff, libwebp, libavif, libdav1d, libaom, ...) must come from
# the wheel.
system_ok = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64|linux-vdso)\.so")
bad = {}
for f in files:
    out = subprocess.run(["ldd", str(f)], capture_output=True, text=True).stdout
    missing = set()
    for l in out.splitlines():
        name, _, where = l.strip().partition(" => ")
        if "not found" in where:
            missing.add(name)
        elif where.startswith("/") and not where.startswith(venv) and not system_ok.match(name):
            missing.add(f"{name} (from the system: {where.split(' (')[0]})")
    if missing:
        bad[f.name] = sorted(missing)
        print(f"  {f.name}: {' '.join(sorted(missing))} not found in the wheel")
print(f"  {len(files)} shared objects, {len(bad)} with libraries from outside the wheel"
      + (f": {' '.join(sorted({m for v in bad.values() for m in v}))}" if bad else ""))
sys.exit(1 if bad or not files else 0)
EOF

    if [ "$quick" -eq 0 ]; then
        say "$name: test suite against the installed wheel"
        in_root sh -c 'cd /check/run && exec /opt/venv/bin/python -m pytest /check/tests \
            -c /check/pytest.ini --rootdir /check -p no:cacheprovider -q -rfE \
            --junitxml=/check/junit.xml "$@"' sh "${pytest_args[@]}" || status=1
        if [ -f "$ROOT/check/junit.xml" ]; then
            read -r passed skipped failed < <(python3 - "$ROOT/check/junit.xml" <<'EOF'
import collections, sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
n, sk = int(s.get("tests")), int(s.get("skipped"))
bad = int(s.get("failures")) + int(s.get("errors"))
# The skips, one line per reason (the first line of it), on stderr.
why = collections.Counter((e.get("message") or "").splitlines()[0][:120] for e in s.iter("skipped"))
for reason, k in sorted(why.items(), key=lambda x: -x[1]):
    print(f"  skipped {k:3d}: {reason}", file=sys.stderr)
print(n - sk - bad, sk, bad)
EOF
            )
        fi
    fi
    root_close
    local verdict=PASS
    [ "$status" -eq 0 ] || verdict=FAIL
    local tests="tests: $passed passed, $skipped skipped, $failed failed"
    [ "$quick" -eq 0 ] || tests="tests: not run (--quick)"
    printf '%-4s %-8s Python %-4s %s  %s  %d s\n' \
        "$verdict" "$name" "$py" "$whl" "$tests" $((SECONDS - t0)) >>"$SUMMARY"
    return "$status"
}

# pytest.ini for the copied tests: the project's [tool.pytest.ini_options] (without testpaths),
# plus a conftest.py that fails the run unless spdl comes from the venv's site-packages.
write_pytest_config() {
    python3 - "$REPO/pyproject.toml" "$1/pytest.ini" <<'EOF'
import sys, tomllib
opts = tomllib.load(open(sys.argv[1], "rb"))["tool"]["pytest"]["ini_options"]
opts.pop("testpaths", None)
with open(sys.argv[2], "w") as f:
    f.write("[pytest]\n")
    for k, v in opts.items():
        f.write(f"{k} = {' '.join(map(str, v)) if isinstance(v, list) else v}\n")
EOF
    cat >"$1/conftest.py" <<'EOF'
import sysconfig
from pathlib import Path

import spdl

_WHERE = Path(spdl.__file__).resolve().parent
_SITE = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
assert _WHERE.parent in _SITE, f"spdl imported from {_WHERE}, not from site-packages"


def pytest_report_header(config):
    return f"spdl {getattr(spdl, '__version__', '(no __version__)')} from {_WHERE}"
EOF
}

SUMMARY=$(mktemp)
rc=0
for r in "${roots[@]}"; do
    # Each root in a subshell: its EXIT trap unmounts and removes the root, whatever happens.
    # (Not in an || list: bash would ignore set -e inside it.)
    lines=$(wc -l <"$SUMMARY")
    set +e
    ( set -e; check_root "$r" )
    st=$?
    set -e
    [ "$st" -eq 0 ] || rc=1
    [ "$(wc -l <"$SUMMARY")" -gt "$lines" ] \
        || echo "FAIL $r  stopped early (exit $st): see the messages above" >>"$SUMMARY"
done
printf '\n' >&2
cat "$SUMMARY"
rm -f "$SUMMARY"
exit "$rc"
