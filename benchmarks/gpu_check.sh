#!/usr/bin/env bash
# The whole GPU verification, in one run, on a machine with one NVIDIA GPU and no network.
#
#   bash benchmarks/gpu_check.sh            on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run  anywhere: every step up to the first GPU call
#
# Needs .gpucarry/ (benchmarks/gpu_carry.sh makes it: our CPython 3.12 wheel, nvidia-nvjpeg
# 13.x, libnppc/libnppig/libnppicc/libnppidei 13, pytest-asyncio) and a Python 3.12 with numpy, Pillow and pytest
# (PyTorch and CuPy with CUDA for their tests) and the CUDA runtime: $GPU_CHECK_PYTHON, else
# python3. With the device tool: carry [".gpucarry"], command `bash benchmarks/gpu_check.sh`.
#
# Steps, each with its own time limit, all within 8 minutes:
#   env      nvidia-smi, the driver, nvcc, CUDA libraries on the system, Python packages
#   install  our wheel, nvJPEG and NPP into a fresh --target folder (nothing touches the
#            system's Python); `import spdl.io` must come from there
#   info     spdl.io.cuda_info(): the libraries loaded, their versions, driver, devices
#   data     1,024 ImageNet-sized JPEGs (333..500 px, 4:2:0), made on the spot
#   tests    tests/test_cuda*.py and tests/test_gpu_review.py with SPDL_REQUIRE_GPU=1: a GPU
#            test that would skip fails (--dry-run: collects them and lists the GPU tests)
#   pixels   nvJPEG + NPP against the CPU path, per pixel format, scale mode and size (max /
#            mean / p99 absolute difference); the CPU decode + GPU copy must be exact
#   bench    benchmarks/bench_gpu.py: images/s of the CPU path (one thread per core) vs
#            CPU decode + copy vs nvJPEG, batches of 64 at 224x224 (+ PyTorch's allocator)
#   summary  summary.md
# Results, in $OUT if set, else gpu_check_out/ (at most 8 files, for the device tool):
# summary.md, gpu_check.log, steps.tsv, env.json, pytest.xml, pixels.json, bench.json.
# Exit status: 0 only if every step passed.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
CARRY=${GPU_CHECK_CARRY:-$REPO/.gpucarry}
OUTDIR=${OUT:-$REPO/gpu_check_out}
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/{summary.md,gpu_check.log,steps.tsv,env.json,pytest.xml,pixels.json,bench.json}
LOG=$OUTDIR/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
T0=$SECONDS
BUDGET=${GPU_CHECK_BUDGET:-470}        # seconds, for all steps (8 minutes, less the tool's margins)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpucheck.XXXXXX")
SITE=$WORK/site
export PYTHONUNBUFFERED=1
FAILED=0

say() { printf '\n=== [gpu-check %4ds] %s\n' "$((SECONDS - T0))" "$*"; }

