#!/usr/bin/env bash
# Install (once) and start a real single-node SLURM on localhost, for testing the workflow's SLURM
# profile on any Debian/Ubuntu machine, GPU or not: munge, MariaDB (Unix socket only), slurmdbd,
# slurmctld and slurmd, started by hand (no systemd, no cgroups), with fake GPUs so that GPU
# requests are submitted, scheduled and accounted like on a real cluster.
#
#   sudo bash scripts/slurm/start-local-slurm.sh [--gpus N] [--account NAME] [--user NAME]...
#   sudo bash scripts/slurm/stop-local-slurm.sh  [--purge]
#
# Idempotent: packages are installed only when missing, and a cluster that is already up is left
# as it is. Every daemon writes its PID file under $MIXMERGE_SLURM_DIR/pids (default
# /tmp/mixmerge-slurm); stop-local-slurm.sh stops them by those PIDs, nothing else.
# Writes /etc/slurm/{slurm,gres,slurmdbd}.conf (job steps read the default path) and refuses to
# touch files there that it did not write. Test machines only: root owns everything.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${MIXMERGE_SLURM_DIR:-/tmp/mixmerge-slurm}
CLUSTER=${MIXMERGE_SLURM_CLUSTER:-mixmerge}
ACCOUNT=${MIXMERGE_SLURM_ACCOUNT:-mixmerge-test}
GPUS=${MIXMERGE_SLURM_GPUS:-2}
GPU_TYPE=fake
CPU_PARTITION=${MIXMERGE_SLURM_CPU_PARTITION:-cpu}
GPU_PARTITION=${MIXMERGE_SLURM_GPU_PARTITION:-gpu}
CTLD_PORT=${MIXMERGE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${MIXMERGE_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${MIXMERGE_SLURM_DBD_PORT:-6819}
INSTALL=1
USERS=()
MARKER="written by mixmerge scripts/slurm/start-local-slurm.sh"
ETC=/etc/slurm
MYSQL_SOCKET=/run/mysqld/mysqld.sock   # libmariadb's default: slurmdbd connects here
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --gpus) GPUS=$2; shift 2 ;;
    --account) ACCOUNT=$2; shift 2 ;;
    --user) USERS+=("$2"); shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "start-local-slurm.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }
[ "$GPUS" -ge 1 ] 2>/dev/null || { echo "--gpus must be >= 1" >&2; exit 2; }
USERS+=(root)
[ -n "${SUDO_USER:-}" ] && USERS+=("$SUDO_USER")

T0=${EPOCHREALTIME/[.,]/}
elapsed() { local us=$(( ${EPOCHREALTIME/[.,]/} - T0 )); printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10)); }
log() { echo "[local-slurm +$(elapsed)s] $*"; }

