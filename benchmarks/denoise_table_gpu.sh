#!/usr/bin/env bash
# The denoising table at the study's full settings on one CUDA GPU, within a time budget.
#   BUDGET_S=480 OUTDIR=results/denoise-table DIPSCOPE_DATA=/path/to/images bash benchmarks/denoise_table_gpu.sh
# Sweeps run as concurrent processes (the study's networks at 128×128 leave an H100 mostly
# idle: a ReLUNet step is launch-bound, ~2.8 ms, so its 30 000 steps take ~85 s alone); ReLUNet
# gets one process per image. Every sweep resumes: run the script again to continue, then
# rebuild the combined table with `dipscope experiment denoise-table --report-only …`.
# PYTHON defaults to python3 with src/ on the path (no install needed); DEVICE and PROFILE
# (cuda, paper) may be changed to try the script on a CPU (DEVICE=cpu PROFILE=smoke).
set -u
BUDGET_S=${BUDGET_S:-480}
OUTDIR=${OUTDIR:-results/denoise-table}
PYTHON=${PYTHON:-python3}
IMAGES=${IMAGES:-baboon f16 house kodim01 kodim02 kodim03 kodim12 lena peppers}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
deadline=$(( $(date +%s) + BUDGET_S ))
mkdir -p "$OUTDIR/logs"

sweep() {  # sweep LOGNAME SUBDIR ARGS… — one resumable sweep in the background, cut at the deadline
  local log=$1 sub=$2; shift 2
  ( timeout $(( deadline - $(date +%s) )) "$PYTHON" -m dipscope.cli experiment denoise-table \
      --device "${DEVICE:-cuda}" --precision fp32 --profile "${PROFILE:-paper}" --out "$OUTDIR/$sub" "$@" \
      > "$OUTDIR/logs/$log.log" 2>&1; echo "$log: exit $?" >> "$OUTDIR/logs/exits.txt" ) &
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUTDIR/gpu.txt" 2>&1
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" >> "$OUTDIR/gpu.txt" 2>&1
# issue 15: the reproduction is made on `area` pairs (paper-area-x4: all four models, 2 runs, plus
# DIP-Linear-2048 at lr 1e-4, ours); the study script's own `study` resize is kept beside it (DIP).
sweep dip-area paper-area-x4 --models dip --runs 2 --resize area
sweep linear-area paper-area-x4 --models linear-128,linear-2048,linear-2048:lr=1e-4 --runs 2 --resize area
for image in $IMAGES; do
  sweep "relunet-$image" paper-area-x4 "$DIPSCOPE_DATA/$image.png" --models relunet --runs 2 --resize area
done
sweep dip-study paper-study-x4 --models dip --runs 2
wait
echo "$(date +%T) done"; sort "$OUTDIR/logs/exits.txt"