# step NAME LIMIT NOTE CMD...: run CMD with at most LIMIT seconds (less if the budget is short).
step() {
    local name=$1 limit=$2 note=$3 start rc left
    shift 3
    left=$((BUDGET - (SECONDS - T0) - 15))
    [ "$limit" -gt "$left" ] && limit=$left
    say "$name (limit ${limit}s)"
    start=$SECONDS
    if [ "$limit" -le 0 ]; then
        rc=124
        echo "no time left for $name"
    elif declare -F "$1" >/dev/null; then     # a function of this script, in a bash of its own
        timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $1"
        rc=$?
    else
        timeout --kill-after=10 "$limit" "$@"
        rc=$?
    fi
    printf '%s\t%d\t%d\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$note" >> "$OUTDIR/steps.tsv"
    if [ "$rc" -ne 0 ]; then
        FAILED=1
        say "$name FAILED (exit $rc$([ "$rc" = 124 ] && echo ', timed out'))"
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------
say "GPU check of $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') $([ $DRY = 1 ] && echo '(dry run)'), results in $OUTDIR, work in $WORK"
PY=${GPU_CHECK_PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "no $PY"; exit 2; }
export PY OUTDIR WORK SITE CARRY DRY REPO

env_step() {
    echo "host: $(uname -srm), $(nproc) CPUs, $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
    echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
    if command -v nvidia-smi >/dev/null; then
        timeout 20 nvidia-smi || true
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm \
            --format=csv || true
    else
        echo "nvidia-smi: not found"
    fi
    command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "nvcc: not found"
    for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && echo "$d: $(ls "$d" | grep -E '^lib(cudart|nvjpeg|nppc|nppig|nppicc|nppidei)\.so\.[0-9]+$' | tr '\n' ' ')"
    done
    "$PY" -m pip list --disable-pip-version-check 2>/dev/null \
        | grep -iE '^(nvidia-|torch |cupy|numpy |pillow |pytest|cuda-)' || true
    "$PY" - "$OUTDIR/env.json" <<'EOF'
import json, shutil, subprocess, sys
env = {}
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
if shutil.which("nvidia-smi"):
    env["gpu"] = run("nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader")
    env["driver"] = run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
else:
    env["gpu"] = env["driver"] = "nvidia-smi not found"
env["nvcc"] = run("nvcc", "--version").splitlines()[-1] if shutil.which("nvcc") else "not found"
json.dump(env, open(sys.argv[1], "w"), indent=1)
EOF
}
step env 60 "" env_step

# ---------------------------------------------------------------------------
install_step() {
    [ -d "$CARRY" ] || { echo "no carry folder $CARRY: run benchmarks/gpu_carry.sh first"; return 1; }
    cat "$CARRY/MANIFEST.txt" 2>/dev/null
    if ! "$PY" -c 'import numpy, PIL, pytest' 2>/dev/null; then
        if [ $DRY = 1 ]; then   # here: a throwaway venv with what the GPU machine has already
            echo "$PY lacks numpy / Pillow / pytest: a temporary venv for the dry run"
            "$PY" -m venv "$WORK/venv" && "$WORK/venv/bin/python" -m pip install -q \
                --disable-pip-version-check numpy pillow pytest typing_extensions || return 1
            PY=$WORK/venv/bin/python
            echo "$PY" > "$WORK/python"
        else
            echo "$PY lacks numpy, Pillow or pytest"; return 1
        fi
    fi
    "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
        --target "$SITE" "$CARRY"/*.whl || return 1
    if [ -f "$CARRY/npp-cu13.tar.xz" ]; then
        "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$CARRY/npp-cu13.tar.xz" "$SITE" || return 1
    fi
    ls -l "$SITE"/nvidia/*/lib/
    (cd "$WORK" && PYTHONPATH=$SITE "$PY" -c '
import sys, spdl, spdl.io
site = sys.argv[1]
print("spdl.io", getattr(spdl.io, "__version__", "?"), "from", spdl.io.__file__)
assert spdl.io.__file__.startswith(site), "spdl.io is not the installed wheel"' "$SITE") || return 1
    # pytest with the carried pytest-asyncio (the async tests need it)
    (cd "$WORK" && PYTHONPATH=$SITE "$PY" -m pytest --version) || {
        echo "pytest does not start with the carried plugins"; return 1; }
}
step install 120 "$(ls "$CARRY" 2>/dev/null | grep -c whl) wheels + NPP from $(basename "$CARRY")" install_step
[ -f "$WORK/python" ] && PY=$(cat "$WORK/python")
export PY PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
cd "$WORK" || exit 1

# The tests and helpers run from copies, so that the checkout's spdl/ (sources, nothing built)
# is never imported instead of the installed wheel.
cp -r "$REPO/tests" "$REPO/benchmarks" "$WORK/"
cat > "$WORK/pytest.ini" <<'EOF'
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
EOF

step info 60 "" "$PY" benchmarks/gpu_check.py info "$OUTDIR/env.json"
step data 90 "1024 JPEGs" "$PY" benchmarks/gpu_check.py data "$WORK/imagenet" --count 1024

TESTS="tests/test_cuda.py tests/test_cuda_loader.py"
[ -f tests/test_gpu_review.py ] && TESTS="$TESTS tests/test_gpu_review.py"
export TESTS
if [ $DRY = 1 ]; then
    collect() {
        # shellcheck disable=SC2086
        SPDL_REQUIRE_GPU=1 "$PY" -m pytest -p no:cacheprovider --collect-only -q -m gpu $TESTS \
            | tee "$WORK/gpu_tests.txt" | tail -n 40
        local n_gpu n_all
        n_gpu=$(grep -c '::' "$WORK/gpu_tests.txt")
        # shellcheck disable=SC2086
        n_all=$("$PY" -m pytest -p no:cacheprovider --collect-only -q $TESTS | grep -c '::')
        echo "would run ${n_all} tests of $TESTS with SPDL_REQUIRE_GPU=1, ${n_gpu} of them GPU tests (above)"
        [ "$n_gpu" -gt 0 ]
    }
    step collect 90 "" collect
    step pixels 60 "dry run" "$PY" benchmarks/gpu_check.py pixels "$OUTDIR/pixels.json" --dry-run
    say "dry run: would run bench: $PY benchmarks/bench_gpu.py --set-dir $WORK/imagenet --batch-size 64 --rounds 3 --json $OUTDIR/bench.json"
else
    # shellcheck disable=SC2086
    step tests 240 "SPDL_REQUIRE_GPU=1" env SPDL_REQUIRE_GPU=1 "$PY" -m pytest -p no:cacheprovider -rfEs \
        --junitxml="$OUTDIR/pytest.xml" $TESTS
    step pixels 90 "" "$PY" benchmarks/gpu_check.py pixels "$OUTDIR/pixels.json"
    bench() {
        "$PY" benchmarks/bench_gpu.py --set-dir "$WORK/imagenet" --batch-size 64 --rounds 3 \
            --json "$OUTDIR/bench.json" || return 1
        "$PY" -c 'import json, sys; b = json.load(open(sys.argv[1])); sys.exit("skipped: " + b["skipped"] if "skipped" in b else any("error" in r for r in b["results"]))' \
            "$OUTDIR/bench.json"
    }
    step bench 150 "" bench
fi

step summary 30 "" "$PY" benchmarks/gpu_check.py summary "$OUTDIR" >/dev/null
say "done in $((SECONDS - T0)) s: $([ $FAILED = 0 ] && echo PASSED || echo FAILED); $OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
rm -rf "$WORK"
exit $FAILED
