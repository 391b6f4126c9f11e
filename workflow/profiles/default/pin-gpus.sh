#!/usr/bin/env bash
# pin-gpus.sh N COMMAND...: run COMMAND on N GPUs of its own (sets CUDA_VISIBLE_DEVICES).
#
# Snakemake's `gpu` resource caps how many GPUs running jobs use in total, but on one machine it
# never says which ones. A GPU rule's shell command starts with
#     bash {workflow.basedir}/workflow/profiles/default/pin-gpus.sh {resources.gpu} mixmerge ...
# and this script picks N devices no other job holds: one lock file per device
# (${MIXMERGE_GPU_LOCK_DIR:-/tmp/mixmerge-gpu-locks-$UID}/gpu<id>.lock), taken all at once or not
# at all (no deadlock between two jobs that each hold part of what they need). The locks are
# held by file descriptors that COMMAND inherits, so they are released when COMMAND and all its
# children exit, even if they crash; no cleanup is ever needed.
#
# Devices to choose from: CUDA_VISIBLE_DEVICES if set when Snakemake started (a subset of the
# box), else every GPU nvidia-smi lists. COMMAND runs unchanged when N is 0, when there is no
# GPU (CPU-only box: the tiny profile), or inside a SLURM job (SLURM already set the devices).
set -euo pipefail
n=${1:?usage: pin-gpus.sh N COMMAND...}
shift
[ $# -gt 0 ] || { echo "usage: pin-gpus.sh N COMMAND..." >&2; exit 2; }

if [ "$n" -le 0 ] || [ -n "${SLURM_JOB_ID:-}" ]; then
  exec "$@"
fi
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  IFS=, read -r -a pool <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi >/dev/null 2>&1; then
  mapfile -t pool < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
else
  pool=()
fi
if [ ${#pool[@]} -eq 0 ]; then
  exec "$@"   # no GPU here: the job runs on the CPU
fi
if [ "$n" -gt ${#pool[@]} ]; then
  echo "pin-gpus.sh: the job asks for $n GPUs but only ${#pool[@]} exist (${pool[*]})" >&2
  exit 1
fi

lock_dir=${MIXMERGE_GPU_LOCK_DIR:-/tmp/mixmerge-gpu-locks-$(id -u)}
mkdir -p "$lock_dir"
waited=0
while :; do
  got=() fds=()
  for dev in "${pool[@]}"; do
    exec {fd}>"$lock_dir/gpu${dev// /}.lock"
    if flock -n "$fd"; then
      got+=("${dev// /}") fds+=("$fd")
      [ ${#got[@]} -eq "$n" ] && break
    else
      exec {fd}>&-
    fi
  done
  [ ${#got[@]} -eq "$n" ] && break
  for fd in "${fds[@]}"; do exec {fd}>&-; done   # all or nothing: give back and retry
  if [ "$waited" -eq 0 ]; then
    echo "pin-gpus.sh: waiting for $n free GPU(s) of ${#pool[@]} (is resources.gpu larger than the box?)" >&2
    waited=1
  fi
  sleep "0.$((RANDOM % 9 + 1))"
done
export CUDA_VISIBLE_DEVICES
CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${got[*]}")
echo "pin-gpus.sh: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES" >&2
exec "$@"
