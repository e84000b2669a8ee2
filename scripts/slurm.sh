#!/usr/bin/env bash
# A real Slurm on this one machine, for the tests that submit `wasp node` workers as batch
# jobs: Debian's slurm-wlm (22.05) and munge, one controller and one node on 127.0.0.1,
# everything but munged's key and socket kept in a state directory.
#
#   scripts/slurm.sh start STATE_DIR    install what is missing, start munged (if it is not
#                                       running), slurmctld and slurmd (if they are not
#                                       running from STATE_DIR), wait until the node is idle,
#                                       and print `export SLURM_CONF=STATE_DIR/slurm.conf`
#   scripts/slurm.sh stop STATE_DIR     cancel the cluster's jobs, stop its slurmd and
#                                       slurmctld, and munged if `start` started it (a
#                                       munged that was running already keeps running);
#                                       idempotent
#
#   eval "$(scripts/slurm.sh start /tmp/slurm)"   # then sbatch, squeue, scancel, sinfo
#
# The node advertises at least 8 CPUs whatever the hardware has (SlurmdParameters=
# config_overrides), so that several 1-CPU jobs run at once on a small machine; CR_CPU
# schedules CPUs only (memory is not a consumable). Processes are tracked without cgroups
# (proctrack/linuxproc, task/none), so it also runs in containers. scancel and time limits
# send SIGTERM, then SIGKILL KillWait (30) seconds later.
#
# Needs root (or passwordless sudo, with which it runs itself): munged runs as the munge
# user and the Slurm daemons as root. Packages are installed with apt-get when missing; if
# that cannot be done it fails. Starting twice with the same directory reuses the running
# daemons (and restarts them if the configuration changed). Every wait is bounded. The
# daemons listen on Slurm's usual ports, 6817 (slurmctld) and 6818 (slurmd), so one such
# cluster runs per machine at a time. Messages go to stderr; stdout is the export line.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PACKAGES=(slurm-wlm munge)
readonly MIN_CPUS=8
readonly CTLD_PORT=6817 SLURMD_PORT=6818
readonly READY_TIMEOUT=60
export PATH=$PATH:/usr/sbin:/sbin

say() { echo "slurm: $*" >&2; }
fail() {
    say "error: $*"
    exit 1
}
usage() {
    echo "usage: $0 start|stop STATE_DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
mode=$1
case $mode in
    start | stop) ;;
    *) usage ;;
esac

if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n -- "$0" "$@"
    fi
    fail "needs root (or passwordless sudo): the Slurm daemons run as root, munged as munge"
fi

mkdir -p -- "$2"
dir=$(cd -- "$2" && pwd -P)
[[ $dir != *[[:space:]]* ]] || fail "no spaces in the state directory, please: $dir"
conf=$dir/slurm.conf
export SLURM_CONF=$conf

# One start or stop at a time per directory.
exec 9>"$dir/.lock"
flock -w 120 9 || fail "another start or stop of $dir has held its lock for 2 minutes"

# The pid in FILE if that process is alive and runs NAME.
running() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

