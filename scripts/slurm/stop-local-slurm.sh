#!/usr/bin/env bash
# Stop the single-node SLURM that start-local-slurm.sh started: each daemon by the PID in its PID
# file under $MIXMERGE_SLURM_DIR/pids (default /tmp/mixmerge-slurm), in reverse start order,
# SIGTERM, then SIGKILL after 15 s. A PID that no longer runs the expected program is skipped.
#   bash scripts/slurm/stop-local-slurm.sh [--purge]
# Also removes the /etc/slurm files the start script wrote. --purge deletes the state directory
# too (job state, accounting database, logs). Packages stay installed.
set -uo pipefail
STATE=${MIXMERGE_SLURM_DIR:-/tmp/mixmerge-slurm}
MARKER="written by mixmerge scripts/slurm/start-local-slurm.sh"
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1

pid_of() {  # pid_of NAME PROGRAM-REGEX: the PID in NAME.pid if it still runs that program
  local pidfile=$STATE/pids/$1.pid pid
  [ -e "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 < "$pidfile" 2>/dev/null)
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qE "$2" "/proc/$pid/comm" && echo "$pid"
}

stop() {  # stop NAME:REGEX...: SIGTERM to each, then wait for all of them together
  local spec name pid i pids=() names=()
  for spec in "$@"; do
    name=${spec%%:*}
    if pid=$(pid_of "$name" "${spec#*:}"); then
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid") names+=("$name")
    fi
    rm -f "$STATE/pids/$name.pid"
  done
  for ((i = 0; i < 75; i++)); do
    local left=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if [ -d "/proc/${pids[$i]}" ]; then
      echo "stop-local-slurm.sh: ${names[$i]} (pid ${pids[$i]}) ignored SIGTERM; sending SIGKILL" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null
    fi
    echo "stopped ${names[$i]} (pid ${pids[$i]})"
  done
}

# Jobs still queued or running (a test that timed out) are cancelled first, so no job process
# outlives the cluster. Only this cluster's jobs: its slurmctld is the one in our PID file.
if pid_of slurmctld slurmctld >/dev/null && command -v squeue >/dev/null; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    echo "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for ((i = 0; i < 50; i++)); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

# Reverse start order, in three steps: the SLURM daemons, then accounting, then its database and
# munge (slurmctld and slurmdbd still flush their state on SIGTERM).
stop slurmd:slurmd slurmctld:slurmctld
stop slurmdbd:slurmdbd
stop "mariadb:mariadbd|mysqld" munged:munged

# Take the configuration away too (start-local-slurm.sh writes it anew): with a slurm.conf but no
# slurmctld, every `scontrol` call waits 10+ s for the controller, and snakemake-executor-plugin-
# slurm calls `scontrol show config` whenever Snakemake starts, even for local runs.
for f in slurm.conf gres.conf slurmdbd.conf; do
  [ -e "/etc/slurm/$f" ] && grep -q "$MARKER" "/etc/slurm/$f" && rm -f "/etc/slurm/$f"
done
if [ "$PURGE" -eq 1 ]; then
  case $STATE in /|"") ;; *) rm -rf "$STATE" && echo "removed $STATE" ;; esac
fi
exit 0
