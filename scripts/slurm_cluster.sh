#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (Debian's slurm-wlm: munged + slurmctld + slurmd, localhost only),
# for the Slurm test (tests/test_slurm.py) in CI.
#   scripts/slurm_cluster.sh up       # install slurm-wlm + munge if missing, write the config, start, wait for idle
#   scripts/slurm_cluster.sh status   # the daemons and `sinfo`; exit 0 only when the node takes jobs
#   scripts/slurm_cluster.sh down     # stop the daemons started by `up` (the config and packages stay)
# Needs root (apt-get, and slurmd runs jobs as their user). Idempotent: `up` on a running cluster only checks it.
# The config goes to /etc/slurm/slurm.conf, where sbatch / sinfo / submitit find it without SLURM_CONF; a
# slurm.conf that this script did not write is never overwritten. State, spool and logs: $QDSBENCH_SLURM_DIR.
# No accounting (no slurmdbd): sacct does not answer, so submitit knows a job is done from its result file.
set -euo pipefail

STATE=${QDSBENCH_SLURM_DIR:-/var/spool/qdsbench-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by qdsbench scripts/slurm_cluster.sh"
TIMEOUT=${QDSBENCH_SLURM_TIMEOUT:-60}   # seconds to wait for each daemon and for the node to be idle
NODE=$(hostname -s)
PARTITION=debug

fail() { echo "slurm_cluster: $1" >&2; exit 1; }
say() { echo "slurm_cluster: $*"; }
tail_log() { [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 15 "$1" >&2; } || true; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-'; }
node_ready() { case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }

wait_for() {  # wait_for <what> <command...>: poll for $TIMEOUT seconds
    local what=$1; shift
    for _ in $(seq $((TIMEOUT * 2))); do "$@" && return 0; sleep 0.5; done
    return 1
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sinfo >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || fail "install step failed: slurm-wlm / munge are missing and this is not root (uid $(id -u)); run as root or apt-get install slurm-wlm munge"
    say "installing slurm-wlm and munge with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; } \
        >"/tmp/qdsbench-slurm-apt.log" 2>&1 \
        || { tail_log /tmp/qdsbench-slurm-apt.log; fail "install step failed: apt-get install slurm-wlm munge (log /tmp/qdsbench-slurm-apt.log)"; }
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        fail "config step failed: $CONF exists and was not written by this script; refusing to overwrite it (a real cluster's config?)"
    fi
    mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log" /etc/slurm
    local cpus mem_mb
    cpus=$(nproc)
    # Half the memory, in whole GiB so that the config (and `up`) stays the same from one call to the next; memory is
    # not a consumable resource here (CR_CPU): jobs ask for none, and none is enforced (no cgroup).
    mem_mb=$(awk '/MemTotal/ {printf "%d", int($2 / 1048576 / 2) * 1024}' /proc/meminfo)
    [ "${mem_mb:-0}" -ge 256 ] || mem_mb=256
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
$MARK: one node = this host, localhost only
ClusterName=qdsbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1  # unchanged
    fi
    mv "$tmp" "$CONF"
    chmod 644 "$CONF"
    return 0
}

start_munge() {
    if munge_ok; then return; fi  # a munged that was already running is used (and left running by `down`)
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none \
            || fail "munge step failed: cannot create /etc/munge/munge.key"
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged 2>"$STATE/log/munged.err" || true
    else
        munged --force 2>"$STATE/log/munged.err" || true
    fi
    wait_for munged munge_ok || { tail_log "$STATE/log/munged.err"; tail_log /var/log/munge/munged.log
        fail "munge step failed: munged did not answer (munge -n | unmunge) within ${TIMEOUT}s"; }
    touch "$STATE/munged.ours"
}

start_daemon() {  # start_daemon <name> <pidfile> <args...>
    local name=$1 pidfile=$2; shift 2
    if alive "$pidfile"; then return; fi
    "$@" >"$STATE/log/$name.out" 2>&1 || { tail_log "$STATE/log/$name.out"; tail_log "$STATE/log/$name.log"
        fail "$name step failed: '$*' exited with an error"; }
    wait_for "$name" alive "$pidfile" || { tail_log "$STATE/log/$name.out"; tail_log "$STATE/log/$name.log"
        fail "$name step failed: no running $name (pid file $pidfile) within ${TIMEOUT}s"; }
}

stop_daemon() {  # stop_daemon <name> <pidfile>
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
    say "stopped $name (pid $pid)"
}

up() {
    [ "$(id -u)" = 0 ] || fail "start step failed: not root (uid $(id -u)); slurmd must run as root to start jobs"
    if [ -d /run/systemd/system ]; then
        say "note: systemd is running; this script starts the daemons itself (stop any slurm/munge units first)"
    fi
    local started=$SECONDS
    install_packages
    if write_config; then
        # a new or changed config: daemons started with the old one are restarted
        stop_daemon slurmd "$STATE/slurmd.pid"
        stop_daemon slurmctld "$STATE/slurmctld.pid"
    fi
    start_munge
    start_daemon slurmctld "$STATE/slurmctld.pid" slurmctld
    start_daemon slurmd "$STATE/slurmd.pid" slurmd -N "$NODE"
    if ! wait_for node node_ready; then
        # a node left down / drained by an earlier run: return it to service once
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        wait_for node node_ready || { tail_log "$STATE/log/slurmctld.log"; tail_log "$STATE/log/slurmd.log"
            fail "node step failed: node $NODE is '$(node_state)' in sinfo, not idle, after ${TIMEOUT}s (logs in $STATE/log)"; }
    fi
    say "up in $((SECONDS - started))s: $(sinfo --version), node $NODE ($(nproc) CPUs) $(node_state) in partition $PARTITION"
}

down() {
    stop_daemon slurmd "$STATE/slurmd.pid"
    stop_daemon slurmctld "$STATE/slurmctld.pid"
    if [ -f "$STATE/munged.ours" ]; then  # only a munged that `up` started
        if munge_ok; then munged --stop >/dev/null 2>&1 || stop_daemon munged /run/munge/munged.pid; say "stopped munged"; fi
        rm -f "$STATE/munged.ours"
    fi
    say "down"
}

status() {
    local d
    for d in slurmctld slurmd; do
        if alive "$STATE/$d.pid"; then say "$d running (pid $(cat "$STATE/$d.pid"))"; else say "$d not running"; fi
    done
    if munge_ok; then say "munged answers"; else say "munged does not answer"; fi
    command -v sinfo >/dev/null || fail "status: sinfo not found (slurm-wlm is not installed)"
    if node_ready; then say "node $NODE $(node_state)"; sinfo; else fail "status: node $NODE is not taking jobs ('$(node_state)')"; fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