# Whether process PID is alive: a zombie (ended, not yet reaped: in a container whose
# first process does not reap, it may stay one) is not.
alive() {
    local state
    state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Sends SIGTERM to the daemon in FILE and waits (up to 20 s) before SIGKILL.
stop_daemon() {
    local file=$1 name=$2 pid i
    pid=$(running "$file" "$name") || {
        rm -f "$file"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        say "$name ($pid) still running 20 s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$file"
}

stop_cluster() {
    local i
    if running "$dir/slurmctld.pid" slurmctld >/dev/null && command -v scancel >/dev/null; then
        # The jobs would outlive slurmd (each runs under its own slurmstepd): cancel them
        # and wait, at most KillWait and a little, for them to go.
        if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
            say "cancelling the jobs still in the queue"
            scancel --partition=wasp 2>/dev/null || true
            for ((i = 0; i < 80; i++)); do
                [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_daemon "$dir/slurmd.pid" slurmd
    stop_daemon "$dir/slurmctld.pid" slurmctld
}

# The munged that `start` started, if it did: it wrote its pid here.
readonly OUR_MUNGED=$dir/munged.pid
readonly MUNGED_PID=/run/munge/munged.pid

stop_our_munged() {
    [[ -s $OUR_MUNGED ]] || return 0
    # Only the munged we started: the pid we recorded, still a munged.
    if [[ $(<"$OUR_MUNGED") == $(cat "$MUNGED_PID" 2>/dev/null) ]]; then
        stop_daemon "$MUNGED_PID" munged
    fi
    rm -f "$OUR_MUNGED"
}

if [[ $mode == stop ]]; then
    stop_cluster
    stop_our_munged
    say "stopped the cluster of $dir"
    exit 0
fi

started=$SECONDS

# --- Packages -------------------------------------------------------------------------
missing() {
    local tool
    for tool in slurmctld slurmd sbatch squeue sinfo scancel munged munge unmunge; do
        command -v "$tool" >/dev/null || echo "$tool"
    done
}
lacking=$(missing | xargs)
if [[ -n $lacking ]]; then
    say "missing: $lacking"
    apt_install slurm "${PACKAGES[@]}" ||
        fail "could not install ${PACKAGES[*]} (install Slurm and munge, then run this again)"
    lacking=$(missing | xargs)
    [[ -z $lacking ]] || fail "still missing after installing ${PACKAGES[*]}: $lacking"
    say "installed ${PACKAGES[*]} in $((SECONDS - started)) s"
fi

# --- munge ----------------------------------------------------------------------------
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
    getent passwd munge >/dev/null || fail "no munge user (is the munge package installed?)"
    key=/etc/munge/munge.key
    if [[ ! -s $key ]]; then
        say "creating the munge key $key"
        install -d -o munge -g munge -m 0700 /etc/munge
        if ! mungekey --create --keyfile="$key" 2>/dev/null; then
            rm -f "$key"
            (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
        fi
    fi
    chown munge:munge "$key"
    chmod 0400 "$key"
    for d in /run/munge /var/lib/munge /var/log/munge; do
        install -d -o munge -g munge -m 0755 "$d"
    done
    chmod 0700 /var/lib/munge /var/log/munge
    say "starting munged"
    # It forks into the background; no descriptor of ours may stay open in it: the caller
    # reads our stdout to its end, and fd 9 holds the directory's lock.
    runuser -u munge -- munged </dev/null >/dev/null 2>&1 9>&- ||
        runuser -u munge -- munged --force </dev/null >/dev/null 2>&1 9>&- ||
        fail "munged did not start: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
    for ((i = 0; i < 50; i++)); do
        munge_works && break
        sleep 0.2
    done
    munge_works || fail "munged runs but munge | unmunge fails: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
    # Ours: `stop` stops it.
    cp "$MUNGED_PID" "$OUR_MUNGED"
fi

# --- slurm.conf -----------------------------------------------------------------------
host=$(hostname -s)
[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || fail "a short hostname Slurm can use is needed, and this one is '$host'"
cpus=$(nproc)
((cpus >= MIN_CPUS)) || cpus=$MIN_CPUS
mem_mib=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# A bit under the total, as slurmd measures it after the kernel's share.
real_memory=$((mem_mib * 95 / 100))
mkdir -p "$dir/state" "$dir/spool"
new_conf=$(
    cat <<EOF
# Written by scripts/slurm.sh: one machine, 127.0.0.1.
ClusterName=wasp-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
ReturnToService=2
KillWait=30
InactiveLimit=0
MinJobAge=300
SlurmdTimeout=300
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=wasp Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)

ctld_pid=$(running "$dir/slurmctld.pid" slurmctld) || ctld_pid=
slurmd_pid=$(running "$dir/slurmd.pid" slurmd) || slurmd_pid=
if [[ -f $conf && $(<"$conf") == "$new_conf" && -n $ctld_pid && -n $slurmd_pid ]]; then
    say "reusing slurmctld ($ctld_pid) and slurmd ($slurmd_pid) of $dir"
else
    if [[ -n $ctld_pid || -n $slurmd_pid ]]; then
        say "restarting the daemons of $dir"
        stop_cluster
    fi
    printf '%s\n' "$new_conf" >"$conf"
    chmod 0644 "$conf"

    port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    for port in $CTLD_PORT $SLURMD_PORT; do
        port_taken "$port" &&
            fail "port $port is taken (another Slurm? stop it first, e.g. scripts/slurm.sh stop ITS_DIR)"
    done

    : >"$dir/slurmctld.log"
    : >"$dir/slurmd.log"
    # Like munged: no stdout of ours, no lock (fd 9) in the daemons.
    # -c: a fresh cluster, no jobs recovered from an earlier run in this directory.
    slurmctld -c -f "$conf" </dev/null >>"$dir/slurmctld.log" 2>&1 9>&- ||
        fail "slurmctld did not start: $(tail -n 5 "$dir/slurmctld.log")"
    slurmd -f "$conf" -N "$host" </dev/null >>"$dir/slurmd.log" 2>&1 9>&- ||
        fail "slurmd did not start: $(tail -n 5 "$dir/slurmd.log")"
fi

# --- Wait until the node takes jobs ----------------------------------------------------
state=
for ((i = 0; i < READY_TIMEOUT * 2; i++)); do
    state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -n 1) || state=
    [[ $state == idle || $state == mix || $state == alloc ]] && break
    if ((i % 10 == 9)); then
        running "$dir/slurmctld.pid" slurmctld >/dev/null ||
            fail "slurmctld exited: $(tail -n 5 "$dir/slurmctld.log")"
        running "$dir/slurmd.pid" slurmd >/dev/null ||
            fail "slurmd exited: $(tail -n 5 "$dir/slurmd.log")"
    fi
    sleep 0.5
done
[[ $state == idle || $state == mix || $state == alloc ]] ||
    fail "node $host not idle after $READY_TIMEOUT s (state '${state:-unknown}'); logs: $dir/slurmctld.log, $dir/slurmd.log"
say "node $host ($cpus CPUs) $state in $((SECONDS - started)) s"
echo "export SLURM_CONF=$conf"
