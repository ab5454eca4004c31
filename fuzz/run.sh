#!/usr/bin/env bash
# Run the spdl.io fuzzer (fuzz/fuzz_load.py, atheris + libFuzzer) for a bounded time.
#
#   fuzz/run.sh [SECONDS] [--instrumented] [--keep-going]
#
#   SECONDS        total fuzzing time (default 180: what CI runs)
#   --instrumented build a copy of the extension modules with clang
#                  -fsanitize=address,fuzzer-no-link into $SPDL_FUZZ_BUILD (default
#                  /tmp/spdl-fuzzbuild; the checkout's own .so files are never touched)
#                  and fuzz that: native coverage of spdl's C code and AddressSanitizer.
#                  Needs clang (apt-get install clang).
#   --keep-going   after a crash, save it and go on until SECONDS are used up
#
# Earlier crashing inputs (fuzz/crashes/) are run first, as regression seeds.
# Exits 1 if any crash, hang (-timeout) or out-of-memory (-rss_limit_mb) was found,
# with the inputs in fuzz/crashes/; prints the number of executions either way.
# Environment: PYTHON (default .venv/bin/python), SPDL_FUZZ_WORK (corpus and logs,
# default fuzz/work), SPDL_FUZZ_PYTHONPATH (where spdl is imported from, default the
# checkout), SPDL_FUZZ_FLAGS (more libFuzzer flags).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=180 INSTR=0 KEEP=0
for a in "$@"; do
    case "$a" in
        --instrumented) INSTR=1 ;;
        --keep-going) KEEP=1 ;;
        ''|*[!0-9]*) sed -n '2,20p' "$0"; exit 2 ;;
        *) SECS=$a ;;
    esac
done

PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
WORK=${SPDL_FUZZ_WORK:-$ROOT/fuzz/work}
CRASHES=$ROOT/fuzz/crashes
mkdir -p "$WORK/corpus" "$CRASHES"
LOG=$WORK/fuzz.log
: > "$LOG"

"$PY" -c "import atheris" 2>/dev/null || "$PY" -m pip install -q atheris || { echo "cannot install atheris" >&2; exit 2; }
"$PY" "$ROOT/fuzz/make_seeds.py" "$WORK/seeds" >/dev/null || exit 2

SPDL_PATH=${SPDL_FUZZ_PYTHONPATH:-$ROOT}
ENV=(env)
if [ "$INSTR" = 1 ]; then
    command -v clang >/dev/null || { echo "--instrumented needs clang (apt-get install clang)" >&2; exit 2; }
    BUILD=${SPDL_FUZZ_BUILD:-/tmp/spdl-fuzzbuild}
    SRC=$BUILD-src
    if [ ! -f "$BUILD/.stamp" ] || [ -n "$(find "$SPDL_PATH/spdl" "$SPDL_PATH/setup.py" -newer "$BUILD/.stamp" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.py' -o -name '*.h' \) -print -quit)" ]; then
        echo "building the instrumented extension modules into $BUILD" >&2
        rm -rf "$SRC" "$BUILD" && mkdir -p "$SRC" "$BUILD"
        cp "$SPDL_PATH/setup.py" "$SPDL_PATH/pyproject.toml" "$SRC/"
        (cd "$SPDL_PATH" && find spdl \( -name '*.pyx' -o -name '*.pxd' -o -name '*.py' -o -name '*.h' -o -name '*.c' -path '*csrc*' \) \
            -print0 | xargs -0 -I{} cp --parents {} "$SRC/")
        (cd "$SRC" && CC=clang CXX=clang++ LDSHARED="clang -shared" \
            CFLAGS="-fsanitize=address,fuzzer-no-link -g -O1" LDFLAGS="-fsanitize=address,fuzzer-no-link" \
            "$PY" setup.py build_ext --build-lib "$BUILD" --build-temp "$BUILD-tmp" -q) > "$WORK/build.log" 2>&1 \
            || { tail -20 "$WORK/build.log" >&2; exit 2; }
        (cd "$SRC" && find spdl -name '*.py' -print0 | xargs -0 -I{} cp --parents {} "$BUILD/")
        touch "$BUILD/.stamp"
    fi
    ASAN_RT=$("$PY" -c "import atheris, os; print(os.path.join(os.path.dirname(os.path.dirname(atheris.__file__)), 'asan_with_fuzzer.so'))")
    SPDL_PATH=$BUILD
    ENV+=(LD_PRELOAD="$ASAN_RT" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_segv=1")
fi
ENV+=(PYTHONPATH="$SPDL_PATH${PYTHONPATH:+:$PYTHONPATH}")

start=$(date +%s) execs=0 crashes=0 rounds=0
while :; do
    left=$(( SECS - ($(date +%s) - start) ))
    [ "$left" -ge 5 ] || break
    rounds=$((rounds + 1))
    "${ENV[@]}" "$PY" "$ROOT/fuzz/fuzz_load.py" -max_total_time="$left" -timeout=10 -rss_limit_mb=2560 \
        -max_len=16384 -print_final_stats=1 -artifact_prefix="$CRASHES/" ${SPDL_FUZZ_FLAGS:-} \
        "$WORK/corpus" "$WORK/seeds" "$CRASHES" >> "$LOG" 2>&1
    rc=$?
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOG" | tail -1 | grep -o '[0-9]*$')
    execs=$((execs + ${n:-0}))
    sed -i 's/stat::number_of_executed_units/counted::number_of_executed_units/' "$LOG"
    if [ "$rc" -ne 0 ]; then
        crashes=$((crashes + 1))
        echo "crash (exit $rc): $(grep -E 'Test unit written|ERROR: libFuzzer|Uncaught Python exception' "$LOG" | tail -2 | tr '\n' ' ')" >&2
        [ "$KEEP" = 1 ] || break
    fi
done
echo "fuzz: $execs executions in $(( $(date +%s) - start )) s, $rounds run(s), $crashes crash(es); log $LOG; inputs in $CRASHES"
[ "$crashes" -eq 0 ]
