# Shared settings for setup.sh and run.sh (sourced, not executed).
# Override with environment variables:
#   SPDL_BENCH_ROOT   data / reference-venv cache  (default ~/.cache/spdl-bench)
#   SPDL_BENCH_VENV   benchmark venv (default: <repo>/.venv if it exists,
#                     else benchmarks/.venv-bench)
#   SPDL_BENCH_REF_VERSION  spdl-io version for the reference venv (0.8.0)
#   PYTHON            interpreter used to create venvs (default python3)
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
ROOT="${SPDL_BENCH_ROOT:-$HOME/.cache/spdl-bench}"
if [ -n "${SPDL_BENCH_VENV:-}" ]; then
    BENCH_VENV="$SPDL_BENCH_VENV"
elif [ -x "$REPO_DIR/.venv/bin/python" ]; then
    BENCH_VENV="$REPO_DIR/.venv"
else
    BENCH_VENV="$BENCH_DIR/.venv-bench"
fi
BENCH_PY="$BENCH_VENV/bin/python"
REF_VENV="$ROOT/venv-spdl-ref"
REF_PY="$REF_VENV/bin/python"
REF_VERSION="${SPDL_BENCH_REF_VERSION:-0.8.0}"
PYTHON="${PYTHON:-python3}"
