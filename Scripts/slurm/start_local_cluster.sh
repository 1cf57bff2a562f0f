#!/usr/bin/env bash
# Start (or stop) a real single-node Slurm cluster on this machine.
#
#   Scripts/slurm/start_local_cluster.sh          # install if needed, configure, start, wait until idle
#   Scripts/slurm/start_local_cluster.sh --stop   # stop slurmd, slurmctld and munged
#   Scripts/slurm/start_local_cluster.sh --status # print daemon / node state
#
# Meant for Debian 12 (bookworm, slurm-wlm 22.05) run as root without systemd
# (containers, CI VMs). Idempotent: if the daemons are already up with the same
# configuration, it only checks health and exits 0. See Scripts/slurm/README.md.
set -euo pipefail

SLURM_CONF_DIR=/etc/slurm            # where Debian's slurm-wlm reads slurm.conf
SLURM_CONF=$SLURM_CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_RUN=/run/munge
MUNGE_KEY=/etc/munge/munge.key
WAIT_SECS=${SLURM_START_TIMEOUT:-60}

log() { echo "[slurm-local] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# True if the process exists and is not a zombie (PID 1 in containers may reap late).
proc_alive() { # pid
    local st
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pid_alive() { # pidfile
    local p
    [ -s "$1" ] || return 1
    p=$(cat "$1" 2>/dev/null) || return 1
    proc_alive "$p"
}

any_alive() { # pids...
    local p
    for p in "$@"; do proc_alive "$p" && return 0; done
    return 1
}

# Stop a daemon by pidfile; falls back to the exact process name if the pidfile is stale/missing.
stop_daemon() { # name pidfile
    local name=$1 pidfile=$2 pids="" i
    if pid_alive "$pidfile"; then pids=$(cat "$pidfile"); fi
    if [ -z "$pids" ]; then
        for i in $(pgrep -x "$name" || true); do proc_alive "$i" && pids="$pids $i"; done
    fi
    [ -n "$pids" ] || { rm -f "$pidfile"; return 0; }
    log "stopping $name (pid $(echo $pids))"
    kill $pids 2>/dev/null || true
    for i in $(seq 1 50); do
        any_alive $pids || break
        sleep 0.2
    done
    if any_alive $pids; then
        log "$name did not exit, sending SIGKILL"
        kill -9 $pids 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_all() {
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
    stop_daemon munged "$MUNGE_RUN/munged.pid"
}

node_name() { hostname -s; }

node_state() { # prints e.g. idle, mixed, allocated, down*, drained, idle*...
    timeout 10 sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n1
}

healthy() {
    pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" || return 1
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    case "$(node_state)" in
        idle|mixed|allocated|completing) return 0 ;;
        *) return 1 ;;
    esac
}

show_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [ -f "$f" ] || continue
        echo "----- tail $f -----" >&2
        tail -n 40 "$f" >&2 || true
    done
}

case "${1:-}" in
    --stop) stop_all; log "stopped"; exit 0 ;;
    --status)
        for d in munged:$MUNGE_RUN/munged.pid slurmctld:$CTLD_PID slurmd:$SLURMD_PID; do
            if pid_alive "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"; else echo "${d%%:*}: not running"; fi
        done
        sinfo 2>&1 || true
        exit 0 ;;
    ""|--start) ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (use --stop, --status or no argument)" ;;
esac

# ---------------------------------------------------------------- install
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
   || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# ---------------------------------------------------------------- munge
if [ ! -s "$MUNGE_KEY" ]; then
    log "creating munge key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
fi
chown -R munge:munge /etc/munge
chmod 700 /etc/munge
chmod 400 "$MUNGE_KEY"
mkdir -p "$MUNGE_RUN" /var/lib/munge /var/log/munge
chown munge:munge "$MUNGE_RUN" /var/lib/munge /var/log/munge
chmod 755 "$MUNGE_RUN"

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! pid_alive "$MUNGE_RUN/munged.pid" || ! munge_ok; then
    stop_daemon munged "$MUNGE_RUN/munged.pid"
    rm -f "$MUNGE_RUN"/munge.socket.2*
    log "starting munged (as user munge)"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { show_logs; die "munged does not answer"; }
fi

# ---------------------------------------------------------------- slurm.conf
NODE=$(node_name)
NCPU=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
# leave ~5% (at least 512 MB) for the OS so slurmd never registers with "low memory"
MEM_MB=$(( MEM_MB - (MEM_MB / 20 > 512 ? MEM_MB / 20 : 512) ))
[ "$MEM_MB" -gt 0 ] || MEM_MB=1

mkdir -p "$SLURM_CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
NEW_CONF=$(mktemp)
trap 'rm -f "$NEW_CONF"' EXIT
cat >"$NEW_CONF" <<EOF
# Generated by Scripts/slurm/start_local_cluster.sh -- single-node test cluster.
ClusterName=local
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again
# (default 120 s); keep it short so requeued shards restart quickly.
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
# No cgroups: plain /proc based process tracking, no task binding/accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Per-core allocation so many 1-CPU jobs / array tasks run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
# Trust this file over detected hardware and bring DOWN nodes back automatically.
SlurmdParameters=config_overrides
ReturnToService=2
# Requeue support (scontrol requeue, --requeue, requeue on node failure).
JobRequeue=1
MinJobAge=60
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MaxArraySize=100001
MaxJobCount=100000
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${NCPU} Boards=1 SocketsPerBoard=1 CoresPerSocket=${NCPU} ThreadsPerCore=1 RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

CONF_CHANGED=0
if ! cmp -s "$NEW_CONF" "$SLURM_CONF"; then
    log "writing $SLURM_CONF"
    install -m 644 "$NEW_CONF" "$SLURM_CONF"
    CONF_CHANGED=1
fi

# ---------------------------------------------------------------- daemons
if [ "$CONF_CHANGED" -eq 0 ] && healthy; then
    log "cluster already running and healthy: node $NODE $(node_state)"
    exit 0
fi

if [ "$CONF_CHANGED" -eq 1 ]; then
    # Node/CPU layout changes need a full restart, not just a reconfigure.
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
fi

if ! pid_alive "$CTLD_PID"; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if ! pid_alive "$SLURMD_PID"; then
    log "starting slurmd"
    /usr/sbin/slurmd
fi

log "waiting (<= ${WAIT_SECS}s) for node $NODE to become idle"
deadline=$(( $(date +%s) + WAIT_SECS ))
resumed=0
while :; do
    if healthy; then
        log "cluster up: node $NODE $(node_state), ${NCPU} CPUs, ${MEM_MB} MB, partition debug"
        exit 0
    fi
    state=$(node_state || true)
    # A node left DOWN/DRAINED from an earlier run: put it back into service once.
    case "$state" in
        down*|drain*|fail*|inval*)
            if [ $resumed -eq 0 ] && pid_alive "$SLURMD_PID"; then
                log "node state '$state', resuming"
                scontrol update nodename="$NODE" state=resume 2>/dev/null \
                  || scontrol update nodename="$NODE" state=idle 2>/dev/null || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log "timed out; node state: '${state}'"
        pid_alive "$CTLD_PID" || log "slurmctld is not running"
        pid_alive "$SLURMD_PID" || log "slurmd is not running"
        show_logs
        exit 1
    fi
    sleep 1
done
