# shellcheck shell=bash
# common.bash - what tests/env/desktop.sh, tests/env/libvirt.sh and the tests/root suites
# share (sourced, never run): bounded waits and pid files that tell a live process from a
# zombie. Every wait here has a limit.
#
# The sourcing script sets ENV_NAME (the prefix of its messages) and may set WAIT_TIMEOUT
# (seconds for wait_for, default 10).

die() { echo "${ENV_NAME:-tests}: $*" >&2; exit 1; }
log() { echo "${ENV_NAME:-tests}: $*" >&2; }

# wait_until SECONDS CMD... : retries CMD (quietly) every 0.1 s; gives up after SECONDS.
wait_until() {
    local limit=$1; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# wait_for DESCRIPTION CMD... : wait_until WAIT_TIMEOUT, and says what it waited for when
# it gives up.
wait_for() {
    local what=$1; shift
    wait_until "${WAIT_TIMEOUT:-10}" "$@" ||
        { log "timeout (${WAIT_TIMEOUT:-10}s) waiting for $what"; return 1; }
}

# pid_alive PIDFILE : prints the pid if the process in PIDFILE runs and is no zombie (PID 1
# on the CI VM reaps orphans only every second or so).
pid_alive() {
    local pf=$1 pid st
    [[ -f $pf ]] || return 1
    pid=$(<"$pf")
    st=$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n $st && $st != Z ]] || return 1
    echo "$pid"
}

pid_gone() { ! pid_alive "$1" >/dev/null; }

# stop_pidfile NAME PIDFILE : SIGTERM, bounded wait, SIGKILL; removes PIDFILE.
stop_pidfile() {
    local name=$1 pf=$2 pid
    pid=$(pid_alive "$pf") || { rm -f "$pf"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$name (pid $pid) to exit" pid_gone "$pf"; then
        log "$name ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for "$name to die" pid_gone "$pf" || true
    fi
    rm -f "$pf"
}
