# shellcheck shell=bash
# report.bash - a suite's results and its life: ok / not_ok / check, the summary, the traps,
# suite_init and the cleanups at exit.
# A part of suite.bash, which sources it: never sourced or run alone.
#
# Reporting. Each result is one line, "ok   - WHAT" or "FAIL - WHAT (script:line)". The last
# line is always "# N passed, M failed: <the failed checks>", also when the script dies: a
# command that fails under `set -e` is named with its file and line by the ERR trap, and a
# script that stops before `finish` (error, signal, unbound variable) exits non-zero and
# says so. Cleanups registered with on_exit run first, newest first.

PASS=0
FAIL=0
FAILED=()
SUITE_DONE=no
SUITE_CLEANUPS=()

say() { printf '# %s\n' "$*"; }

# show TEXT : TEXT indented as a comment.
show() { printf '%s\n' "$1" | sed 's/^/#   /'; }

# suite_where : "script:line" of the first caller outside this library (any file beside this
# one: suite.bash sources every part by this directory's path).
suite_where() {
    local i
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        [[ ${BASH_SOURCE[i]%/*} == "${BASH_SOURCE[0]%/*}" ]] && continue
        echo "${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
        return
    done
}

ok() { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$*"; }
not_ok() {
    local where; where=$(suite_where)
    FAIL=$((FAIL + 1))
    FAILED+=("${1%%$'\n'*} ($where)")
    printf 'FAIL - %s (%s)\n' "$*" "$where"
}
# check WHAT CMD... : ok if CMD succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# not CMD... : true when CMD fails (check WHAT not CMD...).

not() { ! "$@"; }

# die WHAT : a failure the rest of the suite cannot go on from (it ends the suite).
die() { not_ok "$*"; SUITE_DONE=died; exit 1; }
skip() { echo "SKIP: $*"; SUITE_DONE=skipped; exit 77; }

# on_exit FUNC : FUNC runs at exit (newest first), whatever the way out.
on_exit() { SUITE_CLEANUPS=("$1" "${SUITE_CLEANUPS[@]}"); }

suite_on_err() {
    local rc=$1 cmd=$2 line=$3
    # Only a failure that ends the script is news: scripts without `set -e` test exit codes.
    [[ $- == *e* ]] || return 0
    SUITE_DIED="'$cmd' exited $rc at ${BASH_SOURCE[1]##*/}:$line"
    local i frames=
    for ((i = 2; i < ${#BASH_SOURCE[@]}; i++)); do
        frames+=" <- ${FUNCNAME[i - 1]} at ${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
    done
    echo "ERROR: $SUITE_DIED$frames" >&2
}

suite_on_exit() {
    local rc=$?
    set +eu  # the cleanups run whatever state the suite stopped in
    trap - ERR
    if [[ $SUITE_DONE == no ]]; then
        ((rc != 0)) || rc=1
        FAIL=$((FAIL + 1))
        FAILED+=("$SUITE_NAME stopped before its end: ${SUITE_DIED:-exit $rc}")
        echo "FAIL - $SUITE_NAME stopped before its end (${SUITE_DIED:-exit $rc})"
    fi
    local f
    for f in "${SUITE_CLEANUPS[@]}"; do "$f"; done
    [[ $SUITE_DONE == skipped ]] && exit "$rc"
    echo
    local summary="# $PASS passed, $FAIL failed"
    ((FAIL == 0)) || summary+=": $(printf '%s; ' "${FAILED[@]}")"
    echo "${summary%; }"
    exit "$rc"
}

# suite_init SOCKHOOK [ARGS] : root or skip, the binary under test, the traps, $TMP.
suite_init() {
    [[ $(id -u) -eq 0 ]] || skip "needs root (real users, mounts, servers)"
    SOCKHOOK=${1:-}
    [[ -n $SOCKHOOK && -x $SOCKHOOK ]] || { echo "usage: $0 /abs/path/to/sockhook" >&2; exit 2; }
    SOCKHOOK=$(readlink -f "$SOCKHOOK")
    set -E
    trap 'suite_on_err $? "$BASH_COMMAND" $LINENO' ERR
    trap suite_on_exit EXIT
    trap 'SUITE_DIED="interrupted (SIGINT)"; exit 130' INT
    trap 'SUITE_DIED="terminated (SIGTERM)"; exit 143' TERM
    TMP=$(mktemp -d "/tmp/sockhook-$SUITE_NAME-XXXXXX")
    chmod 755 "$TMP"  # unprivileged parts of the suites read from here
    on_exit suite_rm_tmp
    on_exit remove_suite_cgroups
}
suite_rm_tmp() { rm -rf "$TMP"; }

# need_tools TOOL... : skip when one is not installed.
need_tools() {
    local t
    for t in "$@"; do command -v "$t" >/dev/null || skip "$t is not installed"; done
}

finish() {
    SUITE_DONE=yes
    ((FAIL == 0)) || exit 1
    exit 0
}
