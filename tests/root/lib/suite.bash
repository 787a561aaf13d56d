# shellcheck shell=bash
# suite.bash - the one library of the tests/root/*.sh suites (sourced, never run: ctest only
# picks up tests/root/*.sh).
#
#   bash tests/root/NAME.sh /abs/path/to/sockhook [ARGS]     (root; exit 77 otherwise)
#
# A suite begins with
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" KIND "$@"
# KIND plain: suite_init (root or exit 77, the binary in $SOCKHOOK, $TMP, the traps);
# KIND lend: also lend_init (users shlend/shlend2 on their own tmpfs, own configuration);
# KIND e2e: also e2e_init (libvirtd, the desktop user, the hook installed). Then
#   ok / not_ok / check ...; same_host BEFORE WHAT; ...
#   finish               the summary, and the exit status
#
# Reporting. Each result is one line, "ok   - WHAT" or "FAIL - WHAT (script:line)". The last
# line is always "# N passed, M failed: <the failed checks>", also when the script dies: a
# command that fails under `set -e` is named with its file and line by the ERR trap, and a
# script that stops before `finish` (error, signal, unbound variable) exits non-zero and
# says so. Cleanups registered with on_exit run first, newest first.
#
# Host state. host_snapshot prints everything a lend may touch, in a form that must come
# back byte-identical: the mount table, the runtime directories in SNAP_DIRS (getfacl, type,
# mode, owner, group, inode, links of every entry), the files in SNAP_FILES, /run/sockhook
# (and its ACLs), /etc/sockhook and /etc/libvirt/hooks, and the live processes of the uids
# in SNAP_UIDS. Missing paths are recorded as missing, never an error.
#
# Installed mode (CI against an installed package), for the e2e suites:
#   SOCKHOOK_TEST_INSTALLED=1 bash tests/root/e2e_pulseaudio.sh /usr/bin/sockhook
# tests the sockhook that is installed instead of installing the one under test: the binary
# is the first argument, the hook is the one already in /etc/libvirt/hooks/qemu.d/sockhook
# (the suite fails at once, saying so, when it is missing) and the plugins are the installed
# ones (<prefix>/share/sockhook/plugins next to the binary's bin/, or
# SOCKHOOK_TEST_PLUGIN_DIR). Nothing is copied over them; /etc/sockhook (configuration and
# policy) is still backed up, replaced for the test and restored at exit.
#
# Overridable: E2E_TIMEOUT (seconds per bounded wait in e2e suites, default 20).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
DESKTOP=$REPO/tests/env/desktop.sh
LIBVIRT=$REPO/tests/env/libvirt.sh
SUITE_NAME=$(basename "$0" .sh)
ENV_NAME=$SUITE_NAME
# shellcheck source=../../env/common.bash
source "$REPO/tests/env/common.bash"

PASS=0
FAIL=0
FAILED=()
SUITE_DONE=no
SUITE_CLEANUPS=()
SNAP_DIRS=()
SNAP_FILES=()
SNAP_UIDS=()
SNAP_SED=

# ---------------------------------------------------------------- reporting

say() { printf '# %s\n' "$*"; }

