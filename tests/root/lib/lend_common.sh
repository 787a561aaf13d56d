# Shared setup for the tests/root/lend_*.sh scripts (sourced, never run by ctest: ctest only
# picks up tests/root/*.sh). Provides a test user with its own tmpfs runtime directory, echo
# servers on unix sockets, the installed configuration, domain XML, host snapshots and a
# cleanup that runs even when a test fails.
#
#   source "$(dirname "$0")/lib/lend_common.sh"; lend_init "$1"

py=/usr/bin/python3            # the system python: test users cannot reach a root pyenv
lend_user=shlend               # owns the sockets
lend_user2=shlend2             # another regular user (a foreign owner)
lend_uid=2101
lend_uid2=2102
qemu_user=libvirt-qemu
fails=0
bg_pids=()
lend_uuids=()                  # domains this test lends to; only these are cleaned up
created_users=()
mounted=()

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

lend_cleanup() {
  set +e
  local pid
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null; done
  # Whatever a failed test left lent: release it through sockhook itself, then make sure.
  local u m
  for u in "${lend_uuids[@]}"; do
    [[ -e /run/sockhook/state/$u.xml ]] &&
      printf '<domain><name>cleanup</name><uuid>%s</uuid></domain>' "$u" |
      "$bin" hook cleanup release end - 2>/dev/null
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
  rm -rf "$tmp"
}

# lend_init BIN: root check, users, runtime dir, configuration, cleanup trap.
lend_init() {
  bin=${1:?usage: $0 /abs/path/to/sockhook}
  if [[ $(id -u) -ne 0 ]]; then
    echo "skipped: needs root (mounts, users, /etc/sockhook)"
    exit 77
  fi
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
  tmp=$(mktemp -d /tmp/sockhook-lend-XXXXXX)
  chmod 755 "$tmp"
  trap lend_cleanup EXIT
  trap 'exit 1' INT TERM
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
  # Our own configuration, passed with `hook --config-dir` (the libvirt entry cannot do that),
  # so that tests never touch /etc/sockhook or race with other tests that do.
  etc=$tmp/etc
  install -d -m 755 "$etc" "$etc/plugins"
  install -m 644 "$repo"/plugins/*.xml "$etc/plugins/"
  : >"$etc/policy.conf"
  chmod 644 "$etc/policy.conf"
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
  setpriv --reuid="$qemu_uid" --regid="$qemu_gid" --init-groups "$@"
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
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -S $path ]] && return 0
    sleep 0.01
  done
  fail "echo server on $path did not start"
  return 1
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
  printf "<domain type='kvm'><name>%s</name><uuid>%s</uuid><metadata>" "$name" "$uuid"
  printf "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>"
  local s plugin method required
  for s in "$@"; do
    IFS=: read -r plugin method required <<<"$s"
    printf "<sockhook:socket plugin='%s' owner='%s' method='%s' required='%s' wait='%s'/>" \
      "$plugin" "$lend_user" "$method" "${required:-yes}" "${lend_wait:-0}"
  done
  printf "</sockhook:sockets></metadata></domain>"
}

# lend_hook NAME OP SUB XML: runs the hook as libvirt would; stderr to $tmp/hook.err.
lend_hook() {
  printf '%s' "$4" | "$bin" hook --config-dir "$etc" "$1" "$2" "$3" - 2>"$tmp/hook.err"
}

# lend_snapshot FILE: everything a lend may touch, in a form that must come back byte-identical.
# Other tests may run on this host at the same time: their runtime directories and lend
# directories are left out, ours and everything else are in.
lend_snapshot() {
  local ours="^(/run/user/($lend_uid|$lend_uid2)|/run/sockhook(/state)?)$"
  local u
  for u in "${lend_uuids[@]}"; do ours+="|^/run/sockhook/libvirt-$u(/|$)|^/run/sockhook/state/$u\\."; done
  {
    echo "== mounts"
    # Mount ids change with every mount; the rest must not.
    awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo |
      awk -v ours="$ours" '{ mp = $4 } mp !~ "^/run/(user|sockhook)/" || mp ~ ours'
    echo "== acls"
    getfacl -R -p /run/user/$lend_uid /run/user/$lend_uid2 2>&1
    echo "== inodes"
    find /run/user/$lend_uid /run/user/$lend_uid2 /run/sockhook 2>/dev/null | grep -E "$ours" |
      sort | while read -r f; do
      stat -c '%n %F %a %u %g %i %h' "$f"
      getfacl -cp "$f" 2>/dev/null | tr '\n' ' '
      echo
    done
    echo "== proxies"
    ps -u "$lend_uid,$lend_uid2" -o user=,args= | grep 'sockhook proxy' || true
  } >"$1"
}

# lend_same A B WHAT: the two snapshots are identical, or the diff is shown.
lend_same() {
  if diff -u "$1" "$2" >"$tmp/diff"; then
    ok "$3: host byte-identical"
  else
    fail "$3: host differs:"
    cat "$tmp/diff" >&2
  fi
}

# lend_warm: makes /run/sockhook and its state directory exist (they persist, like /run/libvirt),
# so that snapshots compare what one lend changes.
lend_warm() {
  install -d -m 0711 /run/sockhook
  install -d -m 0700 /run/sockhook/state
}

lend_finish() {
  if ((fails)); then
    echo "FAILED: $fails check(s)"
    exit 1
  fi
  echo "PASS"
  exit 0
}
