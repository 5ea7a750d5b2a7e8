#!/usr/bin/env bash
# The checks that need a GPU, in one go for a lent machine: the H100/H200 MFU target of
# bench/trainer.py (125m at 2k context, bf16, compiled blocks), then the CUDA tests of the
# trainer (tests/test_trainer_cuda.py: FlexAttention, autocast, compile, a phase loop).
# Results go to $OUT (default bench/results): trainer.json, bench.log, cuda_tests.log.
#     OUT=/some/dir bash bench/gpu_check.sh
set -u
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
configs=()
for config in ${BENCH_CONFIGS:-125m:seq_len=2048,batch=16}; do configs+=(--config "$config"); done
timeout "${BENCH_SECONDS:-300}" "$PY" bench/trainer.py --device cuda --compile "${configs[@]}" \
    --warmup 3 --repeats 4 --steps 10 \
    --output "$OUT" 2>&1 | tee "$OUT/bench.log" | grep -v "^W[0-9]"
timeout "${TEST_SECONDS:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_trainer_cuda.py 2>&1 \
    | tee "$OUT/cuda_tests.log" | tail -30
