# The queue machinery shared by the background sweep scripts (claims_cpu.sh, denoise_table_cpu.sh):
# sourced, not run. The script defines next_task (prints and claims "TASK ARGS…") and run_task,
# and sets SWEEP (the clone) and ALIVE_PATTERN (what a live queue's or job's command line holds).

claim() {  # claim TASK — true for the one queue whose mkdir made the claim
  mkdir "$SWEEP/.claims/$1" 2>/dev/null && echo $$ > "$SWEEP/.claims/$1/pid"
}

queue() {  # run the first task this queue may start, again and again
  local task
  while task=$(next_task); do run_task $task; done
  echo "$(date -u +%FT%TZ) nothing left that this queue may start${DEADLINE:+ before the deadline}"
}

alive() {  # alive PIDFILE — its process lives and is a queue or a sweep job (not a reused pid, not a zombie)
  local pid
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qE "logs/queue\.sh|$ALIVE_PATTERN" &&
    ! grep -qE '^State:\s+Z' "/proc/$pid/status" 2>/dev/null
}

stop_queues() {  # stop every queue's process group; the run under way writes nothing half-done, so wait (up to 2 min)
  local pid group i
  for pid in "$SWEEP"/logs/queue*.pid; do
    [ -f "$pid" ] || continue
    group=$(cat "$pid")
    alive "$pid" && kill -TERM -- "-$group" 2>/dev/null
    for (( i = 0; i < 120; i++ )); do pgrep -g "$group" > /dev/null || break; sleep 1; done
    rm -f "$pid"
  done; true
}
