#!/usr/bin/env bash
# Claims 1, 2, 5 and 6 at their strongest test on a CPU: background sweeps that resume across
# sessions, run from a separate clone at a fixed commit (edits to this tree do not change a
# running sweep), one torch thread per process, two queues (one per core), nice, fp32, and no
# divergence recovery (every run records `recoveries` in its run.json).
#
#   bash benchmarks/claims_cpu.sh start [COMMIT]  # clone at COMMIT (default HEAD) unless there is one; start both queues
#   bash benchmarks/claims_cpu.sh status          # what runs, what failed, how many tasks of each kind are finished
#   bash benchmarks/claims_cpu.sh collect         # copy the finished runs into this tree's results/ and rebuild the reports of what is finished
#   bash benchmarks/claims_cpu.sh stop            # stop the queues and wait for them (runs under way are lost; finished ones stay)
#
# SWEEP (default ../dipscope-claims) is the clone; DIPSCOPE_DATA (default ../shared/data/images)
# holds the images; PYTHON (default .venv/bin/python of this tree) runs the clone's src/;
# PROFILE_PAPER (default paper) and PROFILE_CPU (default cpu) and STEPS_* may be changed to try
# the script in seconds (PROFILE_PAPER=smoke PROFILE_CPU=smoke SWEEP=/tmp/claims SWEEP_IMAGES="house f16"
# FRACTIONS="0.2 1.0" STEPS_trajectory=20 STEPS_relunet=40).
# DEADLINE (epoch seconds, e.g. $(date -d 09:30 +%s)) makes a queue start only the tasks whose
# estimated minutes (MINUTES_<kind>) end before it, so no run is cut off.
#
# The work is one ordered list of tasks, cheapest evidence first; both queues take the first task
# that is neither finished nor claimed (mkdir, atomic; `start` drops claims whose process is gone).
#
# CPU-hour estimates. "niced": step times measured for this script with a few steps each
# (benchmarks/paper_step_speed.py and the same for 48 channels), nice 19, one thread, on a 2-core
# AMD EPYC (no native bf16), torch 2.13.0+cpu, fp32, while the machine ran at a load of ~10
# (other jobs): DIP-256 5.6 s a step on 128², 16.6 s on 256²; 48-channel DIP 4.9 s on 128²;
# ReLUNet 435 ms; DIP-Linear-128 84 ms. They are niced estimates on a busy machine, upper
# bounds. "quiet": the committed quiet step times (DIP-256 879 ms on 128², Intel Xeon with AMX;
# ReLUNet 93 ms, AMD EPYC; results/denoise-table/README.md) and the committed cpu-profile wall
# times. Two queues halve the wall time. MINUTES_<kind> (per task, for DEADLINE) default to the
# niced figures.
#
#   kind             claim  task (one command each)                                tasks  CPU h niced  quiet
#   upsampling       6      Barbara 128² crop, 48-ch DIP, 500 steps: the 3 modes at  3      9.5          ~0.5
#                           stride 2 (5 levels) and strides 2,4,8,16,32 at one level
#                           each (--stride-levels 1: only the stride varies), a seed
#   lowfreq-dip      5      Barbara 128² crop, 64-ch DIP, 1 000 steps, low-frequency 3      8.3          ~0.6
#                           and white noise; one noise draw = network seed
#   bias-linear      1      one of the 9 images ×4 `area`, DIP-Linear-128, 1 000 st. 9      0.2          0.1
#   bias-dip         1      the same, 256-ch DIP (the study's), 1 000 steps          9      16           2.5
#   bias-relunet     1      the same, ReLUNet, 30 000 steps                          9      33           7
#   lowfreq-relunet  5      Barbara crop, ReLUNet 50 000 steps (snapshots at 0,       3      36           7.8
#                           10 000 and 50 000), both noises; one draw = seed
#   trajectory       2      one pattern fraction (our generator, 256², lines at 0.5  18     330          70
#                           c/px in the top-left F×F square), 256-ch DIP, two runs of
#                           STEPS_trajectory = 2 000 steps; seed pair (0,1) over all
#                           fractions (extremes first), then pair (2,3)
#
# Claims 1, 5 and 6 together: ~100 CPU h niced, ~18 quiet. Claim 2 at 256 channels is the bulk:
# a GPU job (its step is ~1 % of this) rather than a CPU sweep, or run it last.
set -u
ALIVE_PATTERN='dipscope.cli experiment'
. "$(dirname "$0")/sweep_queues.sh"
HERE=$(cd "$(dirname "$0")/.." && pwd)
SWEEP=$(realpath -m "${SWEEP:-$HERE/../dipscope-claims}")
DATA=$(realpath -m "${DIPSCOPE_DATA:-$HERE/../shared/data/images}")
PYTHON=$(realpath -ms "${PYTHON:-$HERE/.venv/bin/python}")
PAPER=${PROFILE_PAPER:-paper}
CPU=${PROFILE_CPU:-cpu}
DEADLINE=${DEADLINE:-}
IMAGES=(${SWEEP_IMAGES:-house f16 baboon lena peppers kodim01 kodim02 kodim03 kodim12})
FRACTIONS=(${FRACTIONS:-0.2 1.0 0.6 0.4 0.8 0.3 0.5 0.7 0.9})  # extremes first
STEPS_trajectory=${STEPS_trajectory:-2000}   # twice the study's 1 000: at 32 channels 1 000 cut 0.2 and 0.3 off
STEPS_relunet=${STEPS_relunet:-50000}        # the poster's last ReLUNet snapshot
KINDS=(upsampling lowfreq-dip bias-linear bias-dip bias-relunet lowfreq-relunet trajectory)
R=results  # every kind writes under results/ of the clone; collect copies to the same path here
COMMON=(--device cpu --threads 1 --precision fp32)

