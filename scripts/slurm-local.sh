#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try the submitit_slurm path locally (and for the
# `slurm` tests). Debian/Ubuntu, as root.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge when missing, start munged,
#                                   slurmctld and slurmd, wait until the node is idle
#   scripts/slurm-local.sh status   exit 0 when the cluster answers, 1 otherwise
#   scripts/slurm-local.sh stop     stop the daemons this script started (by their pid files)
#
# Everything lives in a private directory ($RECUNLEARN_SLURM_DIR, default /tmp/recunlearn-slurm):
# slurm.conf, a private munge key and socket, pid files, logs and state. Every daemon listens and
# talks on 127.0.0.1 only; no accounting database (sacct does not work; squeue does). Client
# commands (sbatch, squeue, sinfo, scancel) read /etc/slurm/slurm.conf: the script writes it there
# only when absent or when it is a copy this script wrote (marked by its first line); otherwise
# `export SLURM_CONF=$RECUNLEARN_SLURM_DIR/slurm.conf` (start prints it).
# Environment: RECUNLEARN_SLURM_DIR, RECUNLEARN_SLURM_WAIT (seconds to wait for the node, 90),
# RECUNLEARN_SLURM_PORT (slurmctld port, 6817; slurmd uses the next one).
set -euo pipefail

DIR="${RECUNLEARN_SLURM_DIR:-/tmp/recunlearn-slurm}"
WAIT="${RECUNLEARN_SLURM_WAIT:-90}"
PORT="${RECUNLEARN_SLURM_PORT:-6817}"
CONF="$DIR/slurm.conf"
SYS_CONF=/etc/slurm/slurm.conf
MARK="# written by recunlearn scripts/slurm-local.sh; removed by its 'stop'"
PARTITION=debug

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

# pid of a daemon we started, when it is still alive and still that program
alive() {  # alive NAME -> prints pid, status 0 when running
  local pidfile="$DIR/run/$1.pid" pid
  [ -s "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 < "$pidfile")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  echo "$pid"
}

client_env() {  # client commands find our config either way
  export SLURM_CONF="$CONF"
}

node_state() {
  client_env
  timeout 10 sinfo -h -N -p "$PARTITION" -o '%t' 2>/dev/null | head -n1
}

cluster_up() {
  alive munged >/dev/null && alive slurmctld >/dev/null && alive slurmd >/dev/null || return 1
  case "$(node_state)" in idle*|mix*|alloc*|comp*) return 0 ;; *) return 1 ;; esac
}

