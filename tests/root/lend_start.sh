#!/bin/bash
# start begin (SPEC §5): prepare guessed QEMU's identity (no DAC label yet: qemu.conf or the
# distribution default); at start the XML carries libvirt's DAC label. If it names another
# uid, that identity must be allowed like any other (issue 9 item 2): not in the policy, start
# fails with one line and the lend stays as prepare made it; once `qemu = +UID:+GID` is in the
# domain's policy section, the lend moves to that uid: the old grant goes, the new one comes,
# and release still leaves the host byte-identical. If it names the same uid, nothing changes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

lend_setup 7c1f4e2a-9b3d-4c5e-8f60-1a2b3c4d5e6f pipewire-0
prepare_xml=$(lend_domain start-dom "$U" pipewire:bind)
# libvirt adds the DAC label after prepare; here it names another uid than the default.
label() { sed "s|</domain>|<seclabel type='dynamic' model='dac' relabel='yes'><label>+$1:+$2</label></seclabel></domain>|" <<<"$prepare_xml"; }

host_snapshot >"$TMP/before"
lend_hook start-dom prepare begin "$prepare_xml" || not_ok "prepare: $(cat "$TMP/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "prepare: the default QEMU user ($qemu_user) reaches it" ||
  not_ok "prepare: $qemu_user cannot reach it"

# Same identity at start: nothing to do.
lend_hook start-dom start begin "$(label "$qemu_uid" "$qemu_gid")" || not_ok "start (same uid): $(cat "$TMP/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "start with the same uid keeps the lend" || not_ok "start (same uid) broke the lend"

# Another identity at start, not allowed: refused, and the lend stays as it was.
other_uid=$lend_uid2
other_gid=$lend_gid2
if lend_hook start-dom start begin "$(label "$other_uid" "$other_gid")"; then
  not_ok "start (other uid, not allowed) succeeded"
else
  ok "start with another uid that the policy does not allow fails"
fi
grep -q "^sockhook: error: start-dom: pipewire: .*uid $other_uid.*sockhook policy allow --domain $U --qemu " "$TMP/hook.err" &&
  ok "start (other uid): one line names domain, socket, identity and the fix" ||
  not_ok "start (other uid) said: $(cat "$TMP/hook.err")"
lend_ping qemu "$L/pipewire-0" && ok "start refused: the lend stays with $qemu_user" ||
  not_ok "start refused: $qemu_user lost the lend"

# Allowed in the policy: the lend moves to it.
printf 'qemu = +%s:+%s\n' "$other_uid" "$other_gid" >>"$etc/policy.conf"
lend_hook start-dom start begin "$(label "$other_uid" "$other_gid")" ||
  not_ok "start (other uid): $(cat "$TMP/hook.err")"
if setpriv --reuid="$other_uid" --regid="$other_gid" --clear-groups "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1]); s.sendall(b"ping")
sys.exit(0 if s.recv(16) == b"ping" else 1)' "$L/pipewire-0" 2>/dev/null; then
  ok "start with another uid: that uid reaches the socket"
else
  not_ok "start with another uid: uid $other_uid cannot reach the socket"
fi
if lend_ping qemu "$L/pipewire-0"; then
  not_ok "start with another uid: the old guess ($qemu_user) still reaches the socket"
else
  ok "start with another uid: the old guess ($qemu_user) lost access"
fi
getfacl -cp "$runtime/pipewire-0" | grep -q "^user:$other_uid:rw" ||
  getfacl -cnp "$runtime/pipewire-0" | grep -q "^user:$other_uid:rw" ||
  not_ok "no ACL entry for uid $other_uid: $(getfacl -cnp "$runtime/pipewire-0" | tr '\n' ' ')"

lend_hook start-dom release end "$prepare_xml" || not_ok "release exit"
same_host "$TMP/before" "prepare, start with another uid, release"

finish
