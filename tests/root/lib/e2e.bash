# shellcheck shell=bash
# e2e.bash - shared scaffolding for tests/root/e2e_*.sh (sourced, not run).
#
# Each e2e script: `source lib/e2e.bash; e2e_init "$@"`, then scenarios, then `e2e_finish`.
# e2e_init skips (exit 77) without root or without the tools, serialises e2e scripts with
# a lock, installs the hook the way install.sh does (a copy of the binary under test at
# /etc/libvirt/hooks/qemu.d/sockhook, the repository's plugins in /etc/sockhook/plugins,
# an empty default-deny policy), backs up whatever was there, brings libvirtd up and
# reloads it. The EXIT trap destroys and undefines our domains (shtest-e2e-*), stops what
# we started (desktop servers, libvirtd) and restores the backed-up files.
#
# Overridable: E2E_TIMEOUT (seconds per bounded wait, default 20).

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
DESKTOP=$E2E_ROOT/tests/env/desktop.sh
LIBVIRT=$E2E_ROOT/tests/env/libvirt.sh
HOOK=/etc/libvirt/hooks/qemu.d/sockhook
ETC=/etc/sockhook
URI=qemu:///system
E2E_TIMEOUT=${E2E_TIMEOUT:-20}
E2E_PREFIX=shtest-e2e-
PASS=0
FAIL=0
FAILED=()
E2E_UUIDS=()

