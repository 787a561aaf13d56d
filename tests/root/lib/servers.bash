# shellcheck shell=bash
# servers.bash - the servers a lend serves and the clients that try them: the desktop user of
# tests/env/desktop.sh (real PipeWire, PulseAudio, Wayland), the lend suites' echo and
# PulseAudio stand-ins, a never-answering FUSE, and PulseAudio or PipeWire asked for QEMU's
# connections.
# A part of suite.bash, which sources it: never sourced or run alone.

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

# desktop_lend NAME UUID PLUGIN METHOD : a domain NAME (UUID, id $lend_id) that lends the
# desktop user's (shtest) PLUGIN by METHOD, allowed in $TMP/etc/policy.conf, then the hook's
# prepare with the configuration in $TMP/etc (its stderr in $TMP/err; its status returned).
# Sets $xml and $envs (QEMU's environment from `sockhook plan --json`, the same the hook checks).
desktop_lend() {
    local name=$1 uuid=$2 plugin=$3 method=$4
    printf '[%s]\nshtest = *\n' "$uuid" >>"$TMP/etc/policy.conf"
    xml="<domain type='kvm' id='$lend_id'><name>$name</name><uuid>$uuid</uuid><metadata>"
    xml+="<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>"
    xml+="<sockhook:socket plugin='$plugin' owner='shtest' method='$method' wait='2'/>"
    xml+="</sockhook:sockets></metadata></domain>"
    mapfile -t envs < <(printf '%s' "$xml" |
        "$SOCKHOOK" plan - --plugin-dir "$TMP/etc/plugins" --policy "$TMP/etc/policy.conf" --json |
        "$py" -c 'import json,sys; [print(e["name"]+"="+e["value"]) for s in json.load(sys.stdin)["sockets"] for e in s["env"]]')
    printf '%s' "$xml" | "$SOCKHOOK" hook --config-dir "$TMP/etc" "$name" prepare begin - 2>"$TMP/err"
}
# desktop_release_all NAME : a suite's cleanup: the hook's release (as of domain NAME) of each
# domain in $uuids whose journal is still there.
desktop_release_all() {
    local u
    for u in "${uuids[@]}"; do
        [[ -f /run/sockhook/state/$u.xml ]] &&
            printf '<domain><name>%s</name><uuid>%s</uuid></domain>' "$1" "$u" |
            "$SOCKHOOK" hook --config-dir "$TMP/etc" "$1" release end - 2>/dev/null
    done
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

pulse_client_count() {
    "$DESKTOP" as-user pactl list short clients 2>/dev/null | grep -c 'qemu-system-x86_64' || true
}
has_pulse_clients() { (($(pulse_client_count) >= ${1:-1})); }

pipewire_has_qemu() {
    "$DESKTOP" as-user pw-cli ls Client 2>/dev/null | grep -q 'application.name = "qemu-system-x86_64"'
}

no_pipewire_qemu() { ! pipewire_has_qemu; }
