#!/usr/bin/env bash
# The denoising table at the study's full settings on one CUDA GPU, in priority order, within
# a time budget. Every sweep is resumable: run it again (same OUTDIR) to continue.
#   BUDGET_S=540 OUTDIR=results/denoise-table/gpu DIPSCOPE_DATA=/path/to/images bash benchmarks/denoise_table_gpu.sh
# PYTHON defaults to python3 with src/ on the path (no install needed); DEVICE and PROFILE
# (cuda, paper) may be changed to try the script on a CPU (DEVICE=cpu PROFILE=smoke).
set -u
BUDGET_S=${BUDGET_S:-540}
OUTDIR=${OUTDIR:-results/denoise-table/gpu}
PYTHON=${PYTHON:-python3}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + BUDGET_S ))

table() {  # table SUBDIR ARGS… — one resumable sweep, cut at the deadline
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 15 ]; then echo "skipped (budget spent): $*"; return 0; fi
  echo "== $(date +%T) $* (${left}s left)"
  timeout "$left" "$PYTHON" -m dipscope.cli experiment denoise-table --device "${DEVICE:-cuda}" --precision fp32 \
      --profile "${PROFILE:-paper}" --out "$OUTDIR/$1" "${@:2}" > "$OUTDIR/$1.log" 2>&1
  echo "   exit $? ; $(grep -c finished "$OUTDIR/$1.log") runs finished"
}

mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUTDIR/gpu.txt" 2>&1
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" >> "$OUTDIR/gpu.txt" 2>&1
table study-x4 --models dip --runs 2
table study-x4 --models relunet --runs 1
table study-x4 --models linear-128,linear-2048 --runs 1
table study-x4 --models relunet --runs 2
table antialias-x4 --models dip --runs 2 --resize antialias
table study-x2 --models dip --runs 1 --factor 2
table study-distorted-x4 --models dip --runs 1 --resize study-distorted
echo "== $(date +%T) done"
