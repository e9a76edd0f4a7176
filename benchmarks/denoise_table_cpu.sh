#!/usr/bin/env bash
# The denoising table at the study's full settings on a CPU: background sweeps that resume
# across sessions, run from a separate clone at a fixed commit (edits to this tree do not change
# a running sweep), one torch thread per process, two queues (one per core), nice.
#
#   bash benchmarks/denoise_table_cpu.sh start [COMMIT]  # clone at COMMIT (default HEAD) unless there is one; start both queues (one start at a time: flock)
#   bash benchmarks/denoise_table_cpu.sh status          # what runs, what is claimed, how many runs of each kind are finished
#   bash benchmarks/denoise_table_cpu.sh collect         # copy the finished runs and their input pairs into this tree's results/ and rebuild the tables
#   bash benchmarks/denoise_table_cpu.sh stop            # stop the queues and wait for them (runs under way are lost; finished ones stay)
#
# SWEEP (default ../dipscope-sweep) is the clone; DIPSCOPE_DATA (default ../shared/data/images)
# holds the nine images; PYTHON (default .venv/bin/python of this tree) runs the clone's src/;
# OUTDIR (default results/denoise-table, inside the clone) and PROFILE (default paper) may be
# changed to try the script in seconds (PROFILE=smoke OUTDIR=results/smoke SWEEP=/tmp/sweep
# SWEEP_IMAGES="house f16").
# DEADLINE (epoch seconds, e.g. $(date -d 09:30 +%s): when the session ends) makes a queue start
# only the tasks whose estimated minutes end before it, so no run is cut off (MINUTES_relunet,
# MINUTES_linear_2048, MINUTES_antialias, MINUTES_lr1e_4, MINUTES_ftz_parity; whole minutes for a
# 512×512 image, scaled by the image's pixels except for ReLUNet, whose batches are all one size).
#
# The work is one ordered list of tasks, one run each; both queues take the first task that is
# neither finished nor claimed (mkdir, atomic; the claim holds the queue's pid, and `start` drops
# claims whose process is gone). Run N of an image waits until its run N−1 is finished, so the
# queues finish cells rather than start them. In order:
#   relunet      ReLUNet, `area`, fp32 (its bf16 fails parity), two runs an image
#   linear-2048  DIP-Linear-2048 at the study's lr 1e-3, fp32, subnormals flushed (its collapse
#                otherwise makes Adam's step 7× slower), one run
#   antialias    DIP on `antialias` pairs, bf16 (parity measured for DIP), one run: item 3's third resize
#   lr1e-4       DIP-Linear-2048 at our lr 1e-4, fp32, subnormals flushed, one run
#   ftz-parity   DIP-Linear-2048 at lr 1e-4 on house and f16, exact (not flushed), into
#                paper-area-x4-exact/: beside the flushed cells of paper-area-x4/ (benchmarks/table_parity.py;
#                at lr 1e-3 the flushed cells are the untrained output, step 0, before any update)
set -u
ALIVE_PATTERN='experiment denoise-table'
. "$(dirname "$0")/sweep_queues.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
SWEEP=$(realpath -m "${SWEEP:-$HERE/../dipscope-sweep}")
DATA=$(realpath -m "${DIPSCOPE_DATA:-$HERE/../shared/data/images}")
PYTHON=$(realpath -ms "${PYTHON:-$HERE/.venv/bin/python}")
OUTDIR=${OUTDIR:-results/denoise-table}  # relative: inside the clone (and, for collect, this tree)
case $OUTDIR in /*) OUT=$OUTDIR ;; *) OUT=$SWEEP/$OUTDIR ;; esac
PROFILE=${PROFILE:-paper}
DEADLINE=${DEADLINE:-}
IMAGES=(${SWEEP_IMAGES:-house f16 baboon lena peppers kodim01 kodim02 kodim03 kodim12})
KINDS=(relunet linear-2048 antialias lr1e-4 ftz-parity)

kind() {  # kind NAME — sets TABLE (experiment directory), MODEL, RUNS, MINUTES, PER_PIXEL and ARGS for a kind of task
  PER_PIXEL=1
  case $1 in
    relunet)     TABLE=paper-area-x4 MODEL=relunet RUNS=2 MINUTES=${MINUTES_relunet:-56} PER_PIXEL=0
                 ARGS=(--resize area --precision fp32) ;;
    linear-2048) TABLE=paper-area-x4 MODEL=linear-2048 RUNS=1 MINUTES=${MINUTES_linear_2048:-10}
                 ARGS=(--resize area --precision fp32 --flush-denormals) ;;
    antialias)   TABLE=paper-antialias-x4 MODEL=dip RUNS=1 MINUTES=${MINUTES_antialias:-13}
                 ARGS=(--resize antialias --precision bf16) ;;
    lr1e-4)      TABLE=paper-area-x4 MODEL=linear-2048:lr=1e-4 RUNS=1 MINUTES=${MINUTES_lr1e_4:-12}
                 ARGS=(--resize area --precision fp32 --flush-denormals) ;;
    ftz-parity)  TABLE=paper-area-x4-exact MODEL=linear-2048:lr=1e-4 RUNS=1 MINUTES=${MINUTES_ftz_parity:-30}
                 ARGS=(--resize area --precision fp32 --no-baselines) ;;
    *) echo "unknown kind $1" >&2; return 1 ;;
  esac
}

finished() {  # finished KIND IMAGE RUN — the run's run.json is in the clone
  kind "$1" && [ -f "$OUT/$TABLE/$MODEL/$2/run-$3/run.json" ]
}

pixels() {  # pixels IMAGE — width × height of the image's PNG (its IHDR; 0 if unreadable)
  local b
  b=($(od -An -tu1 -j16 -N8 "$DATA/$1.png" 2>/dev/null))
  [ ${#b[@]} = 8 ] || { echo 0; return; }
  echo $(( (b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) * (b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7]) ))
}

fits() {  # fits IMAGE — no deadline, or the task (MINUTES for a 512×512 image) ends before it
  local minutes=$MINUTES p
  if [ "$PER_PIXEL" = 1 ]; then  # DIP-type fits cost in proportion to the pixels; ReLUNet's batches do not
    p=$(pixels "$1"); (( p > 0 )) && minutes=$(( (MINUTES * p + 262143) / 262144 ))
  fi
  [ -z "$DEADLINE" ] || [ $(( $(date +%s) + minutes * 60 )) -le "$DEADLINE" ]
}

next_task() {  # prints and claims the first task this queue may start: "KIND IMAGE RUN"
  local k image run
  for k in "${KINDS[@]}"; do
    kind "$k"
    for image in $(images_of "$k"); do
      for (( run = 0; run < RUNS; run++ )); do
        finished "$k" "$image" "$run" && continue
        (( run > 0 )) && ! finished "$k" "$image" $(( run - 1 )) && break
        fits "$image" || break  # `finished` has set MINUTES and PER_PIXEL for this kind
        claim "$k-$image-run$run" && { echo "$k $image $run"; return 0; }
      done
    done
  done
  return 1
}

images_of() {  # images_of KIND — the images a kind of task covers
  if [ "$1" = ftz-parity ]; then echo house f16; else echo "${IMAGES[@]}"; fi
}

run_task() {  # run_task KIND IMAGE RUN — the denoise-table command for that one run (earlier runs are finished)
  kind "$1"
  echo "$(date -u +%FT%TZ) start $1 $2 run $3"
  (cd "$SWEEP" && OMP_NUM_THREADS=1 PYTHONPATH="$SWEEP/src" PYTHONUNBUFFERED=1 nice "$PYTHON" -m dipscope.cli \
     experiment denoise-table "$DATA/$2.png" --out "$OUT/$TABLE" --models "$MODEL" --runs $(( $3 + 1 )) \
     "${ARGS[@]}" --profile "$PROFILE" --device cpu --threads 1)
  local rc=$?
  # a failed run keeps its claim (no retry loop in this queue's life) and says so to `status`
  [ $rc = 0 ] || echo "exit $rc, see logs/queue*.log" > "$SWEEP/.claims/$1-$2-run$3/failed"
  echo "$(date -u +%FT%TZ) end $1 $2 run $3: exit $rc"
}

case "${1:-}" in
  start)
    exec 9< "$0"  # one `start` at a time: two at once would both find no queue alive and start four
    flock -n 9 || { echo "error: another '$0 start' is under way" >&2; exit 2; }
    for pid in "$SWEEP"/logs/queue*.pid; do
      alive "$pid" && { echo "error: a queue still runs ($pid); '$0 stop' first" >&2; exit 2; }
    done
    if [ -d "$SWEEP" ]; then
      [ -n "${2:-}" ] && [ "$(git -C "$SWEEP" rev-parse HEAD)" != "$(git -C "$HERE" rev-parse "$2")" ] &&
        echo "warning: the clone $SWEEP is at $(git -C "$SWEEP" rev-parse --short HEAD), not $2 (remove it to re-clone)" >&2
    else
      git clone -q "$HERE" "$SWEEP" && git -C "$SWEEP" checkout -q "${2:-HEAD}" || exit 1
    fi
    "$PYTHON" -c "import sys; sys.path.insert(0, '$SWEEP/src'); from dipscope.fit import FitConfig; FitConfig.flush_denormals" 2>/dev/null ||
      { echo "error: the clone's dipscope has no FitConfig.flush_denormals (made before 81e96aa)" >&2; exit 2; }
    mkdir -p "$SWEEP/.claims" "$SWEEP/logs"
    for c in "$SWEEP"/.claims/*; do  # a claim whose process is gone (a stopped queue, a lost session) is free again
      [ -d "$c" ] && ! alive "$c/pid" && rm -rf "$c"
    done
    cp "$0" "$SWEEP/logs/queue.sh"  # the queues read these copies: editing the scripts does not disturb them
    cp "$(dirname "$0")/sweep_queues.sh" "$SWEEP/logs/sweep_queues.sh"
    echo "sweep clone $SWEEP at $(git -C "$SWEEP" log --oneline -1)${DEADLINE:+; deadline $(date -u -d "@$DEADLINE" +%TZ)}"
    for q in 1 2; do
      SWEEP=$SWEEP DIPSCOPE_DATA=$DATA PYTHON=$PYTHON OUTDIR=$OUTDIR PROFILE=$PROFILE DEADLINE=$DEADLINE \
        SWEEP_IMAGES="${IMAGES[*]}" \
        setsid nohup bash "$SWEEP/logs/queue.sh" queue >> "$SWEEP/logs/queue$q.log" 2>&1 < /dev/null 9<&- &
      echo $! > "$SWEEP/logs/queue$q.pid"  # setsid: the queue's own process group
      echo "queue $q: process group $!, log $SWEEP/logs/queue$q.log"
    done ;;
  queue) queue ;;
  status)
    for k in "${KINDS[@]}"; do
      kind "$k"; n=0
      for image in $(images_of "$k"); do for (( run = 0; run < RUNS; run++ )); do
        c=$SWEEP/.claims/$k-$image-run$run
        if [ -f "$c/failed" ]; then echo "failed: $k $image run $run ($(cat "$c/failed"))"
        elif alive "$c/pid" && ! finished "$k" "$image" $run; then echo "running: $k $image run $run (pid $(cat "$c/pid"))"; fi
      done; done
      images=($(images_of "$k"))
      for image in "${images[@]}"; do for (( run = 0; run < RUNS; run++ )); do finished "$k" "$image" $run && n=$((n + 1)); done; done
      echo "$k: $n of $(( ${#images[@]} * RUNS )) runs finished ($TABLE/$MODEL)"
    done
    tail -n 2 "$SWEEP"/logs/queue*.log 2>/dev/null ;;
  collect)
    cd "$HERE" || exit 1
    [ "$OUT" = "$SWEEP/$OUTDIR" ] || { echo "error: collect needs OUTDIR relative to the clone" >&2; exit 2; }
    for run in "$OUT"/paper-*/*/*/run-*; do  # the clone's finished runs into this tree
      [[ $(basename "$run") =~ ^run-[0-9]+$ ]] && [ -f "$run/run.json" ] || continue
      rel=$OUTDIR/${run#"$OUT"/}
      [ -f "$rel/run.json" ] && continue
      rm -rf "$rel"; mkdir -p "$(dirname "$rel")" && cp -r "$run" "$rel" && echo "collected $rel"
    done
    for input in "$OUT"/paper-*/inputs/*; do  # each pair once: a table's inputs grow image by image
      rel=$OUTDIR/${input#"$OUT"/}; table=$(dirname "$(dirname "$rel")")
      [ -f "$input" ] && [ -d "$table" ] || continue
      if [ ! -e "$rel" ]; then mkdir -p "$(dirname "$rel")" && cp "$input" "$rel" && echo "collected $rel"
      elif ! cmp -s "$input" "$rel"; then echo "warning: $rel differs from the clone's; kept this tree's" >&2; fi
    done
    report() { OMP_NUM_THREADS=1 "$PYTHON" -m dipscope.cli experiment denoise-table "${paths[@]}" --profile "$PROFILE" \
                 --device cpu --threads 1 --report-only "$@" | grep -E "runs finished|^\| \*\*mean"; }
    paths=(); for image in "${IMAGES[@]}"; do paths+=("$DATA/$image.png"); done
    [ -d "$OUTDIR/paper-area-x4" ] && report --out "$OUTDIR/paper-area-x4" --resize area --precision bf16 \
      --accept-precision fp32 --models dip,linear-128,linear-2048,linear-2048:lr=1e-4,relunet --runs 2 \
      --runs linear-2048=1 --runs linear-2048:lr=1e-4=1 --flush-denormals
    [ -d "$OUTDIR/paper-antialias-x4/dip" ] && report --out "$OUTDIR/paper-antialias-x4" --resize antialias \
      --precision bf16 --models dip --runs 1
    true ;;
  stop) stop_queues ;;
  *) sed -n '/^set -u/q; 2,$p' "$0"; exit 2 ;;
esac
