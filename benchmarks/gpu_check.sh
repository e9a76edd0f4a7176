#!/usr/bin/env bash
# Issue 16's GPU checks in one script, under 8 minutes on one CUDA GPU:
#   1. the step: reference vs fast mode, fast vs fast with the step replayed as a CUDA graph (--cuda-graph),
#      and R = 1/4/16 runs fitted together, with and without the graph (dipscope bench);
#   2. bf16 quality parity against fp32 on six images, best and auto-stopped PSNR;
#   3. time to the denoised image against the original protocol (3 000 reference steps), σ = 25;
#   and first, that the step replayed as a CUDA graph computes the eager step's numbers (graph_parity.py).
# Usage:  bash benchmarks/gpu_check.sh [--device cuda] [--quick] [--out DIR]
# Test it on a CPU first:  bash benchmarks/gpu_check.sh --device cpu --quick --out /tmp/gpu-check
set -u
DEVICE=cuda QUICK=0 OUT=benchmarks/gpu-check
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
step() {  # step NAME SECONDS COMMAND… — one check with its own time limit, its log and exit status kept
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/status.txt"
}
: > "$OUT/status.txt"
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" > "$OUT/device.txt" 2>&1
if [ "$QUICK" = 1 ]; then
  step bench 300 "$PYTHON" -m dipscope.cli bench --device "$DEVICE" --quick --steps 5 --no-memory --results "$OUT/bench.md"
  step parity 300 "$PYTHON" benchmarks/quality_parity.py --compare precision --device "$DEVICE" --steps 20 --sizes 64 \
      --seeds 1 --images camera,astronaut --out "$OUT/parity.md"
  step time-to-result 300 "$PYTHON" -m dipscope.cli bench --time-to-result --quick --device "$DEVICE" --out "$OUT/ttr" \
      --results "$OUT/time-to-result.md"
else
  step graph-parity 60 "$PYTHON" benchmarks/graph_parity.py --steps 100 --runs 4
  step bench 90 "$PYTHON" -m dipscope.cli bench --device "$DEVICE" --steps 20 --no-memory --results "$OUT/bench.md"
  step parity 120 "$PYTHON" benchmarks/quality_parity.py --compare precision --device "$DEVICE" --steps 1500 --sizes 128 \
      --seeds 2 --out "$OUT/parity.md"
  # every finished (image, σ) part is kept under $OUT/ttr: a run cut by its time limit resumes where it stopped
  step time-to-result 240 "$PYTHON" -m dipscope.cli bench --time-to-result --sigmas 25 --device "$DEVICE" \
      --out "$OUT/ttr" --results "$OUT/time-to-result.md"
fi
echo "logs and reports in $OUT"