alive() {  # alive NAME: the PID in pids/NAME.pid runs the expected program
  local pidfile=$STATE/pids/$1.pid pid
  [ -s "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 < "$pidfile")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  case $1 in  # guard against a recycled PID
    mariadb) grep -qE 'mariadbd|mysqld' "/proc/$pid/comm" ;;
    *) grep -q "$1" "/proc/$pid/comm" ;;
  esac
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "start-local-slurm.sh: timed out after ${limit}s waiting for $what; logs in $STATE/log" >&2
      tail -n 20 "$STATE"/log/*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

# ---- 1. packages (only what is missing) -----------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$INSTALL" -eq 1 ] || { echo "missing packages: ${missing[*]} (run without --no-install)" >&2; exit 1; }
  log "installing ${missing[*]}"
  # Package scripts must not start the daemons (no systemd here; we start them below).
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  trap - EXIT
  log "packages installed"
fi

# ---- 2. already up? -------------------------------------------------------------------------
if alive munged && alive mariadb && alive slurmdbd && alive slurmctld && alive slurmd \
   && scontrol ping 2>/dev/null | grep -q UP; then
  log "already running (state in $STATE)"
  sinfo -N -o '%N %T %c %m %G' 2>/dev/null || true
  exit 0
fi

# ---- 3. configuration -----------------------------------------------------------------------
mkdir -p "$STATE"/{pids,log,slurmctld,slurmd,dev} "$ETC"
for f in slurm.conf gres.conf slurmdbd.conf; do
  if [ -e "$ETC/$f" ] && ! grep -q "$MARKER" "$ETC/$f"; then
    echo "start-local-slurm.sh: $ETC/$f exists and was not written by this script; not touching it" >&2
    exit 1
  fi
done
CPUS=$(nproc)
# Leave 1 GiB to the system; slurmd drains a node that claims more memory than it has.
MEM_MB=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "$STATE/dev/fakegpu$i"; done
render() {
  sed -e "s|@MARKER@|$MARKER|g" -e "s|@STATE@|$STATE|g" -e "s|@CLUSTER@|$CLUSTER|g" \
      -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" -e "s|@GPUS@|$GPUS|g" \
      -e "s|@GPU_MAX@|$((GPUS - 1))|g" -e "s|@GPU_TYPE@|$GPU_TYPE|g" \
      -e "s|@CPU_PARTITION@|$CPU_PARTITION|g" -e "s|@GPU_PARTITION@|$GPU_PARTITION|g" \
      -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
      -e "s|@DBD_PORT@|$DBD_PORT|g" "$HERE/$1.in" > "$ETC/$1"
}
render slurm.conf
render gres.conf
render slurmdbd.conf
chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a config others can read
log "config: $ETC/slurm.conf (node localhost: $CPUS CPUs, ${MEM_MB} MB, $GPUS fake GPUs)"

# ---- 4. munge -------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --keyfile /etc/munge/munge.key
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! alive munged; then
  # munged runs as munge: its PID file and log live in its own directories, linked from $STATE.
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid --force
  ln -sfn /run/munge/munged.pid "$STATE/pids/munged.pid"
  ln -sfn /var/log/munge/munged.log "$STATE/log/munged.log"
  wait_for 10 munge bash -c 'munge -n | unmunge'
fi
log "munged up"

# ---- 5. MariaDB on a Unix socket ------------------------------------------------------------
DB=$STATE/mysql
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ ! -d "$DB/mysql" ]; then
  mkdir -p "$DB" && chown mysql:mysql "$DB"
  mariadb-install-db --no-defaults --user=mysql --datadir="$DB" --skip-test-db \
    --auth-root-authentication-method=socket > "$STATE/log/mariadb-install.log" 2>&1
fi
if ! alive mariadb; then
  if [ -S "$MYSQL_SOCKET" ] && mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; then
    echo "start-local-slurm.sh: another MariaDB/MySQL already listens on $MYSQL_SOCKET" >&2; exit 1
  fi
  touch "$STATE/log/mariadb.log" && chown mysql:mysql "$STATE/log/mariadb.log"
  rm -f /run/mysqld/mariadb.pid
  # --no-defaults: ignore /etc/mysql; small buffers, no networking.
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$MYSQL_SOCKET" \
    --skip-networking --pid-file=/run/mysqld/mariadb.pid --log-error="$STATE/log/mariadb.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=48M --skip-log-bin \
    --innodb-lock-wait-timeout=900 < /dev/null > /dev/null 2>&1 &
  wait_for 30 MariaDB mariadb-admin --socket="$MYSQL_SOCKET" ping
  wait_for 10 "MariaDB PID file" test -s /run/mysqld/mariadb.pid
  ln -sfn /run/mysqld/mariadb.pid "$STATE/pids/mariadb.pid"
fi
log "MariaDB up (socket $MYSQL_SOCKET)"

# ---- 6. slurmdbd, then the accounts ---------------------------------------------------------
if ! alive slurmdbd; then
  /usr/sbin/slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
fi
log "slurmdbd up"
sacctmgr -n list cluster format=cluster%-40 | grep -qw "$CLUSTER" \
  || sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n list account format=account%-40 | grep -qw "$ACCOUNT" \
  || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="mixmerge tests" Organization=mixmerge >/dev/null
for u in $(printf '%s\n' "${USERS[@]}" | sort -u); do
  sacctmgr -n list assoc user="$u" account="$ACCOUNT" format=user%-40 | grep -qw "$u" \
    || sacctmgr -i add user "$u" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
done
log "accounting: cluster $CLUSTER, account $ACCOUNT, users $(printf '%s ' "${USERS[@]}" | xargs -n1 | sort -u | xargs)"

# ---- 7. slurmctld + slurmd ------------------------------------------------------------------
alive slurmctld || /usr/sbin/slurmctld
wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP'
alive slurmd || /usr/sbin/slurmd -N localhost
node_idle() { sinfo -h -N -n localhost -o %T | grep -qx idle; }
wait_for 60 "node localhost to be idle" node_idle
log "ready: $(sinfo -h -N -p "$CPU_PARTITION" -o "%N %T cpus=%c mem=%mMB gres=%G")"
echo "partitions: $CPU_PARTITION (default), $GPU_PARTITION; account: $ACCOUNT; stop with: bash $HERE/stop-local-slurm.sh"
