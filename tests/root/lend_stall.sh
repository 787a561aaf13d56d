#!/bin/bash
# R6 against the socket's owner: a FUSE server the owner controls, which never answers, on the
# path of a companion file (the PulseAudio cookie). The hook must return within its own bound
# with one clear line naming domain, socket and problem: for a required file the socket fails,
# for an optional one the hook warns and lends without it. Also:
#   - the reader child, stuck in the FUSE request, holds only what it needs (/dev/null as
#     0-2, its pipe, the home it resolves from): none of root's descriptors (the domain lock,
#     the state or lend directory), so an abandoned child holds no lock;
#   - a release that runs while a prepare of the same domain is held up waits for it and then
#     undoes everything: the host is byte-identical afterwards.
# Two places for the mount: on ~/.config/pulse (beneath the home: never crossed), and on the
# home itself (crossed legitimately, like a home on its own file system: the read stalls and
# the child is killed, then abandoned when it cannot die).
#
#   bash tests/root/lend_stall.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools timeout
if [[ ! -c /dev/fuse ]] || ! grep -qw fuse /proc/filesystems; then skip "no FUSE in this kernel"; fi

# The outer limit: far above the hook's own bounds (5 s read + 2 s reaping), never reached
# unless a wait is unbounded.
OUTER=${STALL_OUTER_TIMEOUT:-60}

lend_setup 3d1f0c2e-5b4a-4c69-9e7d-0a1b2c3d4e5f pulse
warm_run_sockhook
# The same plugin with a required cookie.
sed -e 's/name="pulseaudio"/name="pulsereq"/' -e 's/optional="yes"/optional="no"/' \
    "$REPO/plugins/pulseaudio.xml" >"$etc/plugins/pulsereq.xml"
chmod 644 "$etc/plugins/pulsereq.xml"

# The never-answering FUSE server: fuse_up and fuse_down (lib/servers.bash, lib/fuse_stall.py).
on_exit fuse_down

# The hook's warnings go to syslog only: lib/lend.bash's listener keeps them for the checks
# (with a syslog daemon running, the warning's text is not checked).
syslog_listen
# warned TEXT : the hook logged TEXT (ok without a way to tell, saying so).
warned() {
  [[ -n $SYSLOG_PID ]] || { say "a syslog daemon runs: the warning's text is not checked"; return 0; }
  grep -q -- "$1" "$TMP/syslog"
}

# The hook, bounded from outside; $rc and $TMP/hook.err.
# The time it took is reported (never asserted): the figure for the hook's bound.
bounded_hook() {
  local t0=$EPOCHREALTIME
  rc=0
  printf '%s' "$4" | timeout "$OUTER" "$SOCKHOOK" hook --config-dir "$etc" "$1" "$2" "$3" - 2>"$TMP/hook.err" || rc=$?
  say "hook $2 took $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s (exit $rc)"
}
release() { printf '<domain><name>stall</name><uuid>%s</uuid></domain>' "$U" |
  timeout "$OUTER" "$SOCKHOOK" hook --config-dir "$etc" stall release end - 2>"$TMP/release.err"; }
one_line() { [[ $(wc -l <"$TMP/hook.err") -eq 1 ]] && grep -q -- "$1" "$TMP/hook.err"; }
show_err() { sed 's/^/#   hook: /' "$TMP/hook.err"; }

# child_fds PID : "FD TARGET" per descriptor of PID, pipes and sockets without their inode.
child_fds() {
  local f
  for f in /proc/"$1"/fd/*; do
    printf '%s %s\n' "${f##*/}" "$(readlink "$f" | sed -E 's/^(pipe|socket):\[[0-9]+\]$/\1/')"
  done | sort -n
}

# ---- 1. FUSE on ~/.config/pulse: beneath the home, the mount is never crossed ----------------
before=$TMP/before
host_snapshot >"$before"
fuse_up "$home/.config/pulse"

bounded_hook stall prepare begin "$(lend_domain stall "$U" pulsereq:bind)"
show_err
check "beneath-home FUSE, required cookie: the hook returns (not killed at ${OUTER} s)" test "$rc" -ne 124
check "beneath-home FUSE, required cookie: prepare fails" test "$rc" -eq 1
check "beneath-home FUSE, required cookie: one line naming domain, socket, mount point" \
  one_line "stall: pulsereq: cannot copy $home/.config/pulse/cookie: .*mount point"
