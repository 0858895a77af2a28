#!/usr/bin/env bash
# GPU check (one H100, about 8 minutes): a Qwen2.5-VL-7B-shaped random model in bf16 with about
# 1000 image tokens (784x1008 -> 28x36 = 1008 tokens): floor vs capture vs eager (median time,
# peak CUDA memory), then the exactness contract on the GPU, then extraction throughput on the
# Qwen2.5-VL-3B shape (F-LMM way vs per-sample capture vs extract at 1, 3, 7 texts per image).
# Usage: bash bench/gpu_check.sh [OUT_DIR]   (needs: pip install -e ".[test]")
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench}
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python bench/pipeline_bench.py --backbones qwen2_5_vl_7b --sizes 784x1008 --reps 5 \
  --dtype bfloat16 --device cuda --out "$out/results-gpu.json"
python bench/gpu_exactness.py | tee "$out/gpu-exactness.txt"
python bench/extract_bench.py --device cuda --dtype bfloat16 --samples 35 --memory-samples 600 \
  --batch-size 16 --out "$out/results-extract-gpu.json"
