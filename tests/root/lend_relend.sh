#!/bin/bash
# Issue 22 item 5: nothing is lent again without the policy.
#   5. After `sockhook policy revoke`, the owner's server restarts (a new socket inode) and a
#      proxy dies. libvirtd's `reconnect` must not bind-mount the new inode, add u:QEMU:rw to
#      it or start a new proxy (it used to do all three from the journal); it says so in one
#      log line per socket. `refresh` and `start` refuse too. Allowed again, reconnect re-binds
#      (so the checks can see a re-lend).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

syslog_listen

# ---- 5. re-lent without asking ---------------------------------------------------------------
lend_setup 7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c21 pipewire-0
server=$echo_pid
host_snapshot >"$TMP/before"
xml=$(lend_domain relend "$U" pipewire:bind wayland:proxy)
lend_hook relend prepare begin "$xml" || die "prepare: $(cat "$TMP/hook.err")"
"$SOCKHOOK" policy --policy-file "$etc/policy.conf" revoke --domain "$U" --owner "$lend_user" >/dev/null
# The server restarts (a new inode at the same name) and the proxy dies.
kill "$server"
wait "$server" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
proxy_pid() { "$SOCKHOOK" status --json | "$py" -c "import json,sys; print([l['proxy_pid'] for l in json.load(sys.stdin) if l['socket']=='wayland' and l['uuid']=='$U'][0])"; }
old_proxy=$(proxy_pid)
kill "$old_proxy"
wait_until 5 test ! -e "/proc/$old_proxy" || not_ok "the proxy $old_proxy did not stop"

not() { ! "$@"; }
# relent_bind : the lend directory shows the server's new inode (a new bind mount).
relent_bind() { [[ $(stat -c %i "$L/pipewire-0") == $(stat -c %i "$runtime/pipewire-0") ]]; }
# new_acl : the new socket inode carries an entry for QEMU's user.
new_acl() { getfacl -p "$runtime/pipewire-0" 2>/dev/null | grep -q "^user:$qemu_user:"; }
# proxy_running : a wayland proxy of this domain runs (the status's pid is alive).
proxy_running() { local p; p=$(proxy_pid); [[ $p != "$old_proxy" && $p -gt 0 && -e /proc/$p ]]; }

lend_hook relend reconnect begin "$xml" || not_ok "revoked, reconnect: exit $?"
check "revoked, reconnect: no bind mount of the new socket inode" not relent_bind
check "revoked, reconnect: no ACL entry for $qemu_user on the new socket" not new_acl
check "revoked, reconnect: QEMU cannot reach the restarted server" not lend_ping qemu "$L/pipewire-0"
proxy_running && not_ok "revoked, reconnect: a new proxy runs ($(proxy_pid))" || ok "revoked, reconnect: no new proxy"
for s in pipewire wayland; do
  check "revoked, reconnect: one log line says the policy no longer allows $s" \
    logged_once "relend: $s: not lent again: the policy no longer allows $lend_user"
done

rc=0
"$SOCKHOOK" refresh relend --policy-file "$etc/policy.conf" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "revoked, refresh: exit 1, saying the policy no longer allows it ($(cat "$TMP/err"))" \
  bash -c "[[ $rc -eq 1 ]] && grep -q 'not lent again: the policy no longer allows' '$TMP/err'"
check "revoked, refresh: no bind mount of the new socket inode" not relent_bind

rc=0
lend_hook relend start begin "$xml" || rc=$?
# One line per socket, each the policy's refusal.
check "revoked, start: exit 1, each line the policy's refusal ($(head -1 "$TMP/hook.err"))" \
  bash -c "[[ $rc -eq 1 && \$(grep -c . '$TMP/hook.err') -eq 2 && \$(grep -c 'the policy does not allow $lend_user' '$TMP/hook.err') -eq 2 ]]"
check "revoked, start: no bind mount of the new socket inode" not relent_bind
check "revoked, start: no ACL entry for $qemu_user on the new socket" not new_acl

# Allowed again: the same reconnect re-binds (what the checks above would have seen).
lend_allow "$U"
lend_hook relend reconnect begin "$xml" || not_ok "allowed, reconnect: exit $?"
check "allowed again, reconnect: the new socket inode is bound" relent_bind
check "allowed again, reconnect: QEMU reaches the restarted server" lend_ping qemu "$L/pipewire-0"
lend_hook relend release end "$xml" || not_ok "release: exit $?"
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
SNAP_SED="s|^\(/run/user/$lend_uid/pipewire-0 s [0-7]* [^ ]* [^ ]*\) [0-9]*|\1|"
sed -i "$SNAP_SED" "$TMP/before"
same_host "$TMP/before" "re-lend refused, then released"
SNAP_SED=

finish
