#!/usr/bin/env bash
# audio_paths.sh - every way to the owner's audio server still plays (issue 20, item 10).
#
#   bash tests/root/audio_paths.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# Runs bench/audio_bench.sh --check against the binary under test: real PulseAudio and
# PipeWire servers of a desktop user of its own (shaudio), real lends through the hook, and
# a real stream as QEMU's user through each path for a few seconds: PulseAudio direct, no-shm,
# bind, proxy and socat; PipeWire direct, bind, proxy and, where PipeWire has security
# contexts and the build has the holder (Debian 13), context. Each path is one check here:
# it passes when the server reports the stream played (PulseAudio's stream time, PipeWire's
# profiler), and fails, saying why, when the client gave up, the lend could not be made or
# the server played nothing. Underruns and latency are printed, never judged. The host is
# byte-identical afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools pacat pw-cat pw-profiler pulseaudio pipewire wireplumber socat chrt setpriv python3
id libvirt-qemu >/dev/null 2>&1 || skip "no libvirt-qemu user (libvirt is not installed)"

warm_run_sockhook
SNAP_DIRS=(/run/sockhook-audio-bench)
host_snapshot >"$TMP/before"

say "bench/audio_bench.sh --check --sockhook $SOCKHOOK"
rc=0
"$REPO/bench/audio_bench.sh" --check --sockhook "$SOCKHOOK" >"$TMP/bench.out" 2>"$TMP/bench.err" || rc=$?
show "$(cat "$TMP/bench.out")"
# Its progress lines are noise here; anything else it said on stderr is not.
grep -v '^audio_bench: ' "$TMP/bench.err" | sed 's/^/# stderr: /' || true

# One check per path, as the bench judged it.
paths=0 failed=0
while read -r verdict server path why; do
    case $verdict in
        ok) ok "$server $path plays: $why"; paths=$((paths + 1)) ;;
        FAIL) not_ok "$server $path plays: $why"; paths=$((paths + 1)) failed=$((failed + 1)) ;;
        skip) say "not run: $server $path: $why" ;;
    esac
done < <(sed -n -E 's/^(ok|FAIL|skip) +([a-z]+) ([a-z-]+): (.*)$/\1 \2 \3 \4/p' "$TMP/bench.out")
# Eight paths at least (PulseAudio five, PipeWire three); a bench that stopped early says less.
check "the bench judged every path ($paths; exit $rc)" test "$paths" -ge 8
check "the bench's exit status says whether a path failed (exit $rc, $failed failed)" \
    test "$rc" -eq "$( ((failed == 0)) && echo 0 || echo 1)"
same_host "$TMP/before" "after the bench"

finish
