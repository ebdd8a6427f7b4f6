#!/usr/bin/env bash
# The prepared GPU check of embspace, for a GPU machine with no network (see README.md here):
#   1. install the carried wheels from .whl/ (embspace's abi3 wheel, plus any pure-Python
#      dependency the machine lacks) into a private folder, offline, without dependencies;
#   2. run the GPU tests and the array-module tests (log: gpu-tests.log);
#   3. benchmark CPU vs GPU on the synthetic ML-20M preset (gpu-bench.json, bench.log).
# Usage: bash benches/gpu/run.sh [OUT_DIR]   (default: $OUT, else bench-results/)
# Extra arguments after OUT_DIR go to run.py (e.g. --sections wals,knn).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
OUT_DIR="${1:-${OUT:-bench-results}}"
shift || true
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
SITE="${EMBSPACE_SITE:-/tmp/embspace-site}"

shopt -s nullglob
wheels=(.whl/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "no wheels in .whl/: build them first (benches/gpu/README.md)" >&2
    exit 2
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${wheels[@]}" || exit 3
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PYEOF' || exit 4
import embspace, embspace.gpu
from embspace.device import gpu_available
print("embspace", embspace.__version__, "from", embspace.__file__)
print("GPU available to embspace:", gpu_available())
PYEOF

# GPU-marked tests and the array-module tests (numpy paths) of this checkout, against the
# installed wheel. Failures are recorded and the benchmark still runs.
timeout 180 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_gpu*.py tests/test_xp*.py \
    >"$OUT_DIR/gpu-tests.log" 2>&1
tests_rc=$?
tail -n 15 "$OUT_DIR/gpu-tests.log"
export EMBSPACE_GPU_TESTS_RC=$tests_rc

timeout 420 "$PY" benches/gpu/run.py --out "$OUT_DIR/gpu-bench.json" "$@" 2>&1 | tee "$OUT_DIR/bench.log"
bench_rc=${PIPESTATUS[0]}
echo "tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
