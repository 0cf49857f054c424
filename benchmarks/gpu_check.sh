#!/usr/bin/env bash
# The GPU checks of issue 14 part 6 as one prepared script for a lent GPU machine (a bare
# image with torch, lightning and PyG but without Hydra, pyBigWig or captum: those travel as
# wheels in .whl/: bash benchmarks/gpu_wheels.sh first, then carry .whl). Each stage has its own time limit and writes under $OUT
# (default ./gpu_out), so a stage that runs long costs only itself:
#   1. the @pytest.mark.gpu tests;
#   2. throughput per model on the built-in synthetic dataset: fp32 / TF32 / bf16, batch sizes
#      up to the device's fill, torch.compile (benchmarks/bench_cost.py);
#   3. one real training epoch per model at 19,000 genes (epx synth --genome hg19, one cell).
# Usage: bash benchmarks/gpu_check.sh [STAGES, default "1 2 3"]
set -u
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} EPX_DATA_DIR=/tmp/epxdata WANDB_MODE=disabled PYTHONUNBUFFERED=1
STAGES=${1:-"1 2 3"}
nvidia-smi -L
python3 -c "import torch, lightning, torch_geometric, hydra; print('torch', torch.__version__, 'lightning', lightning.__version__, 'pyg', torch_geometric.__version__, 'cuda', torch.cuda.is_available())"
for stage in $STAGES; do
  case $stage in
    1) timeout -s KILL 170 python3 -m pytest -m gpu tests/test_gpu.py tests/test_chromoformer_net.py -q -p no:cacheprovider -W ignore 2>&1 | tail -25 | tee "$OUT/gpu_tests.log" ;;
    2) timeout -s KILL 220 python3 benchmarks/bench_cost.py --device cuda --precisions 32,tf32,bf16 --batch-sizes 64,512,2048 \
         --compile --steps 10 --epoch --timeout 60 --out "$OUT/cost_gpu_synthetic.json" 2>"$OUT/cost_gpu_synthetic.err" | tee "$OUT/cost_gpu_synthetic.txt" ;;
    3) timeout -s KILL 60 python3 -m epx.cli synth /tmp/hg19 --genome hg19 --cells E003 2>&1 | tail -2
       timeout -s KILL 150 python3 benchmarks/bench_cost.py --device cuda --precisions bf16 --steps 10 --epoch --timeout 60 \
         --out "$OUT/cost_gpu_hg19.json" dataset=folder dataset.root=/tmp/hg19 paths.cache_dir=/tmp/hg19cache 2>"$OUT/cost_gpu_hg19.err" | tee "$OUT/cost_gpu_hg19.txt" ;;
  esac
done