# suite_where : "script:line" of the first caller outside this library.
suite_where() {
    local i
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        [[ ${BASH_SOURCE[i]} == "${BASH_SOURCE[0]}" ]] && continue
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

# ---------------------------------------------------------------- host state

# warm_run_sockhook : /run/sockhook and its state directory exist (they persist, like
# /run/libvirt), so that snapshots compare what one lend changes.
warm_run_sockhook() {
    install -d -m 0711 /run/sockhook
    install -d -m 0700 /run/sockhook/state
}

host_snapshot() {
    local - d f
    set +e +o pipefail  # a listing, never a reason to stop the suite
    {
        echo "## mounts"
        # Mount ids change with every mount; the rest must not.
        awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo | sort
        for d in "${SNAP_DIRS[@]}" /run/sockhook /etc/sockhook /etc/libvirt/hooks; do
            echo "## $d"
            [[ -e $d ]] || { echo "$d missing"; continue; }
            # Inode locks live only while a hook runs (a killed hook may leave one; the next
            # lend of that inode takes it over); everything else counts.
            # Sizes of regular files only: a directory's size on ext4 never shrinks back.
            if [[ $d == /etc/* ]]; then
                # Configuration is rewritten by rename on purpose (annotate, policy): its
                # content counts, not its inode (ext4 may hand the old number back, overlayfs
                # never does).
                find "$d" -xdev \( -type f -printf '%p %y %m %U %G %n %s\n' \) -o \
                    -printf '%p %y %m %U %G %n %l\n' 2>/dev/null | sort
                find "$d" -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
            else
                find "$d" -xdev \( -type f -printf '%p %y %m %U %G %i %n %s\n' \) -o \
                    -printf '%p %y %m %U %G %i %n\n' 2>/dev/null |
                    grep -v -E '^/run/sockhook/state/inode-[0-9-]+\.lock ' | sort
            fi
            find "$d" -xdev ! -name 'inode-*.lock' -print0 2>/dev/null | sort -z |
                xargs -0 -r getfacl -p 2>/dev/null || true
        done
        for f in "${SNAP_FILES[@]}"; do
            echo "## $f"
            stat -c '%n %F %a %u %g %i %s' "$f" 2>/dev/null || echo "$f missing"
        done
        echo "## processes of uids ${SNAP_UIDS[*]}"
        # Zombies are gone already (PID 1 reaps them late here); our own probes do not count.
        local uids; uids=$(IFS=,; echo "${SNAP_UIDS[*]}")
        [[ -z $uids ]] || ps -u "$uids" -o stat=,user=,comm=,args= 2>/dev/null |
            awk '$1 !~ /^Z/ && $3 !~ /^(ps|pactl|pw-cli|pw-dump)$/ {
                     if ($3 == "sockhook") { $1 = ""; $3 = ""; print } else print $2, $3 }' | sort
    } | sed -e "${SNAP_SED:-}"
}

# same_as_before FILE : the host matches the snapshot in FILE (retrying for a few seconds:
# PID 1 reaps zombies late here); prints a diff when it does not.
same_as_before() {
    local before=$1 deadline=$((SECONDS + 8))
    while :; do
        host_snapshot >"$TMP/snapshot.now"
        cmp -s "$before" "$TMP/snapshot.now" && return 0
        ((SECONDS < deadline)) || break
        sleep 0.3
    done
    diff -u "$before" "$TMP/snapshot.now" | sed 's/^/#   /' | head -60
    return 1
}

# same_host FILE WHAT : ok "WHAT: host byte-identical", or the difference.
same_host() { check "$2: host byte-identical" same_as_before "$1"; }

# ---------------------------------------------------------------- the desktop user (shtest)

# desktop_up : the desktop user of tests/env/desktop.sh, its SH_* variables. At exit its
# servers stop (it was up before), or it is torn down, and the users go again when this
# suite created them: a home left behind (a PulseAudio cookie, WirePlumber's state) would
# make the next run differ from a first one.
desktop_up() {
    DESKTOP_WAS_UP=no DESKTOP_USERS_EXISTED=no
    if id shtest >/dev/null 2>&1 && id shother >/dev/null 2>&1; then
        DESKTOP_USERS_EXISTED=yes
        mountpoint -q "/run/user/$(id -u shtest)" && DESKTOP_WAS_UP=yes
    fi
    on_exit desktop_down
    "$DESKTOP" user >/dev/null
    eval "$("$DESKTOP" env)"
    QEMU_UID=$(id -u libvirt-qemu)
    SNAP_DIRS=("$SH_RUNTIME")
    SNAP_FILES=("$SH_PULSE_COOKIE")
    SNAP_UIDS=("$SH_UID" "$QEMU_UID")
}
desktop_down() {
    if [[ $DESKTOP_WAS_UP == yes ]]; then
        "$DESKTOP" stop all >/dev/null 2>&1
    elif [[ $DESKTOP_USERS_EXISTED == yes ]]; then
        "$DESKTOP" teardown >/dev/null 2>&1
    else
        "$DESKTOP" teardown --users >/dev/null 2>&1
    fi
}

# ---------------------------------------------------------------- lend suites (no libvirt)

py=/usr/bin/python3            # the system python: test users cannot reach a root pyenv
lend_user=shlend               # owns the sockets
lend_user2=shlend2             # another regular user (a foreign owner)
lend_uid=2101
lend_uid2=2102
qemu_user=libvirt-qemu
bg_pids=()
lend_uuids=()                  # domains this test lends to; only these are cleaned up
created_users=()
mounted=()

# proxy_init : the start of the suites that run `sockhook proxy` by hand (KIND plain): what
# they start in the background (bg_pids) stops at exit, and $nobody_uid is the uid that
# proxy_as_nobody runs as and serves.
proxy_init() {
    on_exit lend_stop_bg
    nobody_uid=$(id -u nobody)
}

# as_nobody_in_domain ID CMD... : CMD as nobody in the cgroup of (stand-in) running domain ID.
as_nobody_in_domain() {
    local id=$1
    shift
    in_domain_cgroup "$id" setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

# proxy_as_nobody DIR BACKLOG LABEL : `sockhook proxy` as nobody, serving only nobody
# ($nobody_uid, see proxy_init) in the cgroup of domain $lend_id (as_nobody_in_domain), listening
# on DIR/proxy (passed as fd 3) and relaying to DIR/server; its pid is left in $proxy and bg_pids.
proxy_as_nobody() {
    "$py" - "$1" "$SOCKHOOK" "$nobody_uid" "$2" "$3" "$lend_id" <<'EOF' &
import os, socket, sys
d, exe, peer, backlog, label, domain = sys.argv[1:7]
listener = socket.socket(socket.AF_UNIX)
listener.bind(d + "/proxy")
os.chmod(d + "/proxy", 0o777)
listener.listen(int(backlog))
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.execvp("setpriv", ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "--no-new-privs", exe, "proxy", "--listen-fd", "3", "--connect",
                      d + "/server", "--peer-uid", peer, "--peer-domain", domain + ":/machine",
                      "--label", label])
EOF
    proxy=$!
    bg_pids+=("$proxy")
}

# lend_init : users, their runtime directories, our own configuration, the cleanup. The
# configuration is passed with `hook --config-dir` (the libvirt entry cannot do that), so
# that these suites never touch /etc/sockhook.
lend_init() {
    on_exit lend_cleanup
    local u id
    for u in "$lend_user:$lend_uid" "$lend_user2:$lend_uid2"; do
        id=${u#*:}
        u=${u%:*}
        if ! id "$u" >/dev/null 2>&1; then
            useradd -M -u "$id" -U -s /usr/sbin/nologin "$u"
            created_users+=("$u")
        fi
    done
    lend_gid=$(id -g "$lend_user")
    lend_gid2=$(id -g "$lend_user2")
    qemu_uid=$(id -u "$qemu_user")
    qemu_gid=$(getent group libvirt-qemu | cut -d: -f3)
    qemu_gid=${qemu_gid:-$(id -g "$qemu_user")}
    runtime=/run/user/$lend_uid
    lend_runtime_dir "$lend_uid" "$lend_gid"
    lend_runtime_dir "$lend_uid2" "$lend_gid2"
    SNAP_DIRS=("/run/user/$lend_uid" "/run/user/$lend_uid2")
    SNAP_UIDS=("$lend_uid" "$lend_uid2")
    etc=$TMP/etc
    install -d -m 755 "$etc" "$etc/plugins"
    install -m 644 "$REPO"/plugins/*.xml "$etc/plugins/"
    : >"$etc/policy.conf"
    chmod 644 "$etc/policy.conf"
    warm_run_sockhook
}

# lend_stop_bg : stops what the suite started in the background (bg_pids) and reaps it.
lend_stop_bg() {
    local pid
    for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null; done
}

lend_cleanup() {
    lend_stop_bg
    # Whatever a failed test left lent: release it through sockhook itself, then make sure.
    local u m
    for u in "${lend_uuids[@]}"; do
        [[ -e /run/sockhook/state/$u.xml ]] &&
            printf '<domain><name>cleanup</name><uuid>%s</uuid></domain>' "$u" |
            "$SOCKHOOK" hook cleanup release end - 2>/dev/null
        grep -o " /run/sockhook/libvirt-$u/[^ ]*" /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
        rm -rf "/run/sockhook/libvirt-$u" "/run/sockhook/state/$u".*
    done
    pkill -u "$lend_uid" 2>/dev/null
    pkill -u "$lend_uid2" 2>/dev/null
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null; rmdir "$m" 2>/dev/null; done
    for u in "${created_users[@]}"; do
        rm -rf "/home/$u"
        userdel "$u" 2>/dev/null
    done
}

# lend_runtime_dir UID GID: a fresh tmpfs on /run/user/UID, 0700, owned by the user (logind's).
lend_runtime_dir() {
    local dir=/run/user/$1
    mkdir -p "$dir"
    mount -t tmpfs -o "mode=0700,uid=$1,gid=$2,size=1m" tmpfs "$dir"
    mounted+=("$dir")
}

# lend_allow UUID...: the policy lets $lend_user lend every plugin to these domains.
lend_allow() {
    local u
    for u in "$@"; do printf '[%s]\n%s = *\n' "$u" "$lend_user"; done >"$etc/policy.conf"
    lend_uuids+=("$@")
}

# lend_setup UUID [SERVER...]: the start of a suite that lends to one domain. The policy lets
# $lend_user lend to UUID, which is left in $U, $L is its lend directory, and $lend_user
# serves each SERVER: NAME[:MODE] an echo server on $runtime/NAME (mode MODE, 0600 unless
# given; the last one's pid in $echo_pid), "pulse" lend_pulse_server.
lend_setup() {
    U=$1
    shift
    lend_allow "$U"
    L=/run/sockhook/libvirt-$U
    local s
    for s in "$@"; do
        if [[ $s == pulse ]]; then
            lend_pulse_server
        elif [[ $s == *:* ]]; then
            lend_echo_server "$lend_user" "$runtime/${s%%:*}" "${s#*:}"
        else
            lend_echo_server "$lend_user" "$runtime/$s"
        fi
    done
}

# relend_setup : the situation a re-lend meets, for a domain $U lent with pipewire:bind and
# wayland:proxy by lend_setup (its pipewire-0 server in $server): the owner's server restarts
# (a new inode at the same name; $server is the new one) and the proxy dies ($old_proxy).
# Then relent_bind says the lend directory shows the new inode (a new bind mount), and
# proxy_running that a new proxy runs.
relend_setup() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    rm -f "$runtime/pipewire-0"
    lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
    server=$echo_pid
    old_proxy=$(proxy_pid)
    kill "$old_proxy"
    wait_until 5 test ! -e "/proc/$old_proxy" || not_ok "the proxy $old_proxy did not stop"
}
proxy_pid() {
    "$SOCKHOOK" status --json | "$py" -c 'import json, sys
print([l["proxy_pid"] for l in json.load(sys.stdin) if l["socket"] == "wayland" and l["uuid"] == sys.argv[1]][0])' "$U"
}
relent_bind() { [[ $(stat -c %i "$L/pipewire-0") == $(stat -c %i "$runtime/pipewire-0") ]]; }
proxy_running() { local p; p=$(proxy_pid); [[ $p != "$old_proxy" && $p -gt 0 && -e /proc/$p ]]; }
not() { ! "$@"; }

# lend_one_line WHAT RC EXPECT: the hook exited (RC) 1 with exactly one line on stderr
# ($TMP/hook.err), and that line contains EXPECT.
lend_one_line() {
    local what=$1 rc=$2 expect=$3 lines
    lines=$(wc -l <"$TMP/hook.err")
    if [[ $rc -ne 1 ]]; then
        not_ok "$what: exit $rc, want 1 ($(head -c 300 "$TMP/hook.err"))"
    elif [[ $lines -ne 1 ]]; then
        not_ok "$what: $lines lines on stderr, want 1: $(head -c 300 "$TMP/hook.err")"
    elif ! grep -qF -- "$expect" "$TMP/hook.err"; then
        not_ok "$what: stderr lacks '$expect': $(head -c 300 "$TMP/hook.err")"
    else
        ok "$what: $(cat "$TMP/hook.err")"
    fi
}

# lend_as USER CMD...: runs CMD as USER (own group only, no supplementary groups).
lend_as() {
    local user=$1
    shift
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups "$@"
}

# lend_spawn USER CMD...: starts CMD as USER in the background; $spawned is the pid of CMD
# itself (exec, so that killing it kills the program, not a wrapper shell).
lend_spawn() {
    local user=$1
    shift
    (exec setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups "$@") &
    spawned=$!
    bg_pids+=("$spawned")
}

# lend_as_qemu CMD...: runs CMD as QEMU does under libvirt: QEMU's uid, the configured group
# (the journal's qemu gid) and the user's supplementary groups.
lend_as_qemu() {
    in_domain_cgroup "$lend_id" setpriv --reuid="$qemu_uid" --regid="$qemu_gid" --init-groups "$@"
}

# The domain id that lend_domain writes, as libvirt does for a running domain. A proxy lend
# serves only QEMU's uid in that domain's cgroup (S10), so lend_as_qemu runs its command there.
lend_id=${lend_id:-4242}

# cgroup2_root : where the cgroup v2 hierarchy is mounted ("" if nowhere).
cgroup2_root() { findmnt -n -o TARGET -t cgroup2 | head -1; }

# domain_cgroup ID : the cgroup v2 directory of a running domain with that id, as libvirt
# makes it without systemd (/machine/qemu-ID-NAME.libvirt-qemu); made if missing, and every
# such directory is removed at exit (remove_suite_cgroups). Only root can move a process into
# it, as with libvirt's.
domain_cgroup() {
    local root dir
    root=$(cgroup2_root)
    [[ -n $root ]] || { echo "no cgroup2 hierarchy is mounted" >&2; return 1; }
    dir=$root/machine/qemu-$1-sockhooktest.libvirt-qemu
    if [[ ! -d $root/machine ]]; then
        mkdir "$root/machine" && : >"$TMP/made-machine-cgroup"
    fi
    [[ -d $dir ]] || mkdir "$dir"
    printf '%s\n' "$dir"
}
# remove_suite_cgroups : removes what domain_cgroup made (run after the suite's processes end).
remove_suite_cgroups() {
    local root dir
    root=$(cgroup2_root)
    [[ -n $root ]] || return 0
    for dir in "$root"/machine/qemu-*-sockhooktest.libvirt-qemu; do
        [[ -d $dir ]] && rmdir "$dir" 2>/dev/null
    done
    [[ -e $TMP/made-machine-cgroup ]] && rmdir "$root/machine" 2>/dev/null
    return 0
}

# fuse_up DIR [allow_other] : mounts lib/fuse_stall.py's never-answering FUSE on DIR for the
# lend user (bounded wait for it); $TMP/fuse.report says "stalled PID" per request. fuse_down
# (register it with on_exit) closes /dev/fuse, so every stuck request fails, and unmounts that FUSE only.
fuse_pid="" fuse_mnt=""
fuse_up() {
    fuse_mnt=$1
    rm -f "$TMP/fuse.report"
    "$py" "$REPO/tests/root/lib/fuse_stall.py" "$fuse_mnt" "$TMP/fuse.report" "$lend_uid" "$lend_gid" "${2:-}" &
    fuse_pid=$!
    wait_until 10 grep -q mounted "$TMP/fuse.report" || die "the FUSE server did not mount $fuse_mnt"
}
fuse_down() {
    [[ -n $fuse_pid ]] || return 0
    kill "$fuse_pid" 2>/dev/null
    wait "$fuse_pid" 2>/dev/null || true
    # By the mount table's fields: only a FUSE on that point, never what lies beneath it.
    while awk -v m="$fuse_mnt" '$5 == m && / - fuse /' /proc/self/mountinfo | grep -q .; do
        umount -l "$fuse_mnt"
    done
    fuse_pid="" fuse_mnt=""
}

# pulse_test_home : a fresh HOME for a PulseAudio test client as QEMU's user, whose client.conf
# turns shared memory off. Such a client, outside QEMU's mount namespace, negotiates memfd and
# then fails through the proxy ("Expected 1 memfd fd to be received over pipe; got 0"), with
# the previous release too; QEMU's own client negotiates none (its /dev has no shm). The
# clients here test who the proxy serves, not shared memory. Prints the directory.
pulse_test_home() {
    local home
    home=$(mktemp -d)
    printf 'enable-shm = no\nenable-memfd = no\n' >"$home/client.conf"
    chmod 644 "$home/client.conf"
    chown libvirt-qemu "$home"
    printf '%s\n' "$home"
}

# pulse_as_qemu UUID [WRAPPER...] : `pactl info` as QEMU's user through the PulseAudio lend of
# domain UUID, run under WRAPPER (in_cgroup_of PID, in_qemu_ns NAME, or nothing: no VM's
# cgroup). Returns pactl's exit: 1 when it could not connect, 99 when WRAPPER could not run
# it; on failure pactl's first lines are shown.
pulse_as_qemu() {
    local uuid=$1 home rc=0
    shift
    home=$(pulse_test_home)
    "$@" setpriv --reuid="$QEMU_UID" --regid="$(id -g libvirt-qemu)" --clear-groups \
        env -i HOME="$home" PULSE_CLIENTCONFIG="$home/client.conf" \
        PULSE_SERVER="unix:/run/sockhook/libvirt-$uuid/pulse-native" \
        PULSE_COOKIE="/run/sockhook/libvirt-$uuid/pulse-cookie" \
        timeout 10 pactl info >"$TMP/pactl.out" 2>&1 || rc=$?
    rm -rf "$home"
    ((rc == 0)) || sed 's/^/#   pactl: /' "$TMP/pactl.out" | head -3
    return "$rc"
}
# pulse_refused UUID [WRAPPER...] : pulse_as_qemu ran pactl and it could not connect (exit 1),
# not a client that never ran.
pulse_refused() {
    local rc=0
    pulse_as_qemu "$@" || rc=$?
    [[ $rc == 1 ]] || { say "pactl exit $rc, want 1"; return 1; }
}

# in_domain_cgroup ID CMD... : runs CMD in the cgroup of a (stand-in) running domain ID.
in_domain_cgroup() {
    local dir
    dir=$(domain_cgroup "$1") || return 1
    shift
    bash -c 'echo $$ >"$0/cgroup.procs" || { echo "in_domain_cgroup: cannot join $0" >&2; exit 99; }
             exec "$@"' "$dir" "$@"
}

# in_cgroup_of PID CMD... : runs CMD in the cgroup v2 group of process PID (e.g. QEMU's own),
# or in its parent when that group is threaded (libvirt's emulator and vcpu groups take threads,
# not processes); both are the domain's. Exits 99, saying why, when it cannot join either.
in_cgroup_of() {
    local root path
    root=$(cgroup2_root)
    path=$(sed -n 's/^0:://p' "/proc/$1/cgroup")
    shift
    bash -c 'for d in "$0" "${0%/*}"; do
                 if echo $$ 2>/dev/null >"$d/cgroup.procs"; then exec "$@"; fi
             done
             echo "in_cgroup_of: cannot join $0 or its parent" >&2; exit 99' "$root$path" "$@"
}

# lend_echo_server USER PATH [MODE]: a unix echo server run by USER, socket mode MODE (0600).
# Waits (bounded) until the socket exists. Its pid goes to bg_pids and $echo_pid.
lend_echo_server() {
    local user=$1 path=$2 mode=${3:-0600}
    lend_spawn "$user" "$py" -c '
import os, socket, sys, threading
path, mode = sys.argv[1], int(sys.argv[2], 8)
os.umask(0o777 & ~mode)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(64)
def serve(c):
    with c:
        while True:
            d = c.recv(4096)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$path" "$mode"
    echo_pid=$spawned
    wait_until 2 test -S "$path" || { not_ok "echo server on $path did not start"; return 1; }
}

# lend_pulse_server : an echo server on $runtime/pulse/native (0600, in a 0700 pulse/) and a
# home ($home) with a 256-byte PulseAudio cookie (0600), for the companion-file copy.
lend_pulse_server() {
    install -d -m 0700 -o "$lend_user" -g "$lend_user" "$runtime/pulse"
    lend_echo_server "$lend_user" "$runtime/pulse/native" 0600
    home=/home/$lend_user
    install -d -m 0700 -o "$lend_user" -g "$lend_user" "$home" "$home/.config" "$home/.config/pulse"
    head -c 256 /dev/urandom >"$home/.config/pulse/cookie"
    chown "$lend_user:" "$home/.config/pulse/cookie"
    chmod 600 "$home/.config/pulse/cookie"
    SNAP_FILES+=("$home/.config/pulse/cookie")
}

# lend_ping USER PATH: USER connects to PATH and gets "ping" echoed (2 s limit). USER "qemu"
# means QEMU's identity as libvirt sets it up.
lend_ping() {
    local run=(lend_as "$1")
    [[ $1 == qemu ]] && run=(lend_as_qemu)
    "${run[@]}" "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"ping")
sys.exit(0 if s.recv(16) == b"ping" else 1)
' "$2" 2>/dev/null
}

# lend_domain NAME UUID SOCKETS...: domain XML; each SOCKET is "plugin:method[:required]".
lend_domain() {
    local name=$1 uuid=$2
    shift 2
    printf "<domain type='kvm' id='%s'><name>%s</name><uuid>%s</uuid><metadata>" "$lend_id" "$name" "$uuid"
    printf "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>"
    local s plugin method required
    for s in "$@"; do
        IFS=: read -r plugin method required <<<"$s"
        printf "<sockhook:socket plugin='%s' owner='%s' method='%s' required='%s' wait='%s'/>" \
            "$plugin" "$lend_user" "$method" "${required:-yes}" "${lend_wait:-0}"
    done
    printf "</sockhook:sockets></metadata></domain>"
}

# lend_hook NAME OP SUB XML: runs the hook as libvirt would; stderr to $TMP/hook.err.
lend_hook() {
    printf '%s' "$4" | "$SOCKHOOK" hook --config-dir "$etc" "$1" "$2" "$3" - 2>"$TMP/hook.err"
}

# syslog_listen : the hook logs to syslog only. Without a syslog daemon here, a listener on
# /dev/log (removed at exit) keeps the lines in $TMP/syslog for `logged_once`; with one (or
# another suite's listener), nothing is kept and logged_once says so.
SYSLOG_PID=
syslog_listen() {
  [[ -e /dev/log ]] && return 0
  : >"$TMP/syslog"
  "$py" -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
' "$TMP/syslog" &
  SYSLOG_PID=$!
  on_exit syslog_stop
  wait_until 5 test -S /dev/log || die "cannot listen on /dev/log"
}
syslog_stop() { [[ -z $SYSLOG_PID ]] || { kill "$SYSLOG_PID"; wait "$SYSLOG_PID"; rm -f /dev/log; } 2>/dev/null; }

# logged_once TEXT : exactly one line that the hook logged contains TEXT (without a listener,
# true, saying that the text was not checked).
logged_once() {
  [[ -n $SYSLOG_PID ]] || { say "a syslog daemon runs: '$1' is not checked"; return 0; }
  sleep 0.2  # datagrams already sent are read within this
  [[ $(grep -c -F -- "$1" "$TMP/syslog") -eq 1 ]] ||
    { say "logged $(grep -c -F -- "$1" "$TMP/syslog") times: $1"; return 1; }
}

# ---------------------------------------------------------------- e2e suites (libvirt, QEMU)

HOOK=/etc/libvirt/hooks/qemu.d/sockhook
ETC=/etc/sockhook
URI=qemu:///system
E2E_TIMEOUT=${E2E_TIMEOUT:-20}
E2E_PREFIX=shtest-e2e-
E2E_UUIDS=()

# virsh_ ARGS... : virsh on the system URI, bounded: a QEMU that waits for something that
# never comes (a server its audiodev wants) holds `virsh start` forever, and the suite with it.
virsh_() { timeout --kill-after=10 "${E2E_VIRSH_TIMEOUT:-180}" virsh -q -c "$URI" "$@"; }

# e2e_init : skips without the tools, serialises e2e scripts with a lock, installs the hook
# the way install.sh does (or checks the installed one: installed mode, above), backs up what
# was there, brings libvirtd up and reloads it. At exit our domains (shtest-e2e-*) go, what
# we started stops and the backed-up files come back.
e2e_init() {
    need_tools virsh libvirtd virtlogd qemu-system-x86_64 pactl pw-cli pulseaudio pipewire \
        nsenter getfacl findmnt setpriv flock
    # One e2e script at a time: they share libvirtd, /etc/sockhook and the desktop user.
    exec 9>/run/sockhook-e2e.lock
    flock -w 900 9 || die "another e2e script holds /run/sockhook-e2e.lock"
    E2E_INSTALLED=${SOCKHOOK_TEST_INSTALLED:-0}
    [[ $E2E_INSTALLED == 1 ]] && e2e_check_installed
    BACKUP=$(mktemp -d /run/sockhook-e2e-backup.XXXXXX)
    # shellcheck disable=SC2034 # the scripts' reference host_snapshot, for same_as_before
    BEFORE=$TMP/before
    # What runs already is someone else's: we stop only what we start.
    LIBVIRTD_WAS_UP=no
    "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running' && LIBVIRTD_WAS_UP=yes
    # The desktop goes last at exit: releasing the domains' lends needs its runtime directory.
    desktop_up
    on_exit e2e_cleanup
    e2e_backup
    e2e_install
    "$LIBVIRT" up
    # libvirt looks hooks up at start and on SIGHUP only.
    "$LIBVIRT" reload
    warm_run_sockhook
}

# Installed mode: the hook and the plugins must be there already; say what is missing.
e2e_check_installed() {
    local plugins=${SOCKHOOK_TEST_PLUGIN_DIR:-$(dirname "$(dirname "$SOCKHOOK")")/share/sockhook/plugins}
    [[ -x $HOOK && $(stat -c %u "$HOOK") == 0 ]] ||
        die "installed mode: no root-owned executable hook at $HOOK; install sockhook first"
    local p
    for p in pipewire pulseaudio jack wayland; do
        [[ -f $plugins/$p.xml ]] ||
            die "installed mode: the $p plugin is not installed ($plugins/$p.xml is missing)"
    done
    say "installed mode: $SOCKHOOK, hook $HOOK, plugins $plugins"
}

e2e_backup() {
    [[ -e $ETC ]] && cp -a "$ETC" "$BACKUP/etc-sockhook"
    [[ -e $HOOK ]] && cp -a "$HOOK" "$BACKUP/hook"
    [[ -d ${HOOK%/*} ]] || touch "$BACKUP/no-qemu.d"
    touch "$BACKUP/complete"
}

e2e_restore() {
    [[ -f $BACKUP/complete ]] || { rm -rf "$BACKUP"; return 0; }
    rm -rf "$ETC"
    [[ -e $BACKUP/etc-sockhook ]] && cp -a "$BACKUP/etc-sockhook" "$ETC"
    if [[ $E2E_INSTALLED == 1 ]]; then
        # Only a hook a negative test moved aside goes back; the installed one stays.
        [[ -e $HOOK_PARKED ]] && mv "$HOOK_PARKED" "$HOOK"
    else
        rm -f "$HOOK"
        [[ -e $BACKUP/hook ]] && cp -a "$BACKUP/hook" "$HOOK"
        [[ -e $BACKUP/no-qemu.d ]] && rmdir "${HOOK%/*}" 2>/dev/null
    fi
    rm -rf "$BACKUP"
}

# install.sh's way: a copy of the binary (AppArmor mediates hooks by path), root-owned
# plugins, a config and an empty, default-deny policy. Installed mode: the config and the
# policy only.
e2e_install() {
    if [[ $E2E_INSTALLED != 1 ]]; then
        install -D -m 0755 -o root -g root "$SOCKHOOK" "$HOOK"
        install -d -m 0755 -o root -g root "$ETC" "$ETC/plugins"
        rm -f "$ETC"/plugins/*.xml
        install -m 0644 -o root -g root "$REPO"/plugins/*.xml "$ETC/plugins/"
    fi
    install -d -m 0755 -o root -g root "$ETC"
    printf 'dry_run = false\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/sockhook.conf"
    printf '# e2e: default deny\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/policy.conf"
}

e2e_cleanup() {
    local d
    if "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running'; then
        # One name a line: a name may hold spaces (tests/root/lend_names.sh).
        while IFS= read -r d; do
            virsh_ destroy "$d" >/dev/null 2>&1
            virsh_ undefine "$d" >/dev/null 2>&1
        done < <(virsh_ list --all --name 2>/dev/null | grep "^$E2E_PREFIX")
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
}

# e2e_install_holder PROGRAM : a holder program (sockhook-context-holder,
# sockhook-wayland-holder) from beside $SOCKHOOK where install.sh puts it: the bindir the build
# tree's CMakeCache.txt names. The hook is a copy in qemu.d (e2e_install), beside which nothing
# else may be (libvirt runs every executable there), so it finds the holder there. Removed at
# exit; installed mode uses the installed one. Skips when the bindir cannot be known or holds
# one already (an installed sockhook).
e2e_install_holder() {
    [[ $E2E_INSTALLED == 1 ]] && return 0
    local holder cache prefix bindir
    holder=$(dirname "$(readlink -f "$SOCKHOOK")")/$1
    [[ -x $holder ]] || die "no $1 beside $SOCKHOOK"
    cache=$(dirname "$(readlink -f "$SOCKHOOK")")/CMakeCache.txt
    prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$cache" 2>/dev/null)
    bindir=$(sed -n 's/^CMAKE_INSTALL_BINDIR:PATH=//p' "$cache" 2>/dev/null)
    [[ -n $prefix ]] || skip "no CMakeCache.txt beside $SOCKHOOK: where would install.sh put $1?"
    [[ $bindir == /* ]] || bindir=$prefix/${bindir:-bin}
    [[ -e $bindir/$1 ]] && skip "$bindir/$1 exists (an installed sockhook?)"
    ((${#E2E_HOLDERS[@]})) || on_exit e2e_remove_holders
    E2E_HOLDERS+=("$bindir/$1")
    install -D -m 0755 -o root -g root "$holder" "$bindir/$1"
}
E2E_HOLDERS=()
e2e_remove_holders() { rm -f "${E2E_HOLDERS[@]}"; }

# hook_disable / hook_enable : the hook leaves libvirt's hook directory and comes back (the
# negative scenarios); e2e_restore puts it back should the suite stop in between.
# The hook is parked beside qemu.d, on the same file system, so that it keeps its inode (a
# move to /run would copy it, and the snapshot would see a new inode); libvirt runs nothing
# of that name (only hooks/qemu and hooks/qemu.d/*; a dotfile in qemu.d would run).
HOOK_PARKED=/etc/libvirt/hooks/.sockhook-under-test
hook_disable() { mv "$HOOK" "$HOOK_PARKED"; "$LIBVIRT" reload; }
hook_enable() { mv "$HOOK_PARKED" "$HOOK"; "$LIBVIRT" reload; }

# define_domain NAME [UUID_VAR [SED_SCRIPT]] : a small TCG domain (libvirt.sh's FINDINGS
# template, edited by SED_SCRIPT); its UUID goes to the EXIT trap and into the variable
# UUID_VAR, its definition as defined is kept for annotate_removed.
define_domain() {
    local xml=$TMP/$1.defined.xml uuid
    "$LIBVIRT" undefine "$1" >/dev/null 2>&1 || true
    "$LIBVIRT" xml "$1" | sed "${3:-}" >"$xml"
    virsh_ define "$xml" >/dev/null
    uuid=$(uuid_of "$1")
    E2E_UUIDS+=("$uuid")  # what the EXIT trap may release
    [[ -z ${2:-} ]] || printf -v "$2" '%s' "$uuid"
    virsh_ dumpxml --inactive "$1" >"$TMP/$1.original.xml"
}

uuid_of() { virsh_ domuuid "$1" | tr -d '[:space:]'; }
# qemu_pid NAME : libvirt's pid file, named after the domain; where there is none by that name
# (a 200-byte name, tests/root/lend_names.sh), the QEMU of its UUID.
qemu_pid() {
    cat "/run/libvirt/qemu/$1.pid" 2>/dev/null ||
        pgrep -u libvirt-qemu -f -- "-uuid $(uuid_of "$1")" | head -n1
}
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

# started NAME [HOW] : virsh start NAME, ok with its wall time, or not ok with virsh's output
# on one line; the status is start's.
started() {
    local how=${2:+, $2}
    if start "$1"; then
        ok "virsh start $1$how ($START_TIME s)"
    else
        not_ok "virsh start $1$how: $(tr '\n' ' ' <<<"$START_OUT")"
        return 1
    fi
}

# start_fails NAME WHAT PATTERN : virsh start NAME must fail, saying PATTERN (grep -E; the
# check WHAT). A start that succeeds is not ok, and the domain is stopped again.
start_fails() {
    if start "$1"; then
        not_ok "$2 (virsh start $1 succeeded)"
        stop "$1"
        return 0
    fi
    show "$START_OUT"
    check "$2" grep -q -E "$3" <<<"$START_OUT"
}

# refused_without_hook NAME WHAT PATTERN : the negative, start_fails with the hook out of
# libvirt's hook directory.
refused_without_hook() {
    hook_disable
    start_fails "$@"
    hook_enable
}

# show TEXT : TEXT indented as a comment.
show() { printf '%s\n' "$1" | sed 's/^/#   /'; }

# doctor_ok NAME [NOTE] : `sockhook doctor NAME` (shown) finds nothing that would stop the
# lend.
doctor_ok() {
    local doc rc=0
    doc=$("$SOCKHOOK" doctor "$1" 2>&1) || rc=$?
    show "$doc"
    check "doctor $1${2:+ ($2)} finds nothing that would stop the lend" test "$rc" -eq 0
}

# plan_ok NAME : `sockhook plan --domain NAME` finds every variable provided.
plan_ok() {
    local plan
    plan=$("$SOCKHOOK" plan --domain "$1") || true  # judged by what it prints
    check "plan finds every variable provided" \
        bash -c "grep -q 'provided by' <<<\"\$1\" && ! grep -q MISSING <<<\"\$1\"" _ "$plan"
}

# lent_in_ns NAME UUID SOCKET WHAT : SOCKET is a socket in UUID's lend directory inside QEMU's
# mount namespace.
lent_in_ns() {
    NS=$(in_qemu_ns "$1" ls -l "/run/sockhook/libvirt-$2/" 2>&1 || true)
    show "$NS"
    check "$4" grep -q "^s.* $3\$" <<<"$NS"
}

# one_qemu_acl_entry SOCKET : while lent by bind, SOCKET's inode carries exactly one ACL entry
# for QEMU's user.
one_qemu_acl_entry() {
    check "the socket inode carries exactly one entry for QEMU's user while lent" \
        bash -c "getfacl -p '$1' 2>/dev/null | grep -c '^user:libvirt-qemu:rw-' | grep -qx 1"
}

# What QEMU says when its pa audiodev cannot reach the server (grep -E).
# shellcheck disable=SC2034 # read by the scripts
PA_REFUSED='Could not init .pa. audio driver|could not connect to PulseAudio server'

pulse_client_count() {
    "$DESKTOP" as-user pactl list short clients 2>/dev/null | grep -c 'qemu-system-x86_64' || true
}
has_pulse_clients() { (($(pulse_client_count) >= ${1:-1})); }

pipewire_has_qemu() {
    "$DESKTOP" as-user pw-cli ls Client 2>/dev/null | grep -q 'application.name = "qemu-system-x86_64"'
}

no_pipewire_qemu() { ! pipewire_has_qemu; }

# in_qemu_ns NAME CMD... : run CMD in QEMU's mount namespace and its cgroup, where a proxy
# lend takes it for that domain's QEMU (S10).
# (-r: below QEMU's root directory; in a chroot, such as CI's Debian 13 root, the
# namespace's own root is the host's.)
in_qemu_ns() {
    local pid
    pid=$(qemu_pid "$1")
    shift
    in_cgroup_of "$pid" nsenter -t "$pid" -m -r "$@"
}

# annotate_removed NAME PLUGIN : annotate --remove gives back the persistent definition
# exactly as define_domain defined it and revokes the domain's allowance.
annotate_removed() {
    local uuid; uuid=$(uuid_of "$1")
    annotate "$1" --plugin "$2" --remove >/dev/null
    check "annotate --remove restores the persistent definition exactly" \
        diff "$TMP/$1.original.xml" <(virsh_ dumpxml --inactive "$1")
    check "annotate --remove revokes the allowance" bash -c "! grep -q -i $uuid $ETC/policy.conf"
}

# annotate NAME ARGS... : sockhook annotate as root (records the policy, like a user would).
annotate() { local d=$1; shift; "$SOCKHOOK" annotate "$d" "$@" 2>&1; }

# annotate_ok NAME ARGS... : says and runs annotate, which must exit 0 (its output shown);
# the persistent definition it leaves is in $XML.
annotate_ok() {
    local out
    say "annotate $*"
    out=$(annotate "$@") || not_ok "annotate ${*:2} exits 0: $out"
    show "$out"
    XML=$(virsh_ dumpxml --inactive "$1")
}

# qemu_env_has WHAT NAME VALUE : $XML gives QEMU the variable NAME=VALUE (<qemu:env>).
qemu_env_has() {
    check "$1" grep -q "<qemu:env name='$2' value='$3'/>" <<<"$XML"
}

policy_has() { grep -q -i "$1" "$ETC/policy.conf"; }

# ---------------------------------------------------------------- start

# `source lib/suite.bash KIND "$@"`: KIND plain runs suite_init with the script's arguments,
# lend and e2e also lend_init or e2e_init.
case ${1:-} in
    plain) shift; suite_init "$@" ;;
    lend) shift; suite_init "$@"; lend_init ;;
    e2e) shift; suite_init "$@"; e2e_init ;;
    *) echo "usage: source ${BASH_SOURCE[0]} plain|lend|e2e \"\$@\"" >&2; exit 2 ;;
esac
