#!/bin/bash
# Every lending method works end to end and is undone exactly: bind (with and without the ACL
# grant), bind of pulse/native with the cookie copied, acl, group and proxy. For each one, QEMU's
# user (as libvirt runs QEMU) reaches the echo server through the target, another user
# ("nobody") cannot, and after release the host is byte-identical (mounts, ACLs, modes, owners,
# inodes, files, proxies). A second release, and a release without prepare, change nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

lend_setup 5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d01 pipewire-0 wayland-0:0777 pulse

# check_lend NAME SOCKET TARGET: prepare, reach, refuse nobody, release, compare.
check_lend() {
  local what=$1 sock=$2 target=$3
  host_snapshot >"$TMP/before"
  local xml
  xml=$(lend_domain "dom-$what" "$U" "$sock")
  if ! lend_hook "dom-$what" prepare begin "$xml"; then
    not_ok "$what: prepare failed: $(cat "$TMP/hook.err")"
    return
  fi
  [[ -s $TMP/hook.err ]] && not_ok "$what: prepare wrote to stderr: $(cat "$TMP/hook.err")"
  if lend_ping qemu "$target"; then ok "$what: QEMU's user reaches $target"; else not_ok "$what: QEMU's user cannot reach $target"; fi
  if lend_ping nobody "$target"; then not_ok "$what: nobody reaches $target"; else ok "$what: nobody cannot reach $target"; fi
  [[ -n ${4:-} ]] && "$4"
  lend_hook "dom-$what" release end "$xml" || not_ok "$what: release exit $?"
  same_host "$TMP/before" "$what"
  # Idempotent: a second release finds nothing and changes nothing.
  lend_hook "dom-$what" release end "$xml" || not_ok "$what: second release exit $?"
  [[ -s $TMP/hook.err ]] && not_ok "$what: second release wrote to stderr"
  same_host "$TMP/before" "$what (second release)"
}

L=/run/sockhook/libvirt-$U

check_bind_acl() {
  # The socket is 0600: bind needs (and got) exactly one ACL entry on the inode.
  getfacl -cp "$runtime/pipewire-0" | grep -qx "user:$qemu_user:rw-" && ok "bind: u:$qemu_user:rw- on the socket" || not_ok "bind: no ACL entry on the socket"
  [[ $(stat -c %a "$runtime") == 700 ]] && ! getfacl -cp "$runtime" | grep -q "^user:$qemu_user" && ok "bind: runtime dir untouched" || not_ok "bind: runtime dir changed"
  [[ $(stat -c '%U %a' "$L") == "root 710" ]] || not_ok "bind: lend dir is $(stat -c '%U %a' "$L")"
  getfacl -cp "$L" | grep -qx "user:$qemu_user:--x" && ok "lend dir: root 0700 + u:$qemu_user:--x" || not_ok "lend dir ACL"
  if lend_as_qemu touch "$L/planted" 2>/dev/null; then not_ok "QEMU's user can write the lend dir"; else ok "QEMU's user cannot write the lend dir"; fi
  if lend_as_qemu ls "$L" >/dev/null 2>&1; then not_ok "QEMU's user can list the lend dir"; else ok "QEMU's user cannot list the lend dir"; fi
}
check_lend bind pipewire:bind "$L/pipewire-0" check_bind_acl

check_bind_open() {
  getfacl -cp "$runtime/wayland-0" | grep -q "^user:$qemu_user" && not_ok "bind-open: an ACL entry was added to a 0777 socket" || ok "bind-open: no ACL needed, none added"
}
check_lend bind-open wayland:bind "$L/wayland-0" check_bind_open

check_pulse() {
  local c=$L/pulse-cookie
  [[ $(stat -c '%u %a' "$c") == "$qemu_uid 400" ]] && ok "cookie: owned by QEMU's user, 0400" || not_ok "cookie: $(stat -c '%u %a' "$c")"
  cmp -s "$c" "$home/.config/pulse/cookie" && ok "cookie: same 256 bytes" || not_ok "cookie content differs"
  lend_as_qemu cat "$c" >/dev/null && ok "cookie: QEMU's user reads it" || not_ok "cookie: QEMU's user cannot read it"
  if lend_as nobody cat "$c" >/dev/null 2>&1; then not_ok "cookie: nobody reads it"; else ok "cookie: nobody cannot read it"; fi
}
check_lend pulse-bind pulseaudio:bind "$L/pulse-native" check_pulse

