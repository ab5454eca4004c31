#!/usr/bin/env bash
# Set everything up (idempotent) and run the benchmark.
#   bash benchmarks/run.sh [run.py options]     e.g. --quick, --sets imagenet
#   bash benchmarks/run.sh --train [bench_train.py options]   training batches
# Set SPDL_BENCH_SKIP_SETUP=1 to skip setup.sh.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
if [ "${1:-}" = "--train" ]; then
    shift
    if [ "${SPDL_BENCH_SKIP_SETUP:-0}" != "1" ]; then
        SPDL_BENCH_TRAIN=1 bash "$BENCH_DIR/setup.sh"
    fi
    exec "$BENCH_PY" "$BENCH_DIR/bench_train.py" --root "$ROOT" "$@"
fi
if [ "${SPDL_BENCH_SKIP_SETUP:-0}" != "1" ]; then
    bash "$BENCH_DIR/setup.sh"
fi
exec "$BENCH_PY" "$BENCH_DIR/run.py" --root "$ROOT" --ref-python "$REF_PY" "$@"
