#!/usr/bin/env bash
# GPU check for the export/deploy path: TensorRT tests + inference benchmark with TensorRT, in about 6 minutes.
#
# On a GPU machine, from the repository root:
#     bash benchmarks/gpu_check.sh [OUT_DIR]
# It installs only what is missing, from wheels in .whl/ when that folder exists (machines without internet),
# else from PyPI; whatever cannot be installed is reported and its checks are skipped, never faked.
# To prepare .whl/ on a machine with internet for a Python 3.12 x86-64 GPU machine:
#     bash benchmarks/gpu_check.sh --fetch-wheels
# (TensorRT wheels are several GB: they are fetched only with --fetch-wheels --with-tensorrt.)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
DEPS="pydantic pydantic-core annotated-types typing-inspection omegaconf antlr4-python3-runtime"
TRT_WHEELS="tensorrt-cu13 tensorrt-cu13-bindings tensorrt-cu13-libs"

if [ "${1:-}" = "--fetch-wheels" ]; then
    names="$DEPS"
    [ "${2:-}" = "--with-tensorrt" ] && names="$names $TRT_WHEELS"
    for name in $names; do  # antlr4-python3-runtime (omegaconf's) ships as an sdist only: allowed with --no-deps
        $PY -m pip download -q --no-deps --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$name" || echo "could not fetch $name"
    done
    ls -la .whl
    exit 0
fi

OUT=${1:-${OUT:-benchmarks/out/gpu_check}}
mkdir -p "$OUT"
START=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }

install() {  # install the given pip names: local wheels first, then PyPI (fails fast without a network)
    if [ -d .whl ]; then
        $PY -m pip install -q --no-index --no-build-isolation --find-links .whl "$@" 2>/dev/null && return 0
    fi
    timeout 150 $PY -m pip install -q --retries 0 --timeout 5 "$@" 2>/dev/null
}

log "python: $($PY -c 'import sys; print(sys.version.split()[0])'), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
$PY -c 'import pydantic, omegaconf' 2>/dev/null || { log "installing $DEPS"; install $DEPS || log "could not install the package's dependencies"; }
if ! $PY -c 'import optical_inspection.cli, pydantic, omegaconf' 2>/dev/null; then
    log "FAIL: optical_inspection cannot be imported here (missing dependencies above); nothing checked"
    exit 1
fi
$PY -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && GPU=yes || GPU=no
if [ "$GPU" = yes ] && ! $PY -c 'import tensorrt' 2>/dev/null; then
    log "tensorrt missing: trying to install it"
    install tensorrt || install $TRT_WHEELS || true
fi
TRT=$($PY -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || echo none)
log "torch CUDA: $GPU; TensorRT: $TRT; onnxruntime providers: $($PY -c 'import onnxruntime as o; print(o.get_available_providers())' 2>&1 | tail -1)"

log "tests: TensorRT + ONNX Runtime deploy + export"
timeout 240 $PY -m pytest -q -rs -p no:cacheprovider tests/test_trt.py tests/test_deploy_onnx.py tests/test_export.py \
    2>&1 | tee "$OUT/tests.log" | tail -25
log "tests exit: ${PIPESTATUS[0]}"

BENCH_ARGS="--seconds 2 --min-runs 5 --json $OUT/inference.json"
[ "$GPU" = yes ] && BENCH_ARGS="$BENCH_ARGS --trt"
log "benchmark: $BENCH_ARGS"
LEFT=$(( 340 - ($(date +%s) - START) )); [ "$LEFT" -lt 60 ] && LEFT=60
PYTHONUNBUFFERED=1 timeout "$LEFT" $PY benchmarks/inference.py $BENCH_ARGS 2>&1 \
    | grep -v -E "torchvision|^\[torch.onnx\]" | tee "$OUT/inference.log"
log "benchmark exit: ${PIPESTATUS[0]}; results in $OUT/"
