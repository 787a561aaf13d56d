#!/bin/bash
# Issue 22 item 5, the part left open: a re-lend asks who receives it, as start does. A domain
# whose static DAC label names another user (here shlend2) receives lends only while the policy
# names that identity (`qemu = shlend2:shlend2`, S5). After root revokes it, the owner's server
# restarts (a new socket inode) and the proxy dies: libvirtd's `reconnect` must not bind the new
# inode or start a new proxy for that identity, and `refresh` must refuse, each saying why; the
# old code asked only whether the owner may lend the plugin, and lent again. Allowed again,
# reconnect re-binds (so the checks can see a re-lend); the host is byte-identical after release.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

syslog_listen
lend_setup 6b5a4c3d-2e1f-4a09-8b7c-6d5e4f3a2b10 pipewire-0
server=$echo_pid
host_snapshot >"$TMP/before"
identity=$lend_user2:$lend_user2
xml=$(lend_domain relend-id "$U" pipewire:bind wayland:proxy |
  sed "s|</domain>|<seclabel type='static' model='dac' relabel='yes'><label>$identity</label></seclabel></domain>|")
policy() { "$SOCKHOOK" policy --policy-file "$etc/policy.conf" "$@" >/dev/null; }
policy allow --domain "$U" --qemu "$identity"
lend_hook relend-id prepare begin "$xml" || die "prepare: $(cat "$TMP/hook.err")"
lend_ping "$lend_user2" "$L/pipewire-0" || not_ok "$lend_user2 cannot reach the lent socket"

# Root revokes the identity; the owner's permission to lend stays.
policy revoke --domain "$U" --qemu "$identity"
grep -q "^qemu" "$etc/policy.conf" && not_ok "the qemu line is still in the policy"
# The server restarts (a new inode at the same name) and the proxy dies.
relend_setup

lend_hook relend-id reconnect begin "$xml" || not_ok "identity revoked, reconnect: exit $?"
check "identity revoked, reconnect: no bind mount of the new socket inode" not relent_bind
check "identity revoked, reconnect: $lend_user2 cannot reach the restarted server" \
  not lend_ping "$lend_user2" "$L/pipewire-0"
proxy_running && not_ok "identity revoked, reconnect: a new proxy runs ($(proxy_pid))" ||
  ok "identity revoked, reconnect: no new proxy"
for s in pipewire wayland; do
  check "identity revoked, reconnect: one log line says the policy no longer allows $s's identity" \
    logged_once "relend-id: $s: not lent again: the policy no longer allows QEMU identity +$lend_uid2:+$lend_gid2"
done

rc=0
"$SOCKHOOK" refresh relend-id --policy-file "$etc/policy.conf" >"$TMP/out" 2>"$TMP/err" || rc=$?
check "identity revoked, refresh: exit 1, saying why ($(cat "$TMP/err"))" \
  bash -c "[[ $rc -eq 1 ]] && grep -q 'not lent again: the policy no longer allows QEMU identity' '$TMP/err'"
check "identity revoked, refresh: no bind mount of the new socket inode" not relent_bind

rc=0
lend_hook relend-id start begin "$xml" || rc=$?
check "identity revoked, start: exit 1 ($(head -1 "$TMP/hook.err"))" test "$rc" -eq 1
check "identity revoked, start: no bind mount of the new socket inode" not relent_bind

# Allowed again: the same reconnect re-binds and restarts the proxy.
policy allow --domain "$U" --qemu "$identity"
lend_hook relend-id reconnect begin "$xml" || not_ok "allowed, reconnect: exit $?"
check "identity allowed again, reconnect: the new socket inode is bound" relent_bind
check "identity allowed again, reconnect: a new proxy runs" proxy_running
lend_hook relend-id release end "$xml" || not_ok "release: exit $?"
policy revoke --domain "$U" --qemu "$identity"
# The socket's inode number is the restarted server's; everything else must match.
SNAP_SED="s|^\(/run/user/$lend_uid/pipewire-0 s [0-7]* [^ ]* [^ ]*\) [0-9]*|\1|"
sed -i "$SNAP_SED" "$TMP/before"
same_host "$TMP/before" "identity revoked, re-lend refused, then released"
finish
