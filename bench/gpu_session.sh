#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md (training variants, an epoch from PNGs, `cxr14 predict`,
# timm's backbones) in one call of at most 11 minutes on a 16-core machine with one CUDA GPU:
# phases in order of value, each capped by `timeout`, each writing its output to $OUT as it
# goes, so a phase cut short loses only itself.
#
#   bash bench/gpu_session.sh                      # OUT defaults to results/gpu_session
#   DEVICE=cpu STEPS=2 IMAGES=64 BATCH=8 E2E=40 ARCH_FIRST=simple_cnn ARCHS_REST=simple_cnn \
#       BACKBONES=simple_cnn bash bench/gpu_session.sh   # its plumbing on a CPU, in about 3 min
#
# bench_predict reads the real NIH sample images from $CXR14_NIH_SAMPLE (default
# ../shared/data/nih, else .gpu/nih: an ignored folder for a clone without ../shared beside it).
set -u
OUT=${OUT:-results/gpu_session}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-50}
BATCH=${BATCH:-64}
ARCH_FIRST=${ARCH_FIRST:-densenet121}
IMAGES=${IMAGES:-4096}
E2E=${E2E:-20000}
ARCHS_REST=${ARCHS_REST:-resnet18 vgg_like}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
if [ -z "${CXR14_NIH_SAMPLE:-}" ] && [ ! -d ../shared/data/nih/images ] && [ -d .gpu/nih ]; then
    export CXR14_NIH_SAMPLE=.gpu/nih
fi
export PYTHONPATH=src:bench PYTHONUNBUFFERED=1
mkdir -p "$OUT"

phase() { # name, seconds at most, command ...
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (at most $limit s): $*" | tee -a "$OUT/session.txt"
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/session.txt"
    tail -n 40 "$OUT/$name.txt"
}

gpu=(--device "$DEVICE" --steps "$STEPS" --images "$IMAGES" --batch "$BATCH")
phase env 30 sh -c "nvidia-smi || true; nproc; df -h /tmp /dev/shm; $PY -c 'import torch; print(torch.__version__)'"
# densenet121 first: the end-to-end goal is about it, and its compile takes longest.
phase variants_first 170 "$PY" bench/bench_gpu.py "${gpu[@]}" --archs "$ARCH_FIRST" --variants
phase e2e 230 "$PY" bench/bench_gpu.py "${gpu[@]}" --archs densenet121 --no-loader --e2e "$E2E"
# shellcheck disable=SC2086 # ARCHS_REST is a list of names
phase variants_rest 100 "$PY" bench/bench_gpu.py "${gpu[@]}" --archs $ARCHS_REST --variants
phase predict 40 "$PY" bench/bench_predict.py --device "$DEVICE" --copies 4 --repeats 2
# timm's backbones against densenet121, training images/s side by side.
BACKBONES=${BACKBONES:-densenet121 convnext_tiny efficientnet_b0 vit_small_patch16_224}
# shellcheck disable=SC2086 # BACKBONES is a list of names
phase backbones 60 "$PY" bench/bench_gpu.py "${gpu[@]}" --archs $BACKBONES --no-loader --backbones