check "beneath-home FUSE, required cookie: nothing stays lent" test ! -e "$L"

bounded_hook stall prepare begin "$(lend_domain stall "$U" pulseaudio:bind)"
show_err
check "beneath-home FUSE, optional cookie: the hook returns (not killed at ${OUTER} s)" test "$rc" -ne 124
check "beneath-home FUSE, optional cookie: prepare lends the socket" test "$rc" -eq 0
check "beneath-home FUSE, optional cookie: a warning naming domain, socket, mount point" \
  warned "stall: pulseaudio: cannot copy $home/.config/pulse/cookie: .*mount point.*(optional file skipped)"
check "beneath-home FUSE, optional cookie: the socket is lent" lend_ping qemu "$L/pulse-native"
check "beneath-home FUSE, optional cookie: no cookie copied" test ! -e "$L/pulse-cookie"
release || not_ok "release after the optional lend: $(cat "$TMP/release.err")"
fuse_down
same_host "$before" "beneath-home FUSE"

# ---- 2. FUSE on the home itself: crossed, the read stalls ----------------------------------
host_snapshot >"$before"
fuse_up "$home"

# bg_prepare SOCKET : the prepare in the background; its exit code goes to $TMP/prepare.rc.
bg_prepare() {
  rm -f "$TMP/prepare.rc"
  : >"$TMP/fuse.report"
  ( bounded_hook stall prepare begin "$(lend_domain stall "$U" "$1")"; echo "$rc" >"$TMP/prepare.rc" ) &
  hook_job=$!
}

# Required: while its reader is stuck, look at the reader's descriptors.
bg_prepare pulsereq:bind
if wait_until 30 grep -q stalled "$TMP/fuse.report"; then
  reader=$(awk '{ print $2 }' "$TMP/fuse.report")
  child_fds "$reader" >"$TMP/fds"
  sed 's/^/#   reader fd: /' "$TMP/fds"
  printf '0 /dev/null\n1 /dev/null\n2 /dev/null\n3 pipe\n4 %s\n' "$home" >"$TMP/fds.expected"
  check "the stuck reader (uid $(stat -c %u /proc/"$reader")) holds only /dev/null, its pipe and the home" \
    cmp -s "$TMP/fds" "$TMP/fds.expected"
  check "the stuck reader holds nothing of /run/sockhook" bash -c "! grep -q /run/sockhook '$TMP/fds'"
else
  not_ok "the reader never reached the FUSE server"
fi
wait "$hook_job" || true
show_err
check "home on FUSE, required cookie: the hook returns (not killed at ${OUTER} s)" \
  test "$(cat "$TMP/prepare.rc")" -ne 124
check "home on FUSE, required cookie: prepare fails" test "$(cat "$TMP/prepare.rc")" -eq 1
check "home on FUSE, required cookie: one line naming domain, socket, the stalled reader" \
  one_line "stall: pulsereq: cannot copy $home/.config/pulse/cookie: .*did not finish within 5000 ms"
check "home on FUSE, required cookie: nothing stays lent" test ! -e "$L"

# Optional, with a release of the same domain while the prepare is held up.
bg_prepare pulseaudio:bind
release_rc=none
if wait_until 30 grep -q stalled "$TMP/fuse.report"; then
  release_rc=0
  release || release_rc=$?
else
  not_ok "the optional reader never reached the FUSE server"
fi
wait "$hook_job" || true
show_err
sed 's/^/#   release: /' "$TMP/release.err"
check "home on FUSE, optional cookie: prepare returns and lends (not killed at ${OUTER} s)" \
  test "$(cat "$TMP/prepare.rc")" -eq 0
check "home on FUSE, optional cookie: a warning naming domain, socket, the stalled reader" \
  warned "stall: pulseaudio: cannot copy $home/.config/pulse/cookie: .*did not finish within 5000 ms.*(optional file skipped)"
check "a release during the held-up prepare waits for it and succeeds" test "$release_rc" = 0
check "that release says nothing went wrong" test ! -s "$TMP/release.err"
# Whatever the order was, a release now must find nothing left to do.
release || not_ok "the second release: $(cat "$TMP/release.err")"
check "after the release nothing stays lent" test ! -e "$L"
fuse_down
same_host "$before" "home on FUSE"

finish