kind() {  # kind NAME — sets ITEMS (one task each), MINUTES and the command pieces of a kind
  case $1 in
    upsampling)      ITEMS="0 1 2" MINUTES=${MINUTES_upsampling:-190} ;;
    lowfreq-dip)     ITEMS="0 1 2" MINUTES=${MINUTES_lowfreq_dip:-170} ;;
    bias-linear)     ITEMS="${IMAGES[*]}" MINUTES=${MINUTES_bias_linear:-3} ;;
    bias-dip)        ITEMS="${IMAGES[*]}" MINUTES=${MINUTES_bias_dip:-140} ;;
    bias-relunet)    ITEMS="${IMAGES[*]}" MINUTES=${MINUTES_bias_relunet:-220} ;;
    lowfreq-relunet) ITEMS="0 1 2" MINUTES=${MINUTES_lowfreq_relunet:-730} ;;
    trajectory)      ITEMS=""; for p in 0 2; do for f in "${FRACTIONS[@]}"; do ITEMS+="$p:$f "; done; done
                     MINUTES=${MINUTES_trajectory:-1110} ;;
    *) echo "unknown kind $1" >&2; return 1 ;;
  esac
}

command_of() {  # command_of KIND ITEM — sets CMD (the experiment's arguments) and DONE (its finished run.json files)
  local item=$2 model
  case $1 in
    upsampling)
      CMD=(upsampling "$DATA/barbara.png" --out $R/upsampling-seeds --profile "$CPU" --stride-levels 1 --seed "$item")
      DONE=($SWEEP/$R/upsampling-seeds/{nearest-s2,bilinear-s2,transposed-s2,bilinear-s{2,4,8,16,32}-L1}/seed-$item/barbara/run.json) ;;
    lowfreq-dip|lowfreq-relunet)
      model=${1#lowfreq-}
      CMD=(lowfreq-noise "$DATA/barbara.png" --out $R/lowfreq-noise-$model/seed-$item --model "$model" --profile "$CPU" --seed "$item")
      [ "$model" = relunet ] && CMD+=(--steps "$STEPS_relunet")
      DONE=($SWEEP/$R/lowfreq-noise-$model/seed-$item/$model/barbara/{lowfreq,white}/run.json) ;;
    bias-*)
      model=${1#bias-}; [ "$model" = linear ] && model=linear-128
      CMD=(bias "$DATA/$item.png" --out $R/bias-paper --model "$model" --profile "$PAPER" --resize area)
      DONE=($SWEEP/$R/bias-paper/$model/$item/run.json) ;;
    trajectory)
      CMD=(trajectory "pattern:${item#*:}" --out $R/trajectory-paper/pair-${item%%:*} --profile "$PAPER"
           --steps "$STEPS_trajectory" --seed "${item%%:*}")
      DONE=($SWEEP/$R/trajectory-paper/pair-${item%%:*}/dip/pattern-$(printf %.2f "${item#*:}")/run.json) ;;
  esac
}

