#!/bin/bash
# Issue 22 items 5 and 8: nothing is lent again without the policy, and a journal can always
# be ended.
#   5. After `sockhook policy revoke`, the owner's server restarts (a new socket inode) and a
#      proxy dies. libvirtd's `reconnect` must not bind-mount the new inode, add u:QEMU:rw to
#      it or start a new proxy (it used to do all three from the journal); it says so in one
#      log line per socket. `refresh` and `start` refuse too. Allowed again, reconnect re-binds
#      (so the checks can see a re-lend).
#   8. After an acl lend, the owner moves the socket away: release and cleanup cannot find the
#      inode again and keep the entry (rightly: it may still carry u:QEMU:rw). They say what is
#      left; `cleanup DOMAIN --forget` and `cleanup --stale --forget` end the journal after
#      saying so, and the package's prerm no longer refuses `apt remove` for ever.
#   From reading: `cleanup --stale` took a domain between prepare and QEMU's start for stale.
#      While a prepare waits for its socket (QEMU not started yet), --stale waited 30 s for the
#      domain's lock, killed the hook and undid its lends; now it leaves that domain alone.
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
relend_setup

# new_acl : the new socket inode carries an entry for QEMU's user.
new_acl() { getfacl -p "$runtime/pipewire-0" 2>/dev/null | grep -q "^user:$qemu_user:"; }

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
# The policy gate's one line, naming the refusal and the other socket.
check "revoked, start: exit 1, one line, the policy's refusal ($(head -1 "$TMP/hook.err"))" \
  bash -c "[[ $rc -eq 1 && \$(grep -c . '$TMP/hook.err') -eq 1 ]] && grep -q 'the policy does not allow $lend_user.*(nor its other socket)' '$TMP/hook.err'"
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

# ---- 8. a journal the owner pins -------------------------------------------------------------
host_snapshot >"$TMP/before"
xml=$(lend_domain pinned "$U" pipewire:acl)
# moved_away : an acl lend, then the owner moves the socket to another name.
moved_away() {
  lend_hook pinned prepare begin "$xml" || die "acl prepare: $(cat "$TMP/hook.err")"
  getfacl -p "$runtime/pipewire-0" | grep -q "^user:$qemu_user:rw" || not_ok "acl: no entry for $qemu_user"
  lend_as "$lend_user" mv "$runtime/pipewire-0" "$runtime/pipewire-0.moved"
}
# by_hand : what the dropped entry left (u:QEMU on the moved inode) undone by hand, the name back.
by_hand() {
  setfacl -b "$runtime/pipewire-0.moved"  # it had no ACL before the lend
  lend_as "$lend_user" mv "$runtime/pipewire-0.moved" "$runtime/pipewire-0"
}

moved_away
lend_hook pinned release end "$xml" || not_ok "moved away, release: exit $?"
for attempt in first second; do
  rc=0
  "$SOCKHOOK" cleanup pinned >"$TMP/out" 2>"$TMP/err" || rc=$?
  check "moved away, $attempt cleanup: exit 1, naming what may be left ($(head -1 "$TMP/err"))" \
    bash -c "[[ $rc -eq 1 ]] && grep -q 'may still carry the change' '$TMP/err'"
done
check "moved away: the journal is still there" test -e "/run/sockhook/state/$U.xml"
rc=0
"$SOCKHOOK" cleanup pinned --forget >"$TMP/out" 2>"$TMP/err" || rc=$?
sed 's/^/#   /' "$TMP/err"
check "cleanup --forget: exit 0 ($(cat "$TMP/out"))" test "$rc" -eq 0
check "cleanup --forget: says the ACL entry on the moved inode may remain" \
  grep -q "may remain: pipewire: ACL entry u:$qemu_uid:rw" "$TMP/err"
