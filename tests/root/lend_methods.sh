#!/bin/bash
# Every lending method works end to end and is undone exactly: bind (with and without the ACL
# grant), bind of pulse/native with the cookie copied, acl, group and proxy. For each one, QEMU's
# user (as libvirt runs QEMU) reaches the echo server through the target, another user
# ("nobody") cannot, and after release the host is byte-identical (mounts, ACLs, modes, owners,
# inodes, files, proxies). A second release, and a release without prepare, change nothing.
#
#   bash tests/root/lend_methods.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"

U=5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d01
lend_allow "$U"
lend_warm
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
lend_echo_server "$lend_user" "$runtime/wayland-0" 0777
mkdir -m 0700 "$runtime/pulse" && chown "$lend_user:" "$runtime/pulse"
lend_echo_server "$lend_user" "$runtime/pulse/native" 0600
# A home with a PulseAudio cookie (256 bytes), for the companion-file copy.
home=/home/$lend_user
install -d -m 0700 -o "$lend_user" -g "$lend_user" "$home" "$home/.config" "$home/.config/pulse"
head -c 256 /dev/urandom >"$home/.config/pulse/cookie"
chown "$lend_user:" "$home/.config/pulse/cookie"
chmod 600 "$home/.config/pulse/cookie"

# check_lend NAME SOCKET TARGET: prepare, reach, refuse nobody, release, compare.
check_lend() {
  local what=$1 sock=$2 target=$3
  lend_snapshot "$tmp/before"
  local xml
  xml=$(lend_domain "dom-$what" "$U" "$sock")
  if ! lend_hook "dom-$what" prepare begin "$xml"; then
    fail "$what: prepare failed: $(cat "$tmp/hook.err")"
    return
  fi
  [[ -s $tmp/hook.err ]] && fail "$what: prepare wrote to stderr: $(cat "$tmp/hook.err")"
  if lend_ping qemu "$target"; then ok "$what: QEMU's user reaches $target"; else fail "$what: QEMU's user cannot reach $target"; fi
  if lend_ping nobody "$target"; then fail "$what: nobody reaches $target"; else ok "$what: nobody cannot reach $target"; fi
  [[ -n ${4:-} ]] && "$4"
  lend_hook "dom-$what" release end "$xml" || fail "$what: release exit $?"
  lend_snapshot "$tmp/after"
  lend_same "$tmp/before" "$tmp/after" "$what"
  # Idempotent: a second release finds nothing and changes nothing.
  lend_hook "dom-$what" release end "$xml" || fail "$what: second release exit $?"
  [[ -s $tmp/hook.err ]] && fail "$what: second release wrote to stderr"
  lend_snapshot "$tmp/after2"
  lend_same "$tmp/before" "$tmp/after2" "$what (second release)"
}

L=/run/sockhook/libvirt-$U

check_bind_acl() {
  # The socket is 0600: bind needs (and got) exactly one ACL entry on the inode.
  getfacl -cp "$runtime/pipewire-0" | grep -qx "user:$qemu_user:rw-" && ok "bind: u:$qemu_user:rw- on the socket" || fail "bind: no ACL entry on the socket"
  [[ $(stat -c %a "$runtime") == 700 ]] && ! getfacl -cp "$runtime" | grep -q "^user:$qemu_user" && ok "bind: runtime dir untouched" || fail "bind: runtime dir changed"
  [[ $(stat -c '%U %a' "$L") == "root 710" ]] || fail "bind: lend dir is $(stat -c '%U %a' "$L")"
  getfacl -cp "$L" | grep -qx "user:$qemu_user:--x" && ok "lend dir: root 0700 + u:$qemu_user:--x" || fail "lend dir ACL"
  if lend_as_qemu touch "$L/planted" 2>/dev/null; then fail "QEMU's user can write the lend dir"; else ok "QEMU's user cannot write the lend dir"; fi
  if lend_as_qemu ls "$L" >/dev/null 2>&1; then fail "QEMU's user can list the lend dir"; else ok "QEMU's user cannot list the lend dir"; fi
}
check_lend bind pipewire:bind "$L/pipewire-0" check_bind_acl

check_bind_open() {
  getfacl -cp "$runtime/wayland-0" | grep -q "^user:$qemu_user" && fail "bind-open: an ACL entry was added to a 0777 socket" || ok "bind-open: no ACL needed, none added"
}
check_lend bind-open wayland:bind "$L/wayland-0" check_bind_open