check_acl() {
  getfacl -cp "$runtime" | grep -qx "user:$qemu_user:--x" && ok "acl: traversal on $runtime" || not_ok "acl: no traversal entry"
  getfacl -cp "$runtime/pulse" | grep -qx "user:$qemu_user:--x" && ok "acl: traversal on pulse/" || not_ok "acl: no traversal on pulse/"
}
check_lend acl pulseaudio:acl "$runtime/pulse/native" check_acl

check_group() {
  [[ $(stat -c '%g %a' "$runtime/pipewire-0") == "$qemu_gid 660" ]] && ok "group: socket is gid $qemu_gid, 0660" || not_ok "group: $(stat -c '%g %a' "$runtime/pipewire-0")"
}
check_lend group pipewire:group "$runtime/pipewire-0" check_group

check_proxy() {
  local p
  p=$(ps -eo pid=,user=,args= | grep 'sockhook proxy' | grep -v grep || true)
  [[ $(wc -l <<<"$p") == 1 && $p == *" $lend_user "* ]] && ok "proxy: one process, running as $lend_user" || not_ok "proxy processes: $p"
  local pid=${p%% $lend_user*}
  pid=${pid// /}
  [[ $(readlink "/proc/$pid/fd/1") == /dev/null && $(readlink "/proc/$pid/fd/2") == /dev/null ]] && ok "proxy: stdout and stderr are /dev/null" || not_ok "proxy inherited stdout/stderr"
  [[ $(stat -c '%u %a %F' "$L/pipewire-0") == "$qemu_uid 600 socket" ]] && ok "proxy: listening socket QEMU's, 0600" || not_ok "proxy socket: $(stat -c '%u %a %F' "$L/pipewire-0")"
  grep -q "pid=\"$pid\"" "/run/sockhook/state/$U.xml" && ok "proxy: pid $pid journaled" || not_ok "proxy pid not in the journal"
}
check_lend proxy pipewire:proxy "$L/pipewire-0" check_proxy

# The hook's stdout must stay silent, and a release with no journal must do nothing.
host_snapshot >"$TMP/before"
out=$(printf '%s' "$(lend_domain never "$U" pipewire:bind)" | "$SOCKHOOK" hook never release end - 2>&1)
[[ -z $out ]] && ok "release without prepare: silent" || not_ok "release without prepare said: $out"
same_host "$TMP/before" "release without prepare"

# A required socket that does not exist fails prepare with one line, and nothing stays.
rm -f "$runtime/wayland-0"
xml=$(lend_domain "dom-missing" "$U" pipewire:bind wayland:bind)
host_snapshot >"$TMP/before"
if lend_hook dom-missing prepare begin "$xml"; then not_ok "missing socket: prepare succeeded"; fi
err=$(cat "$TMP/hook.err")
[[ $(wc -l <<<"$err") == 1 && $err == "sockhook: error: dom-missing: wayland: cannot bind-mount $runtime/wayland-0: it does not exist" ]] &&
  ok "missing required socket: '$err'" || not_ok "missing socket message: $err"
same_host "$TMP/before" "rollback of a failed required socket"
# The same socket as optional: the VM starts with the other lend only.
xml=$(lend_domain "dom-optional" "$U" pipewire:bind wayland:bind:no)
lend_hook dom-optional prepare begin "$xml" && ok "optional missing socket: prepare succeeds" || not_ok "optional: $(cat "$TMP/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "optional: the required lend works" || not_ok "optional: required lend broken"
[[ ! -e $L/wayland-0 ]] && ok "optional: no leftover for the failed socket" || not_ok "optional: leftover $L/wayland-0"
lend_hook dom-optional release end "$xml"
same_host "$TMP/before" "optional socket"

finish