check "cleanup --forget: the journal is gone" test ! -e "/run/sockhook/state/$U.xml"
check "status: nothing left of $U" bash -c "! '$SOCKHOOK' status | grep -q '$U'"
by_hand
same_host "$TMP/before" "cleanup --forget, then the moved inode undone by hand"

# --stale acts on every domain of the host without a running QEMU: only while no e2e suite runs.
exec 8>/run/sockhook-e2e.lock
flock -w 900 8 || die "another e2e script holds /run/sockhook-e2e.lock"

# ---- from reading: cleanup --stale and a domain being started ---------------------------------
# A prepare that waits for its socket holds the domain's lock; its QEMU does not run yet. The
# old cleanup --stale took that for stale: it waited 30 s for the lock, killed the hook and
# undid its lends. Now it leaves a domain whose hook runs alone, and says so.
host_snapshot >"$TMP/before"
mv "$runtime/pipewire-0" "$runtime/.pipewire-0.away"  # the socket is not there yet
xml=$(lend_wait=120 lend_domain starting "$U" pipewire:bind)
printf '%s' "$xml" | "$SOCKHOOK" hook --config-dir "$etc" starting prepare begin - 2>"$TMP/hook.err" &
hook=$!
# watching_runtime : the hook waits for the socket (its inotify watch on the runtime directory).
watching_runtime() {
  local id; id=$(printf 'ino:%x sdev:%x ' "$(stat -c %i "$runtime")" $(($(stat -c %Hd "$runtime") << 20 | $(stat -c %Ld "$runtime"))))
  grep -qs "$id" /proc/"$hook"/fdinfo/*
}
wait_until 30 watching_runtime || not_ok "the prepare does not wait for its socket"
rc=0
timeout 120 "$SOCKHOOK" cleanup --stale >"$TMP/out" 2>"$TMP/err" || rc=$?
sed 's/^/#   cleanup --stale: /' "$TMP/out" "$TMP/err"
check "a prepare waiting for its socket: cleanup --stale leaves that hook running" kill -0 "$hook"
check "a prepare waiting for its socket: cleanup --stale says it left the domain alone" \
  grep -qx "$U: left alone: a hook of this domain runs now (it is starting or stopping)" "$TMP/out"
# The socket comes: the prepare lends it, as if nothing had happened.
mv "$runtime/.pipewire-0.away" "$runtime/pipewire-0" || not_ok "the socket was not where the test left it"
rc=0
wait "$hook" || rc=$?
check "the prepare then lends the socket that appeared (exit $rc: $(cat "$TMP/hook.err"))" test "$rc" -eq 0
check "QEMU reaches it" lend_ping qemu "$L/pipewire-0"
lend_hook starting release end "$xml" || not_ok "release: exit $?"
same_host "$TMP/before" "cleanup --stale beside a running prepare, then release"

# cleanup --stale --forget, as the package's prerm runs it (the domain has no QEMU).
xml=$(lend_domain pinned "$U" pipewire:acl)
host_snapshot >"$TMP/before"
moved_away
lend_hook pinned release end "$xml" || not_ok "moved away, release: exit $?"
# prerm, with its two host paths pointed at the binary under test and at `true` (the
# AppArmor rules on this host are not ours to remove).
sed -e "s|/usr/bin/sockhook|$SOCKHOOK|g" -e "s|/usr/share/sockhook/apparmor/sockhook-apparmor|true|" \
  "$REPO/debian/sockhook.prerm" >"$TMP/prerm"
rc=0
timeout 120 sh "$TMP/prerm" remove >"$TMP/out" 2>"$TMP/err" || rc=$?
sed 's/^/#   /' "$TMP/err"
check "prerm remove with a pinned journal of a stopped domain: exit 0" test "$rc" -eq 0
check "prerm: the journal is gone" test ! -e "/run/sockhook/state/$U.xml"
by_hand
same_host "$TMP/before" "prerm's cleanup --stale --forget, then the moved inode undone by hand"
flock -u 8
finish
