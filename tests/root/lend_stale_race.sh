#!/bin/bash
# Issue 22, from reading: `cleanup --stale` and a start of the same domain at the same moment.
# The old --stale probed the domain's lock (taken and let go at once) and then released, taking
# the lock again with take-over: a start that took the lock in between was waited for 30 s,
# killed, and had its lends undone. Now --stale takes the lock once, asks again under it
# whether the domain's QEMU runs, and releases while still holding it; a start that comes
# meanwhile waits, then lends.
#
# Two real invocations, made to meet deterministically: strace delays cleanup's lock calls
# (the first one 3 s while held, the second one 3 s before it is made), and the test starts a
# real prepare of the same domain while cleanup holds the lock (seen in /proc/locks). The
# prepare lends pipewire and waits for a second, optional socket that comes only once cleanup
# has ended, so it still holds the lock when the old cleanup tries again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools strace

lend_setup 4f3e2d1c-0b9a-4877-a665-5e4d3c2b1a09 pipewire-0
host_snapshot >"$TMP/before"
# --stale acts on every domain of the host without a running QEMU: only while no e2e suite runs.
exec 8>/run/sockhook-e2e.lock
flock -w 900 8 || die "another e2e script holds /run/sockhook-e2e.lock"
others=$(find /run/sockhook/state -maxdepth 1 \( -name '*.xml' -o -name '*.lock' \) ! -name "$U.*" 2>/dev/null | wc -l)
[[ $others -eq 0 ]] || skip "other domains' journals or locks are on this host: cleanup --stale would count their lock calls"

# A stale journal: a prepare whose VM never ran (no QEMU, no release).
xml=$(lend_domain racer "$U" pipewire:bind)
lend_hook racer prepare begin "$xml" || die "the first prepare: $(cat "$TMP/hook.err")"
[[ -e /run/sockhook/state/$U.xml ]] || die "no journal after the first prepare"

# The new start: pipewire, and an optional wayland socket that is not there yet (wait 120).
second=$(lend_wait=120 lend_domain racer "$U" pipewire:bind wayland:bind:no)


timeout 120 strace -o "$TMP/strace" -e trace=flock \
  -e inject=flock:delay_enter=3000000:delay_exit=3000000:when=1..2 \
  "$SOCKHOOK" cleanup --stale >"$TMP/out" 2>"$TMP/err" &
cleanup=$!
wait_until 30 bash -c "p=\$(pgrep -f '^$SOCKHOOK cleanup --stale' | head -1); [[ -n \$p ]] && grep -qE \"FLOCK +ADVISORY +WRITE +\$p \" /proc/locks" ||
  not_ok "cleanup --stale never held a lock"
printf '%s' "$second" | "$SOCKHOOK" hook --config-dir "$etc" racer prepare begin - 2>"$TMP/hook2.err" &
prepare=$!
rc=0
wait "$cleanup" || rc=$?
sed 's/^/#   cleanup --stale: /' "$TMP/out" "$TMP/err"
say "cleanup --stale exit $rc"
sed 's/^/#   strace: /' "$TMP/strace"
# The optional socket comes; a prepare still running lends it and ends.
lend_echo_server "$lend_user" "$runtime/wayland-0"
prc=0
wait "$prepare" || prc=$?
sed 's/^/#   prepare: /' "$TMP/hook2.err"
check "the concurrent prepare was not killed, and lends (exit $prc)" test "$prc" -eq 0
check "its journal stays" test -e "/run/sockhook/state/$U.xml"
check "QEMU reaches pipewire" lend_ping qemu "$L/pipewire-0"
check "QEMU reaches wayland" lend_ping qemu "$L/wayland-0"
lend_hook racer release end "$second" || not_ok "release: exit $?"
kill "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/wayland-0"
same_host "$TMP/before" "cleanup --stale beside a concurrent prepare, then release"
flock -u 8
finish
