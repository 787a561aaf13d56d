#!/bin/bash
# Issue 22 item 3, the part left open: a FUSE file system that never answers, mounted by its
# owner on the runtime directory itself (/run/user/<uid>, not below it), with allow_other (an
# administrator allowed user_allow_other in fuse.conf). Root then passes FUSE's own check, and
# every lookup, stat or ACL read beneath that directory waits for the owner's server. libvirt
# waits for the hook on every start and release, with no timeout of its own.
#   - prepare (the hook invoked as libvirt would): returns within its bound, exit 1, one line
#     naming domain, socket and the file system; nothing lent; the host byte-identical after.
#   - release of an acl lend made before the mount: returns within its bound, keeps the entry
#     it could not look at, and a release after the mount is gone undoes it completely.
#   - the worst case, shown rather than assumed: a process whose request the server has read
#     does not die at SIGKILL (uninterruptible until the server goes). So the hook never waits
#     for such a process; it only ever asks the kernel's mount table about the directory.
# Run against an older binary, the hook hangs in the server's request: this suite's own limit
# ($OUTER s) ends the wait and reports it.
#
#   bash tests/root/lend_fuse_runtime.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
if [[ ! -c /dev/fuse ]] || ! grep -qw fuse /proc/filesystems; then skip "no FUSE in this kernel"; fi

# The suite's own limit on each hook: far above the hook's bounds, reached only by a wait
# without one. A hook stuck in a FUSE request ignores `timeout`'s signals, so the suite polls.
OUTER=${FUSE_OUTER_TIMEOUT:-30}

lend_setup 2c4e6a80-9b1d-4f3e-8a5c-7d9e1f2a3b4c pipewire-0 wayland-0
host_snapshot >"$TMP/before"

# The never-answering FUSE server: fuse_up and fuse_down (lib/servers.bash, lib/fuse_stall.py).
on_exit fuse_down

# ended PID : our child PID has exited (a zombie until `wait`), or is gone.
ended() { [[ ! -e /proc/$1/stat || $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
nothing_lent() { [[ ! -e $L && ! -e /run/sockhook/state/$U.xml ]]; }
# bounded_hook OP SUB XML : the hook in the background, waited for at most $OUTER s; $rc is
# its exit code, or "hung". A hung hook is freed by taking the server down, then reaped.
bounded_hook() {
  printf '%s' "$3" >"$TMP/hook.in"
  "$SOCKHOOK" hook --config-dir "$etc" fuserun "$1" "$2" - <"$TMP/hook.in" 2>"$TMP/hook.err" &
  local pid=$! t0=$EPOCHREALTIME
  rc=0
  if wait_until "$OUTER" ended "$pid"; then
    wait "$pid" || rc=$?
  else
    rc=hung
    say "the hook (pid $pid, state $(awk '{ print $3 }' /proc/$pid/stat 2>/dev/null)) is still running after ${OUTER} s; taking the FUSE server down"
    fuse_down
    wait "$pid" || true
  fi
  say "hook $1 took $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s (exit $rc)"
  sed 's/^/#   hook: /' "$TMP/hook.err"
}

# ---- the worst case: SIGKILL does not free a process the server holds ------------------------
fuse_up "$runtime" allow_other
lend_spawn "$lend_user" stat "$runtime/probe"
victim=$spawned
if wait_until 10 grep -q "stalled $victim" "$TMP/fuse.report"; then
  kill -KILL "$victim"
  sleep 1  # the observation, not an assertion: does it die?
  state=$(awk '{ print $3 }' "/proc/$victim/stat" 2>/dev/null || echo gone)
  say "a process whose FUSE request was read, 1 s after SIGKILL: state $state (D: it cannot die)"
else
  say "the owner's stat never reached the server"
fi
fuse_down
wait "$victim" 2>/dev/null || true

# ---- prepare: refused in one line, within the bound ------------------------------------------
fuse_up "$runtime" allow_other
bounded_hook prepare begin "$(lend_domain fuserun "$U" pipewire:bind wayland:acl)"
check "prepare under FUSE on the runtime directory returns (not still running at ${OUTER} s)" \
  test "$rc" != hung
check "prepare: exit 1" test "$rc" = 1
check "prepare: one line naming domain, socket and the FUSE file system" \
  bash -c "[[ \$(wc -l <'$TMP/hook.err') -eq 1 ]] && grep -q 'fuserun: pipewire: .*$runtime is on a file system that a process serves (fuse)' '$TMP/hook.err'"
check "prepare: nothing lent, no journal" nothing_lent
fuse_down
same_host "$TMP/before" "prepare under FUSE on the runtime directory"

# ---- release: an acl lend made before the mount ----------------------------------------------
xml=$(lend_domain fuserun "$U" wayland:acl)
lend_hook fuserun prepare begin "$xml" || die "prepare of the acl lend: $(cat "$TMP/hook.err")"
fuse_up "$runtime" allow_other
bounded_hook release end "$xml"
check "release under FUSE on the runtime directory returns (not still running at ${OUTER} s)" \
  test "$rc" != hung
check "release: exit 0 (libvirt ignores it), the journal kept for the next try" \
  bash -c "[[ '$rc' == 0 && -e /run/sockhook/state/$U.xml ]]"
fuse_down
lend_hook fuserun release end "$xml" || not_ok "release after the FUSE server went: $(cat "$TMP/hook.err")"
check "a release after the mount is gone ends the journal" test ! -e "/run/sockhook/state/$U.xml"
same_host "$TMP/before" "acl lend released after the FUSE mount"

finish
