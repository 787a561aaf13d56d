#!/usr/bin/env bash
# Issue 22, from reading: `cleanup --stale` counted a domain between its prepare and QEMU's start
# as stale. libvirt writes its status file (/run/libvirt/qemu/NAME.xml, which says whether QEMU
# runs) only once QEMU has been spawned; until then, from the prepare hook on, libvirt holds the
# domain and answers nothing about it. The old --stale released such a domain's lends and the VM
# started without them (QEMU's pa audiodev then cannot reach PulseAudio: the start fails). Now
# --stale asks libvirt first, bounded, and leaves a domain it is starting alone.
#
# Real libvirtd, QEMU and PulseAudio. A second hook in qemu.d (libvirt runs them in name order,
# so after sockhook's) stops the start after sockhook's prepare, or in the start hook, on a fifo:
# cleanup --stale runs while the domain is held there, then the start goes on. No timing: the
# suite waits for the held hook's marker file and opens the fifo when it has seen cleanup end.
# Then the other side: a journal of a domain libvirt has shut off (a prepare whose start ended
# without a release, as when libvirtd was killed during the start) is stale, and released.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

D=${E2E_PREFIX}stale
HOLD=${HOOK%/*}/zz-e2e-stale-hold # after "sockhook": runs once sockhook's prepare has ended
FIFO=$TMP/hold.fifo
AT=$TMP/held-at
OPF=$TMP/hold-op

# --stale acts on every journal of the host: only when all of them are ours.
others=$(find /run/sockhook/state -maxdepth 1 \( -name '*.xml' -o -name '*.lock' \) 2>/dev/null | wc -l)
[[ $others -eq 0 ]] || skip "other domains' journals or locks are on this host: cleanup --stale would release them"

"$DESKTOP" start pulseaudio >/dev/null
define_domain "$D" U
annotate "$D" --plugin pulseaudio --owner "$SH_USER" --method bind >/dev/null

# The holding hook: for our domain and the operation named in $OPF only, it says where it is and
# waits for a line on the fifo (at most 300 s, should the suite die: libvirt waits for hooks).
mkfifo -m 0600 "$FIFO"
cat <<EOF | install -m 0755 -o root -g root /dev/stdin "$HOLD"
#!/bin/sh
cat >/dev/null
[ "\$1" = "$D" ] && [ -f "$OPF" ] && [ "\$2" = "\$(cat "$OPF")" ] || exit 0
echo "\$2" >"$AT"
timeout 300 head -n1 "$FIFO" >/dev/null
exit 0
EOF
unhold() {
    rm -f "$HOLD" "$OPF"
    # A hook still waiting: let it go (bounded, a fifo without a reader blocks its writer).
    timeout 5 sh -c "echo go >'$FIFO'" 2>/dev/null || true
    "$LIBVIRT" reload >/dev/null 2>&1 || true
}
on_exit unhold
"$LIBVIRT" reload >/dev/null
host_snapshot >"$BEFORE"

# held OP : starts the domain with the holding hook waiting in OP, runs cleanup --stale while it
# waits (output in $TMP/cleanup), lets the start go on; the start's status is held's.
held() {
    echo "$1" >"$OPF"
    rm -f "$AT"
    virsh_ start "$D" >"$TMP/start.out" 2>&1 &
    local starting=$! rc=0 started=0
    # Until the hook holds the start, or the start has ended without reaching it.
    wait_until $((3 * E2E_TIMEOUT)) bash -c "[[ -e '$AT' ]] || ! kill -0 $starting 2>/dev/null" || true
    if [[ ! -e $AT ]]; then
        not_ok "$1: the start never reached the holding hook"
        unhold
        wait "$starting" || true
        return 1
    fi
    check "$1: sockhook's prepare has lent (a journal)" test -e "/run/sockhook/state/$U.xml"
    check "$1: QEMU does not run yet (no status file of libvirt's)" test ! -e "/run/libvirt/qemu/$D.xml"
    "$SOCKHOOK" cleanup --stale >"$TMP/cleanup" 2>&1 || rc=$?
    show "$(cat "$TMP/cleanup")"
    check "$1: cleanup --stale exits 0" test "$rc" -eq 0
    check "$1: it says that it leaves the starting domain alone" \
        grep -q "^$U: left alone: $D is starting (" "$TMP/cleanup"
    check "$1: the journal stays" test -e "/run/sockhook/state/$U.xml"
    check "$1: the lend stays" test -S "/run/sockhook/libvirt-$U/pulse-native"
    rm -f "$OPF"
    timeout 10 sh -c "echo go >'$FIFO'" || not_ok "$1: the holding hook did not take the fifo's line"
    wait "$starting" || started=$?
    show "$(cat "$TMP/start.out")"
    return "$started"
}

for op in prepare start; do
    say "cleanup --stale while libvirt is in the $op hook"
    if held "$op"; then
        ok "$op: the held start went on and QEMU runs"
        check "$op: QEMU got its lend (a PulseAudio client)" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
        rc=0
        "$SOCKHOOK" cleanup --stale >"$TMP/cleanup" 2>&1 || rc=$?
        show "$(cat "$TMP/cleanup")"
        check "$op: once QEMU runs, cleanup --stale releases nothing" \
            bash -c "[[ $rc == 0 && ! -s $TMP/cleanup ]] && test -e /run/sockhook/state/$U.xml"
    else
        not_ok "$op: the held start failed: $(tr '\n' ' ' <"$TMP/start.out")"
    fi
    stop "$D"
    same_host "$BEFORE" "$op: held, cleanup --stale, started, destroyed"
done

say "a prepare whose start ended without a release: libvirt has the domain shut off"
virsh_ dumpxml "$D" | "$SOCKHOOK" hook "$D" prepare begin - 2>"$TMP/hook.err" ||
    not_ok "prepare by hand: $(cat "$TMP/hook.err")"
check "the prepare lent (a journal)" test -e "/run/sockhook/state/$U.xml"
rc=0
"$SOCKHOOK" cleanup --stale >"$TMP/cleanup" 2>&1 || rc=$?
show "$(cat "$TMP/cleanup")"
check "cleanup --stale releases it" bash -c "[[ $rc == 0 ]] && grep -qx 'released $U' $TMP/cleanup"
same_host "$BEFORE" "a shut off domain's journal, cleanup --stale"
finish