check_pulse() {
  local c=$L/pulse-cookie
  [[ $(stat -c '%u %a' "$c") == "$qemu_uid 400" ]] && ok "cookie: owned by QEMU's user, 0400" || fail "cookie: $(stat -c '%u %a' "$c")"
  cmp -s "$c" "$home/.config/pulse/cookie" && ok "cookie: same 256 bytes" || fail "cookie content differs"
  lend_as_qemu cat "$c" >/dev/null && ok "cookie: QEMU's user reads it" || fail "cookie: QEMU's user cannot read it"
  if lend_as nobody cat "$c" >/dev/null 2>&1; then fail "cookie: nobody reads it"; else ok "cookie: nobody cannot read it"; fi
}
check_lend pulse-bind pulseaudio:bind "$L/pulse-native" check_pulse

check_acl() {
  getfacl -cp "$runtime" | grep -qx "user:$qemu_user:--x" && ok "acl: traversal on $runtime" || fail "acl: no traversal entry"
  getfacl -cp "$runtime/pulse" | grep -qx "user:$qemu_user:--x" && ok "acl: traversal on pulse/" || fail "acl: no traversal on pulse/"
}
check_lend acl pulseaudio:acl "$runtime/pulse/native" check_acl

check_group() {
  [[ $(stat -c '%g %a' "$runtime/pipewire-0") == "$qemu_gid 660" ]] && ok "group: socket is gid $qemu_gid, 0660" || fail "group: $(stat -c '%g %a' "$runtime/pipewire-0")"
}
check_lend group pipewire:group "$runtime/pipewire-0" check_group

check_proxy() {
  local p
  p=$(ps -eo pid=,user=,args= | grep 'sockhook proxy' | grep -v grep || true)
  [[ $(wc -l <<<"$p") == 1 && $p == *" $lend_user "* ]] && ok "proxy: one process, running as $lend_user" || fail "proxy processes: $p"
  local pid=${p%% $lend_user*}
  pid=${pid// /}
  [[ $(readlink "/proc/$pid/fd/1") == /dev/null && $(readlink "/proc/$pid/fd/2") == /dev/null ]] && ok "proxy: stdout and stderr are /dev/null" || fail "proxy inherited stdout/stderr"
  [[ $(stat -c '%u %a %F' "$L/pipewire-0") == "$qemu_uid 600 socket" ]] && ok "proxy: listening socket QEMU's, 0600" || fail "proxy socket: $(stat -c '%u %a %F' "$L/pipewire-0")"
  grep -q "pid=\"$pid\"" "/run/sockhook/state/$U.xml" && ok "proxy: pid $pid journaled" || fail "proxy pid not in the journal"
}
check_lend proxy pipewire:proxy "$L/pipewire-0" check_proxy

# The hook's stdout must stay silent, and a release with no journal must do nothing.
lend_snapshot "$tmp/before"
out=$(printf '%s' "$(lend_domain never "$U" pipewire:bind)" | "$bin" hook never release end - 2>&1)
[[ -z $out ]] && ok "release without prepare: silent" || fail "release without prepare said: $out"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "release without prepare"

# A required socket that does not exist fails prepare with one line, and nothing stays.
rm -f "$runtime/wayland-0"
xml=$(lend_domain "dom-missing" "$U" pipewire:bind wayland:bind)
lend_snapshot "$tmp/before"
if lend_hook dom-missing prepare begin "$xml"; then fail "missing socket: prepare succeeded"; fi
err=$(cat "$tmp/hook.err")
[[ $(wc -l <<<"$err") == 1 && $err == "sockhook: error: dom-missing: wayland: cannot bind-mount $runtime/wayland-0: it does not exist" ]] &&
  ok "missing required socket: '$err'" || fail "missing socket message: $err"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "rollback of a failed required socket"
# The same socket as optional: the VM starts with the other lend only.
xml=$(lend_domain "dom-optional" "$U" pipewire:bind wayland:bind:no)
lend_hook dom-optional prepare begin "$xml" && ok "optional missing socket: prepare succeeds" || fail "optional: $(cat "$tmp/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "optional: the required lend works" || fail "optional: required lend broken"
[[ ! -e $L/wayland-0 ]] && ok "optional: no leftover for the failed socket" || fail "optional: leftover $L/wayland-0"
lend_hook dom-optional release end "$xml"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "optional socket"

lend_finish
