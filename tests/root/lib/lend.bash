# shellcheck shell=bash
# lend.bash - the lend suites (KIND lend, no libvirt): the users shlend and shlend2 on their own
# tmpfs, our own configuration and policy, the hook run by hand as libvirt would, the domain
# XML it reads, and what it logs.
# A part of suite.bash, which sources it: never sourced or run alone.

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

# lend_sway : the lend user's sway, headless and software-rendered, with nothing of root's
# environment (bounded waits for its wayland-1 and IPC sockets); sets $sway_pid and $ipc.
lend_sway() {
    lend_spawn "$lend_user" env -i PATH=/usr/bin:/bin HOME=/nonexistent XDG_RUNTIME_DIR="$runtime" \
        WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman \
        sway -c /dev/null
    sway_pid=$spawned
    wait_until 20 test -S "$runtime/wayland-1" || die "sway made no $runtime/wayland-1"
    wait_until 20 compgen -G "$runtime/sway-ipc.*.sock" || die "sway made no IPC socket"
    ipc=$(compgen -G "$runtime/sway-ipc.*.sock" | head -1)
}

# lend_as_qemu CMD...: runs CMD as QEMU does under libvirt: QEMU's uid, the configured group
# (the journal's qemu gid) and the user's supplementary groups.
lend_as_qemu() {
    in_domain_cgroup "$lend_id" setpriv --reuid="$qemu_uid" --regid="$qemu_gid" --init-groups "$@"
}

# The domain id that lend_domain writes, as libvirt does for a running domain. A proxy lend
# serves only QEMU's uid in that domain's cgroup (S10), so lend_as_qemu runs its command there.
lend_id=${lend_id:-4242}

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

# context_holder_pid UID COMM : the holder (sockhook-contex, sockhook-waylan: the comm is
# cut to 15 characters) that runs as UID ("" if none).
context_holder_pid() { pgrep -u "$1" -x "$2" | head -n1 || true; }
# context_proxy_pid UID DOMAIN_ID : the proxy in front of a context that runs as UID and serves
# only domain DOMAIN_ID's QEMU ("" if none).
context_proxy_pid() { pgrep -u "$1" -f "^sockhook proxy .*--peer-domain $2:" | head -n1 || true; }
# journal_has_pid UUID PID : the journal of the lend to UUID records a process PID (a proxy
# or a holder, both kind="proxy"): PID is this lend's, not some other process of the owner's.
journal_has_pid() { [[ -n $2 ]] && grep -Eq "[[:space:]]pid=[\"']$2[\"']" "/run/sockhook/state/$1.xml"; }
# connect_errno PATH RUNNER... : what connect() to PATH says ("ok" or the errno's name) to a
# process that RUNNER starts (e.g. as QEMU's user in its VM).
connect_errno() {
    local path=$1
    shift
    "$@" "$py" -c '
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))' "$path"
}

# check_context_lend PLUGIN OWNER OWNER_UID QEMU_UID DOMAIN_ID RUNNER... : the checks after the
# prepare (exit $rc) of a context lend of OWNER's PLUGIN to domain DOMAIN_ID ($U, its lend socket
# $L/PLUGIN-0): the lend socket is QEMU's; the holder and the proxy run (the suite's holder_pid
# and proxy_pid: $HP, $PP) and the journal records them; the context socket is OWNER's and a
# process that RUNNER starts as QEMU's user cannot connect to it; status shows the lend healthy
# ($st).
check_context_lend() {
    local plugin=$1 owner=$2 owner_uid=$3 qemu=$4 domain=$5 e
    shift 5
    check "prepare succeeds ($(head -c 300 "$TMP/hook.err"))" test "$rc" -eq 0
    check "the lend socket is QEMU's, 0600" \
        test "$(stat -c '%u %a %F' "$L/$plugin-0" 2>/dev/null)" = "$qemu 600 socket"
    HP=$(holder_pid)
    check "the holder runs as $owner" test -n "$HP"
    check "... and it is this lend's: the journal records its pid (${HP:-none})" journal_has_pid "$U" "$HP"
    PP=$(proxy_pid)
    check "a proxy runs as $owner in front of it, serving only domain $domain's QEMU" test -n "$PP"
    check "... and it is this lend's: the journal records its pid (${PP:-none})" journal_has_pid "$U" "$PP"
    check "the context socket is $owner's, 0600" \
        test "$(stat -c '%u %a %F' "$L/$plugin-0.context" 2>/dev/null)" = "$owner_uid 600 socket"
    e=$(connect_errno "$L/$plugin-0.context" "$@")
    check "QEMU's user cannot connect to the context socket itself (connect: $e)" test "$e" = EACCES
    st=$("$SOCKHOOK" status 2>&1 || true)
    show "$st"
    check "status shows the context lend, healthy, with the proxy's pid" \
        bash -c "grep -q '$plugin: context, owner $owner' <<<\"\$1\" && grep -q 'health ok, proxy pid ${PP:-x}' <<<\"\$1\"" _ "$st"
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
