#!/usr/bin/env bash
# The denoising table at the study's full settings on a CPU: background sweeps that resume
# across sessions, run from a separate clone at a fixed commit (edits to this tree do not change
# a running sweep), one torch thread per process, two processes (one per core), nice.
#
#   bash benchmarks/denoise_table_cpu.sh start [COMMIT]  # clone at COMMIT (default HEAD) unless there is one; start both queues
#   bash benchmarks/denoise_table_cpu.sh status          # what runs, what is finished
#   bash benchmarks/denoise_table_cpu.sh collect         # copy the finished runs into results/ and rebuild the tables
#   bash benchmarks/denoise_table_cpu.sh stop            # stop the queues (the runs under way are lost; finished ones stay)
#
# SWEEP (default ../dipscope-sweep) is the clone; DIPSCOPE_DATA (default ../shared/data/images)
# holds the nine images; PYTHON (default .venv/bin/python of this tree) runs the clone's src/;
# OUTDIR (default results/denoise-table, inside the clone) and PROFILE (default paper) may be
# changed to try the script in seconds (PROFILE=smoke OUTDIR=/tmp/table SWEEP=/tmp/sweep).
# Queue 1 fits ReLUNet, image by image (two runs each); queue 2 fits DIP-Linear-2048 at the
# study's lr (flushing subnormal floats, which its collapse otherwise makes 7× slower), DIP on `antialias` pairs, DIP-Linear-2048 at lr 1e-4, then takes ReLUNet images
# from the other end. An image's ReLUNet runs are claimed (mkdir, atomic) by one queue only.
# Finished runs are skipped, so `start` after a stop or a lost session resumes where it was.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
SWEEP=${SWEEP:-$HERE/../dipscope-sweep}
DATA=${DIPSCOPE_DATA:-$HERE/../shared/data/images}
PYTHON=${PYTHON:-$HERE/.venv/bin/python}
IMAGES=(house f16 baboon lena peppers kodim01 kodim02 kodim03 kodim12)
OUTDIR=${OUTDIR:-results/denoise-table}
PAPER=(--profile "${PROFILE:-paper}" --device cpu --threads 1)

table() {  # table OUT ARGS… — one resumable denoise-table sweep over the nine images, from the clone
  local out=$1; shift
  (cd "$SWEEP" && OMP_NUM_THREADS=1 PYTHONPATH="$SWEEP/src" PYTHONUNBUFFERED=1 nice "$PYTHON" -m dipscope.cli \
     experiment denoise-table "${paths[@]}" --out "$OUTDIR/$out" "${PAPER[@]}" "$@")
}

relunet() {  # relunet IMAGE… — the ReLUNet runs of each image not claimed by the other queue
  local image
  for image in "$@"; do
    mkdir "$SWEEP/.claims/relunet-$image" 2>/dev/null || continue
    (paths=("$DATA/$image.png"); table paper-area-x4 --models relunet --runs 2 --resize area --precision fp32)
  done
}

queue1() { relunet "${IMAGES[@]}"; }

queue2() {
  table paper-area-x4 --models linear-2048 --runs 1 --resize area --precision fp32 --flush-denormals
  table paper-antialias-x4 --models dip --runs 1 --resize antialias --precision bf16
  table paper-area-x4 --models linear-2048:lr=1e-4 --runs 1 --resize area --precision fp32 --flush-denormals
  local reversed=() i
  for (( i=${#IMAGES[@]}-1; i>=0; i-- )); do reversed+=("${IMAGES[i]}"); done
  relunet "${reversed[@]}"
}

paths=()
for image in "${IMAGES[@]}"; do paths+=("$DATA/$image.png"); done

case "${1:-}" in
  start)
    [ -d "$SWEEP" ] || { git clone -q "$HERE" "$SWEEP" && git -C "$SWEEP" checkout -q "${2:-HEAD}"; } || exit 1
    rm -rf "$SWEEP/.claims"; mkdir -p "$SWEEP/.claims" "$SWEEP/logs"
    echo "sweep clone $SWEEP at $(git -C "$SWEEP" log --oneline -1)"
    export -f table relunet queue1 queue2; export SWEEP DATA PYTHON OUTDIR
    for q in 1 2; do
      # arrays do not cross `export`: each queue rebuilds them from this script's definitions
      setsid nohup bash -c "$(declare -p IMAGES PAPER paths); queue$q" > "$SWEEP/logs/queue$q.log" 2>&1 < /dev/null &
      echo $! > "$SWEEP/logs/queue$q.pid"  # setsid: the queue's own process group
      echo "queue $q: process group $!, log $SWEEP/logs/queue$q.log"
    done ;;
  status)
    pgrep -af "dipscope.cli experiment denoise-table" | sed -E "s@ [^ ]*\.png@@g; s@ .*(--out [^ ]*).*(--models [^ ]*).*@ \1 \2@"
    tail -n 2 "$SWEEP"/logs/queue*.log 2>/dev/null ;;
  collect)
    cd "$HERE" || exit 1
    for run in "$SWEEP"/results/denoise-table/paper-*-x4/*/*/run-*; do  # the clone's results/ into this tree's
      [ -f "$run/run.json" ] || continue
      rel=${run#"$SWEEP"/}
      [ -e "$rel" ] && continue
      mkdir -p "$(dirname "$rel")" && cp -r "$run" "$rel" && echo "collected $rel"
    done
    for inputs in "$SWEEP"/results/denoise-table/paper-*-x4/inputs; do
      rel=${inputs#"$SWEEP"/}; [ -d "$(dirname "$rel")" ] && [ ! -e "$rel" ] && cp -r "$inputs" "$rel"
    done
    SWEEP=$HERE
    [ -d results/denoise-table/paper-area-x4 ] && table paper-area-x4 --resize area --precision bf16 --accept-precision fp32 \
      --models dip,linear-128,linear-2048,linear-2048:lr=1e-4,relunet --runs 2 --runs linear-2048=1 \
      --runs linear-2048:lr=1e-4=1 --flush-denormals --report-only | grep -E "runs finished|^\| \*\*mean"
    [ -d results/denoise-table/paper-antialias-x4/dip ] && table paper-antialias-x4 --resize antialias --precision bf16 \
      --models dip --runs 1 --report-only | grep -E "runs finished|^\| \*\*mean"
    true ;;
  stop)
    for pid in "$SWEEP"/logs/queue*.pid; do [ -f "$pid" ] && kill -TERM -- "-$(cat "$pid")" 2>/dev/null; rm -f "$pid"; done; true ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