finished() {  # finished KIND ITEM — every run of the task is in the clone
  local f
  command_of "$1" "$2"
  for f in "${DONE[@]}"; do [ -f "$f" ] || return 1; done
}

fits() {  # no deadline, or the task ends before it
  [ -z "$DEADLINE" ] || [ $(( $(date +%s) + MINUTES * 60 )) -le "$DEADLINE" ]
}

next_task() {  # prints and claims the first task this queue may start: "KIND ITEM"
  local k item
  for k in "${KINDS[@]}"; do
    kind "$k"
    for item in $ITEMS; do
      finished "$k" "$item" && continue
      fits || break
      claim "$k-${item/:/-}" && { echo "$k $item"; return 0; }
    done
  done
  return 1
}

run_task() {  # run_task KIND ITEM
  command_of "$1" "$2"
  echo "$(date -u +%FT%TZ) start $1 $2: dipscope experiment ${CMD[*]} ${COMMON[*]}"
  (cd "$SWEEP" && OMP_NUM_THREADS=1 PYTHONPATH="$SWEEP/src" PYTHONUNBUFFERED=1 nice "$PYTHON" -m dipscope.cli \
     experiment "${CMD[@]}" "${COMMON[@]}" > /dev/null)
  local rc=$?
  [ $rc = 0 ] || echo "exit $rc, see logs/queue*.log" > "$SWEEP/.claims/$1-${2/:/-}/failed"
  echo "$(date -u +%FT%TZ) end $1 $2: exit $rc"
}

report() {  # report ARGS… — rebuild one experiment's summary from finished runs (all its tasks are finished)
  OMP_NUM_THREADS=1 PYTHONPATH="$HERE/src" "$PYTHON" -m dipscope.cli experiment "$@" "${COMMON[@]}" > /dev/null &&
    echo "report: ${*:1:3}"
}