tails() {
  local f
  for f in "$DIR"/log/*.log; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 15 "$f" >&2
  done
}

install_packages() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; } \
    || missing+=(slurm-wlm)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "cannot run here: ${missing[*]} missing and no apt-get to install them (a Debian/Ubuntu machine is needed, or install slurm-wlm and munge yourself)"
  say "installing ${missing[*]} (apt-get; about a minute)"
  # keep the packages' own init scripts from starting system daemons: this script runs its own
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local ok=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    > "$DIR/log/apt.log" 2>&1 || ok=$?
  [ $made_policy -eq 1 ] && rm -f "$policy"
  if [ $ok -ne 0 ]; then
    tail -n 20 "$DIR/log/apt.log" >&2
    die "cannot run here: installing ${missing[*]} failed (apt-get exit $ok; log $DIR/log/apt.log)"
  fi
  { command -v munged >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null; } \
    || die "cannot run here: slurm-wlm/munge installed but munged, slurmctld or slurmd is not on PATH"
}

write_conf() {
  local node cpus mem_mb
  node=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  # the daemons bind to the address the host name resolves to: loopback here, else to every
  # address (they still talk to each other on 127.0.0.1 only)
  local comm="CommunicationParameters=NoInAddrAny,NoCtldInAddrAny" addr
  addr=$(getent hosts "$node" | awk '{print $1; exit}')
  case "$addr" in
    127.*|::1) ;;
    *) comm="# $node resolves to '${addr:-nothing}', not loopback: daemons listen on all addresses"
       say "note: $node resolves to '${addr:-nothing}', not loopback; the daemons listen on every address (traffic stays on 127.0.0.1)" ;;
  esac
  cat > "$CONF.tmp" <<EOF
$MARK
# A one-node cluster on loopback. Private state under $DIR.
ClusterName=recunlearn
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
$comm
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/run/munge.socket
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in a container: track processes by parent pid, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  if [ ! -e "$SYS_CONF" ] || head -n1 "$SYS_CONF" | grep -qxF "$MARK"; then
    mkdir -p "$(dirname "$SYS_CONF")"
    cp "$CONF" "$SYS_CONF.tmp.$$" && mv "$SYS_CONF.tmp.$$" "$SYS_CONF"
  else
    say "note: $SYS_CONF belongs to someone else and is left alone; client commands need"
    say "      export SLURM_CONF=$CONF"
  fi
}

start_munge() {
  alive munged >/dev/null && return 0
  if [ ! -s "$DIR/munge/munge.key" ]; then
    ( umask 077; dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none )
  fi
  chmod 0400 "$DIR/munge/munge.key"
  rm -f "$DIR/run/munge.socket" "$DIR/run/munge.socket.lock"
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/run/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || { tails; die "munged did not start (log $DIR/log/munged.log)"; }
}

start() {
  if cluster_up; then
    say "already up (node $(hostname -s), partition $PARTITION; config $CONF)"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "cannot run here: starting a local SLURM cluster needs root (daemons, packages)"
  mkdir -p "$DIR"/{run,log,munge,state/ctld,state/d}
  chmod 0755 "$DIR" "$DIR/run" "$DIR/log"
  chmod 0700 "$DIR/munge"
  install_packages
  write_conf
  client_env
  start_munge
  if ! alive slurmctld >/dev/null; then
    slurmctld -f "$CONF" || { tails; die "slurmctld did not start"; }
  fi
  if ! alive slurmd >/dev/null; then
    slurmd -f "$CONF" -N "$(hostname -s)" || { tails; die "slurmd did not start"; }
  fi
  local deadline=$(( $(date +%s) + WAIT )) state="" resumed=0
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(node_state || true)
    case "$state" in
      idle*|mix*|alloc*)
        say "up: node $(hostname -s) ($(nproc) CPUs), partition $PARTITION; config $CONF, logs $DIR/log"
        return 0 ;;
      down*|drain*|drng*)
        if [ $resumed -eq 0 ]; then  # left down by an earlier run of this cluster
          scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    for d in munged slurmctld slurmd; do
      alive $d >/dev/null || { tails; die "$d exited while starting (logs above; $DIR/log)"; }
    done
    sleep 1
  done
  tails
  die "the node did not become idle within ${WAIT}s (state: '${state:-no answer from slurmctld}'); logs above"
}

stop_one() {
  local name=$1 pid i
  pid=$(alive "$name") || { rm -f "$DIR/run/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 40); do
    [ -d "/proc/$pid" ] || break
    sleep 0.25
  done
  if [ -d "/proc/$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/run/$name.pid"
  say "stopped $name ($pid)"
}

stop() {
  # the cluster's own jobs first (this slurmctld serves only them), then slurmd, slurmctld, munged
  if alive slurmctld >/dev/null; then
    client_env
    local jobs i
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// }" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs >/dev/null 2>&1 || true
      say "cancelled jobs $jobs"
      for i in $(seq 1 30); do
        [ -z "$(timeout 10 squeue -h -t PD,R,CG,CF -o '%A' 2>/dev/null)" ] && break
        sleep 1
      done
    fi
  fi
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
  if [ -f "$SYS_CONF" ] && head -n1 "$SYS_CONF" | grep -qxF "$MARK"; then
    rm -f "$SYS_CONF"
  fi
}

status() {
  if cluster_up; then
    client_env
    say "up: config $CONF"
    sinfo
    return 0
  fi
  local d running=()
  for d in munged slurmctld slurmd; do alive $d >/dev/null && running+=("$d"); done
  if [ ${#running[@]} -gt 0 ]; then
    say "not usable: running ${running[*]}, node state '$(node_state || true)'"
  else
    say "down"
  fi
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
