#!/bin/bash
# start begin (SPEC §5): prepare guessed QEMU's identity (no DAC label yet: qemu.conf or the
# distribution default); at start the XML carries libvirt's DAC label. If it names another
# uid, the lend must be given to that uid instead: the old grant goes, the new one comes, and
# release still leaves the host byte-identical. If it names the same uid, nothing changes.
#
#   bash tests/root/lend_start.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"

U=7c1f4e2a-9b3d-4c5e-8f60-1a2b3c4d5e6f
lend_allow "$U"
lend_warm
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
L=/run/sockhook/libvirt-$U
prepare_xml=$(lend_domain start-dom "$U" pipewire:bind)
# libvirt adds the DAC label after prepare; here it names another uid than the default.
label() { sed "s|</domain>|<seclabel type='dynamic' model='dac' relabel='yes'><label>+$1:+$2</label></seclabel></domain>|" <<<"$prepare_xml"; }

lend_snapshot "$tmp/before"
lend_hook start-dom prepare begin "$prepare_xml" || fail "prepare: $(cat "$tmp/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "prepare: the default QEMU user ($qemu_user) reaches it" ||
  fail "prepare: $qemu_user cannot reach it"

# Same identity at start: nothing to do.
lend_hook start-dom start begin "$(label "$qemu_uid" "$qemu_gid")" || fail "start (same uid): $(cat "$tmp/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "start with the same uid keeps the lend" || fail "start (same uid) broke the lend"

# Another identity at start: the lend moves to it.
other_uid=$lend_uid2
other_gid=$lend_gid2
lend_hook start-dom start begin "$(label "$other_uid" "$other_gid")" ||
  fail "start (other uid): $(cat "$tmp/hook.err")"
if setpriv --reuid="$other_uid" --regid="$other_gid" --clear-groups "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1]); s.sendall(b"ping")
sys.exit(0 if s.recv(16) == b"ping" else 1)' "$L/pipewire-0" 2>/dev/null; then
  ok "start with another uid: that uid reaches the socket"
else
  fail "start with another uid: uid $other_uid cannot reach the socket"
fi
if lend_ping qemu "$L/pipewire-0"; then
  fail "start with another uid: the old guess ($qemu_user) still reaches the socket"
else
  ok "start with another uid: the old guess ($qemu_user) lost access"
fi
getfacl -cp "$runtime/pipewire-0" | grep -q "^user:$other_uid:rw" ||
  getfacl -cnp "$runtime/pipewire-0" | grep -q "^user:$other_uid:rw" ||
  fail "no ACL entry for uid $other_uid: $(getfacl -cnp "$runtime/pipewire-0" | tr '\n' ' ')"

lend_hook start-dom release end "$prepare_xml" || fail "release exit"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "prepare, start with another uid, release"

lend_finish