collect() {
  cd "$HERE" || exit 1
  local run rel k item paths seeds model pair done_f
  while IFS= read -r run; do  # every finished run directory of the clone, into this tree
    run=$(dirname "$run"); rel=${run#"$SWEEP"/}
    [ -f "$rel/run.json" ] && continue
    rm -rf "$rel"; mkdir -p "$(dirname "$rel")" && cp -r "$run" "$rel" && echo "collected $rel"
  done < <(find "$SWEEP/$R"/{upsampling-seeds,lowfreq-noise-dip,lowfreq-noise-relunet,bias-paper,trajectory-paper} \
             -name run.json 2>/dev/null)
  # reports over what is finished: every command below finds its runs done and only writes the summary
  seeds=0; while finished upsampling $seeds; do seeds=$((seeds + 1)); done
  (( seeds > 0 )) && report upsampling "$DATA/barbara.png" --out $R/upsampling-seeds --profile "$CPU" \
    --stride-levels 1 --seed 0 --seeds $seeds
  for model in dip relunet; do for item in 0 1 2; do
    finished lowfreq-$model $item && { command_of lowfreq-$model $item; report "${CMD[@]}"; }
  done; done
  for model in dip linear relunet; do
    paths=(); for item in "${IMAGES[@]}"; do finished bias-$model "$item" && paths+=("$DATA/$item.png"); done
    [ "$model" = linear ] && model=linear-128
    (( ${#paths[@]} )) && report bias "${paths[@]}" --out $R/bias-paper --model $model --profile "$PAPER" --resize area &&
      for f in summary.md summary.csv; do mv "$R/bias-paper/$f" "$R/bias-paper/${f/summary/summary-$model}"; done
  done
  paths=()  # the three models side by side (summary.md, staircase figures) on the images all three finished
  for item in "${IMAGES[@]}"; do
    finished bias-dip "$item" && finished bias-linear "$item" && finished bias-relunet "$item" && paths+=("$DATA/$item.png")
  done
  (( ${#paths[@]} )) && report bias "${paths[@]}" --out $R/bias-paper --model dip --model linear-128 --model relunet \
    --profile "$PAPER" --resize area
  for pair in 0 2; do
    done_f=(); for item in "${FRACTIONS[@]}"; do finished trajectory "$pair:$item" && done_f+=("$item"); done
    (( ${#done_f[@]} )) && report trajectory "pattern:$(IFS=,; echo "${done_f[*]}")" --out $R/trajectory-paper/pair-$pair \
      --profile "$PAPER" --steps "$STEPS_trajectory" --seed $pair
  done
  true
}

case "${1:-}" in
  start)
    exec 9< "$0"  # one `start` at a time
    flock -n 9 || { echo "error: another '$0 start' is under way" >&2; exit 2; }
    for pid in "$SWEEP"/logs/queue*.pid; do
      alive "$pid" && { echo "error: a queue still runs ($pid); '$0 stop' first" >&2; exit 2; }
    done
    [ -f "$DATA/barbara.png" ] || { echo "error: no barbara.png in $DATA (set DIPSCOPE_DATA)" >&2; exit 2; }
    if [ -d "$SWEEP" ]; then
      [ -n "${2:-}" ] && [ "$(git -C "$SWEEP" rev-parse HEAD)" != "$(git -C "$HERE" rev-parse "$2")" ] &&
        echo "warning: the clone $SWEEP is at $(git -C "$SWEEP" rev-parse --short HEAD), not $2 (remove it to re-clone)" >&2
    else
      git clone -q "$HERE" "$SWEEP" && git -C "$SWEEP" checkout -q "${2:-HEAD}" || exit 1
    fi
    "$PYTHON" -c "import sys; sys.path.insert(0, '$SWEEP/src'); from dipscope.spectral import band_magnitude_error" 2>/dev/null ||
      { echo "error: the clone's dipscope has no band_magnitude_error (made before the claims sweep)" >&2; exit 2; }
    mkdir -p "$SWEEP/.claims" "$SWEEP/logs"
    for c in "$SWEEP"/.claims/*; do
      [ -d "$c" ] && ! alive "$c/pid" && rm -rf "$c"
    done
    cp "$0" "$SWEEP/logs/queue.sh"  # the queues read these copies: editing the scripts does not disturb them
    cp "$(dirname "$0")/sweep_queues.sh" "$SWEEP/logs/sweep_queues.sh"
    echo "sweep clone $SWEEP at $(git -C "$SWEEP" log --oneline -1)${DEADLINE:+; deadline $(date -u -d "@$DEADLINE" +%TZ)}"
    for q in 1 2; do
      SWEEP=$SWEEP DIPSCOPE_DATA=$DATA PYTHON=$PYTHON PROFILE_PAPER=$PAPER PROFILE_CPU=$CPU DEADLINE=$DEADLINE \
        SWEEP_IMAGES="${IMAGES[*]}" FRACTIONS="${FRACTIONS[*]}" STEPS_trajectory=$STEPS_trajectory \
        STEPS_relunet=$STEPS_relunet \
        setsid nohup bash "$SWEEP/logs/queue.sh" queue >> "$SWEEP/logs/queue$q.log" 2>&1 < /dev/null 9<&- &
      echo $! > "$SWEEP/logs/queue$q.pid"
      echo "queue $q: process group $!, log $SWEEP/logs/queue$q.log"
    done ;;
  queue) queue ;;
  status)
    for k in "${KINDS[@]}"; do
      kind "$k"; n=0; total=0
      for item in $ITEMS; do
        total=$((total + 1)); c=$SWEEP/.claims/$k-${item/:/-}
        if finished "$k" "$item"; then n=$((n + 1))
        elif [ -f "$c/failed" ]; then echo "failed: $k $item ($(cat "$c/failed"))"
        elif alive "$c/pid"; then echo "running: $k $item (pid $(cat "$c/pid"))"; fi
      done
      echo "$k: $n of $total tasks finished"
    done
    tail -n 2 "$SWEEP"/logs/queue*.log 2>/dev/null ;;
  collect) collect ;;
  stop) stop_queues ;;
  *) sed -n '/^set -u/q; 2,$p' "$0"; exit 2 ;;
esac