say() { printf '# %s\n' "$*"; }
ok() { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$*"; }
not_ok() { FAIL=$((FAIL + 1)); FAILED+=("$*"); printf 'FAIL - %s\n' "$*"; }
# check DESCRIPTION CMD... : ok if CMD succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
virsh_() { virsh -q -c "$URI" "$@"; }

# wait_until SECONDS CMD... : retries CMD every 0.2 s; never waits longer than SECONDS.
wait_until() {
    local limit=$1; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

skip() { echo "SKIP: $*"; exit 77; }

e2e_init() {
    [[ $(id -u) -eq 0 ]] || skip "needs root (real libvirtd, mounts, users)"
    SOCKHOOK=${1:-}
    [[ -n $SOCKHOOK && -x $SOCKHOOK ]] || { echo "usage: $0 /abs/path/to/sockhook" >&2; exit 2; }
    SOCKHOOK=$(readlink -f "$SOCKHOOK")
    local t
    for t in virsh libvirtd virtlogd qemu-system-x86_64 pactl pw-cli pulseaudio pipewire \
        nsenter getfacl findmnt setpriv flock; do
        command -v "$t" >/dev/null || skip "$t is not installed"
    done
    # One e2e script at a time: they share libvirtd, /etc/sockhook and the desktop user.
    exec 9>/run/sockhook-e2e.lock
    flock -w 900 9 || { echo "e2e: another e2e script holds /run/sockhook-e2e.lock" >&2; exit 1; }
    BACKUP=$(mktemp -d /run/sockhook-e2e-backup.XXXXXX)
    trap e2e_cleanup EXIT
    trap 'exit 130' INT TERM
    e2e_backup
    e2e_install
    # What runs already is someone else's: we stop only what we start.
    LIBVIRTD_WAS_UP=no
    "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running' && LIBVIRTD_WAS_UP=yes
    DESKTOP_WAS_UP=no
    if id shtest >/dev/null 2>&1 && mountpoint -q "/run/user/$(id -u shtest)"; then
        DESKTOP_WAS_UP=yes
    fi
    "$DESKTOP" user >/dev/null
    eval "$("$DESKTOP" env)"
    "$LIBVIRT" up
    # libvirt looks hooks up at start and on SIGHUP only.
    "$LIBVIRT" reload
    QEMU_UID=$(id -u libvirt-qemu)
}

e2e_backup() {
    [[ -e $ETC ]] && cp -a "$ETC" "$BACKUP/etc-sockhook"
    [[ -e $HOOK ]] && cp -a "$HOOK" "$BACKUP/hook"
    [[ -d ${HOOK%/*} ]] || touch "$BACKUP/no-qemu.d"
    touch "$BACKUP/complete"
}

e2e_restore() {
    [[ -f $BACKUP/complete ]] || return 0
    rm -rf "$ETC"
    [[ -e $BACKUP/etc-sockhook ]] && cp -a "$BACKUP/etc-sockhook" "$ETC"
    rm -f "$HOOK"
    [[ -e $BACKUP/hook ]] && cp -a "$BACKUP/hook" "$HOOK"
    [[ -e $BACKUP/no-qemu.d ]] && rmdir "${HOOK%/*}" 2>/dev/null
    rm -rf "$BACKUP"
}

# install.sh's way: a copy of the binary (AppArmor mediates hooks by path), root-owned
# plugins, a config and an empty, default-deny policy.
e2e_install() {
    install -D -m 0755 -o root -g root "$SOCKHOOK" "$HOOK"
    install -d -m 0755 -o root -g root "$ETC" "$ETC/plugins"
    rm -f "$ETC"/plugins/*.xml
    install -m 0644 -o root -g root "$E2E_ROOT"/plugins/*.xml "$ETC/plugins/"
    printf 'dry_run = false\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/sockhook.conf"
    printf '# e2e: default deny\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/policy.conf"
}

e2e_cleanup() {
    local rc=$?
    set +e
    local d
    if "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running'; then
        for d in $(virsh_ list --all --name 2>/dev/null | grep "^$E2E_PREFIX"); do
            virsh_ destroy "$d" >/dev/null 2>&1
            virsh_ undefine "$d" >/dev/null 2>&1
        done
    fi
    # Anything a failed test left lent: undo it while the hook binary is still ours.
    local u
    for u in "${E2E_UUIDS[@]}"; do
        [[ -f /run/sockhook/state/$u.xml ]] || continue
        echo "e2e: the lends of $u were left behind; releasing them" >&2
        "$SOCKHOOK" cleanup "$u" >&2 2>&1 ||
            # Without `cleanup`: the hook's own release, keyed by UUID like libvirt's call.
            printf "<domain type='qemu'><name>e2e-cleanup</name><uuid>%s</uuid></domain>" "$u" |
            "$SOCKHOOK" hook e2e-cleanup release end - >&2
    done
    e2e_restore
    if [[ $LIBVIRTD_WAS_UP == yes ]]; then
        "$LIBVIRT" reload >/dev/null 2>&1
    else
        "$LIBVIRT" down >/dev/null 2>&1
    fi
    if [[ $DESKTOP_WAS_UP == yes ]]; then
        "$DESKTOP" stop all >/dev/null 2>&1
    else
        "$DESKTOP" teardown >/dev/null 2>&1
    fi
    exit "$rc"
}

e2e_finish() {
    echo
    echo "# $PASS passed, $FAIL failed"
    local f
    for f in "${FAILED[@]}"; do echo "#   failed: $f"; done
    ((FAIL == 0))
}

# ---------------------------------------------------------------- domains

# define_domain NAME [DEVICES_FILE] : a small TCG domain (libvirt.sh's FINDINGS template).
define_domain() {
    "$LIBVIRT" undefine "$1" >/dev/null 2>&1 || true
    "$LIBVIRT" define "$@" >/dev/null
    E2E_UUIDS+=("$(uuid_of "$1")")  # what the EXIT trap may release
}

uuid_of() { virsh_ domuuid "$1" | tr -d '[:space:]'; }
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
is_running() { [[ $(virsh_ domstate "$1" 2>/dev/null) == running ]]; }
is_shut_off() { [[ $(virsh_ domstate "$1" 2>/dev/null) == "shut off" ]]; }

# start NAME : virsh start, output in $START_OUT, wall time in $START_TIME (seconds).
# shellcheck disable=SC2034 # both are read by the scripts
start() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    START_OUT=$(virsh_ start "$1" 2>&1) || rc=$?
    t1=$(date +%s.%N)
    START_TIME=$(echo "$t1 - $t0" | bc -l)
    return "$rc"
}

stop() {
    virsh_ destroy "$1" >/dev/null 2>&1 || true
    wait_until "$E2E_TIMEOUT" is_shut_off "$1"
}

# ---------------------------------------------------------------- host state

# snapshot : what must be byte-identical before a start and after the stop: the host's
# mount table, the owner's runtime directory (ACLs, modes, owners, inodes), /run/sockhook,
# and the processes of the owner and of QEMU's user.
snapshot() {
    set +o pipefail
    echo "## mounts"
    awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo | sort
    echo "## acl $SH_RUNTIME"
    getfacl -R -p "$SH_RUNTIME" 2>/dev/null
    echo "## stat $SH_RUNTIME"
    find "$SH_RUNTIME" -xdev -printf '%p %y %m %U %G %i\n' 2>/dev/null | sort
    echo "## stat cookie"
    # No cookie until a PulseAudio server has run once (a fresh machine, a fresh root).
    stat -c '%n %F %a %u %g %i %s' "$SH_PULSE_COOKIE" 2>/dev/null || echo "no cookie"
    echo "## /run/sockhook"
    # The state directory and its per-domain lock files are the hook's furniture; journals
    # and lend directories must go.
    find /run/sockhook -printf '%p %y %m %U %G\n' 2>/dev/null |
        { grep -v -E '^/run/sockhook(/state)? |\.lock ' || true; } | sort
    echo "## processes of $SH_USER and libvirt-qemu"
    # Zombies are gone already (PID 1 reaps them late here); our own probes do not count.
    ps -u "$SH_UID" -u "$QEMU_UID" -o stat=,user=,comm= 2>/dev/null |
        awk '$1 !~ /^Z/ && $3 !~ /^(ps|pactl|pw-cli|pw-dump)$/ { print $2, $3 }' | sort
}

# same_as_before FILE : the host matches the snapshot in FILE (retrying a few seconds:
# PID 1 reaps zombies late here); prints a diff when it does not.
same_as_before() {
    local before=$1 deadline=$((SECONDS + 8))
    while :; do
        if diff -q "$before" <(snapshot) >/dev/null; then return 0; fi
        ((SECONDS < deadline)) || break
        sleep 0.3
    done
    diff -u "$before" <(snapshot) | sed 's/^/#   /' | head -40
    return 1
}

# ---------------------------------------------------------------- clients

pulse_client_count() {
    "$DESKTOP" as-user pactl list short clients 2>/dev/null | grep -c 'qemu-system-x86_64' || true
}
has_pulse_clients() { (($(pulse_client_count) >= ${1:-1})); }

pipewire_has_qemu() {
    "$DESKTOP" as-user pw-cli ls Client 2>/dev/null | grep -q 'application.name = "qemu-system-x86_64"'
}

no_pipewire_qemu() { ! pipewire_has_qemu; }

# in_qemu_ns NAME CMD... : run CMD in QEMU's mount namespace, below QEMU's root directory
# (-r: in a chroot, such as CI's Debian 13 root, the namespace's own root is the host's).
in_qemu_ns() { local pid; pid=$(qemu_pid "$1"); shift; nsenter -t "$pid" -m -r "$@"; }

# annotate NAME ARGS... : sockhook annotate as root (records the policy, like a user would).
annotate() { local d=$1; shift; "$SOCKHOOK" annotate "$d" "$@" 2>&1; }

policy_has() { grep -q -i "$1" "$ETC/policy.conf"; }
