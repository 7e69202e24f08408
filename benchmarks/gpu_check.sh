#!/usr/bin/env bash
# CUDA checks, one run of under 5 minutes on a GPU machine (prints figures; exit code 1 if a step failed):
#   1. the torch descriptor engine's exactness tests on CUDA (random batches, Pillow's resize, and the
#      real samples when ../shared or $IMDAR_SHARED is there),
#   2. its throughput on CUDA (batch 1024 and 4096, synchronised) against the 20,000 samples/s goal,
#   3. benchmarks/bench_training.py (a short CPU part, then its GPU part), cut off after 75 s,
#   4. whether training from skeletons keeps the GPU busy (bench_sources.py --busy cuda).
#
#   bash benchmarks/gpu_check.sh
cd "$(dirname "$0")/.." || exit 1
failed=()

step() {   # step NAME SECONDS COMMAND...: run with a time limit, note a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    timeout "$limit" "$@" || failed+=("$name (exit $?)")
}

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
step "CUDA exactness tests" 60 python -m pytest -q -p no:cacheprovider tests/test_torch_engine.py -k cuda
step "engine throughput" 60 python benchmarks/bench_engines.py --skip-cpu --cuda-batches 1024,4096
step "training throughput" 75 python benchmarks/bench_training.py --images 64 --steps 2
step "training from skeletons" 60 python benchmarks/bench_sources.py --busy cuda --batch 256 --workers 8 --busy-steps 10

if [ ${#failed[@]} -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "all GPU checks passed"
