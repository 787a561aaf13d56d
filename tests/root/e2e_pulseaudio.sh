#!/usr/bin/env bash
# e2e_pulseaudio.sh - real libvirtd + QEMU + PulseAudio through the installed hook, method bind.
#
# QEMU's pa audiodev refuses to start when it cannot reach the server (FINDINGS (a)), so a
# start that succeeds and a qemu-system-x86_64 client in `pactl list clients` prove the lend.
# Scenarios: annotate (XML + policy), doctor DOMAIN, start/destroy byte-identical, the socket
# inside QEMU's mount namespace, the negative without the hook, kill -9 of QEMU, two VMs on
# one socket, domrename between runs, a failing required lend, annotate --remove restoring
# the definition, and virsh start timings with and without a lend.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

A=${E2E_PREFIX}pa
B=${E2E_PREFIX}pa2
PLAIN=${E2E_PREFIX}plain
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$A" UA
define_domain "$B" UB
define_domain "$PLAIN"

annotate_ok "$A" --plugin pulseaudio --owner "$SH_USER"
check "annotate sets serverName on the pulseaudio backend" \
    grep -q "<audio id='1' type='pulseaudio' serverName='unix:/run/sockhook/libvirt-$UA/pulse-native'/>" <<<"$XML"
check "annotate keeps the sound card" grep -q "<sound model='ich9'>" <<<"$XML"
qemu_env_has "annotate passes the cookie through qemu:env" \
    PULSE_COOKIE "/run/sockhook/libvirt-$UA/pulse-cookie"
check "annotate does not use PULSE_SERVER (fails with QEMU 7.2)" bash -c "! grep -q PULSE_SERVER <<<\"\$1\"" _ "$XML"
check "libvirt kept the metadata" grep -q 'urn:sockhook:domain:1' <<<"$XML"
check "annotate recorded the policy allowance" policy_has "$UA"
out2=$(annotate "$A" --plugin pulseaudio --owner "$SH_USER")
check "annotating again changes nothing" grep -q "nothing changed" <<<"$out2"
plan_ok "$A"
annotate "$B" --plugin pulseaudio --owner "$SH_USER" >/dev/null

say "doctor"
doctor_ok "$A"

say "start, client, namespace, destroy"
host_snapshot >"$BEFORE"
if started "$A"; then
    check "pactl lists qemu-system-x86_64 as a client" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    lent_in_ns "$A" "$UA" pulse-native "the lent socket is inside QEMU's mount namespace"
    check "the cookie copy is inside QEMU's mount namespace" grep -q ' pulse-cookie$' <<<"$NS"
    out=$(annotate "$A" --plugin wayland --owner "$SH_USER" --required no)
    check "annotating a running domain says the change applies at the next start" \
        grep -q "applies at its next start" <<<"$out"
    out=$(annotate "$A" --plugin wayland --remove)
    check "and so does removing" grep -q "applies at its next start" <<<"$out"
    stop "$A"
fi
check "virsh destroy leaves the host byte-identical" same_as_before "$BEFORE"

say "negative: the same domain without the hook"
refused_without_hook "$A" "without the hook virsh start fails because QEMU cannot reach PulseAudio" \
    "$PA_REFUSED"
check "no lend without the hook leaves the host byte-identical" same_as_before "$BEFORE"

say "QEMU killed with SIGKILL"
if start "$A"; then
    wait_until "$E2E_TIMEOUT" has_pulse_clients 1 || true
    kill -9 "$(qemu_pid "$A")"
    check "libvirt notices the dead QEMU" wait_until "$E2E_TIMEOUT" is_shut_off "$A"
    check "release after kill -9 leaves the host byte-identical" same_as_before "$BEFORE"
else
    not_ok "virsh start $A before kill -9: $START_OUT"
fi

say "two VMs borrow the same socket"
if start "$A" && start "$B"; then
    check "both QEMUs are PulseAudio clients" wait_until "$E2E_TIMEOUT" has_pulse_clients 2
    stop "$A"
    check "the second VM keeps its client after the first stops" has_pulse_clients 1
    check "the second VM's lend is still there" test -e "/run/sockhook/libvirt-$UB/pulse-native"
    stop "$B"
    check "both stopped: the host is byte-identical" same_as_before "$BEFORE"
else
    not_ok "starting two VMs: $START_OUT"
    stop "$A"; stop "$B"
fi

say "domrename between runs"
R=${E2E_PREFIX}renamed
if virsh_ domrename "$A" "$R" >/dev/null; then
    if start "$R"; then
        check "the renamed domain lends again (UUID-keyed)" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
        check "its lend directory is still keyed by UUID" test -S "/run/sockhook/libvirt-$UA/pulse-native"
        stop "$R"
        check "the renamed domain releases byte-identically" same_as_before "$BEFORE"
    else
        not_ok "virsh start of the renamed domain: $START_OUT"
    fi
    virsh_ domrename "$R" "$A" >/dev/null
else
    not_ok "virsh domrename"
fi

say "a failing required lend: the server is down, method bind, wait 1"
"$DESKTOP" stop pulseaudio
annotate "$A" --plugin pulseaudio --owner "$SH_USER" --method bind --wait 1 >/dev/null
DOWN=$TMP/down
host_snapshot >"$DOWN"
doc=$("$SOCKHOOK" doctor "$A" 2>&1) && rc=0 || rc=$?
check "doctor predicts the failure" bash -c "test $rc -ne 0 && grep -q 'does not exist now' <<<\"\$1\"" _ "$doc"
start_fails "$A" "virsh start shows sockhook's one-line reason" "sockhook: error: $A: pulseaudio: "
check "the failed start left nothing behind" same_as_before "$DOWN"
"$DESKTOP" start pulseaudio >/dev/null
annotate "$A" --plugin pulseaudio --owner "$SH_USER" >/dev/null

say "annotate --remove"
annotate_removed "$A" pulseaudio
check "the other domain keeps its allowance" policy_has "$UB"

# E2E_TIMING_RUNS (default 5): fewer where every start is slow (the enforcing-kernel leg runs
# QEMU under TCG inside a TCG guest).
runs=${E2E_TIMING_RUNS:-5}
say "virsh start wall time, $runs runs each"
annotate "$A" --plugin pulseaudio --owner "$SH_USER" >/dev/null
# A new server has a new socket inode, and annotate rewrote the policy: the reference
# state is taken again.
host_snapshot >"$BEFORE"
with=() without=()
for ((i = 0; i < runs; i++)); do
    if start "$PLAIN"; then without+=("$START_TIME"); else not_ok "start $PLAIN: $START_OUT"; fi
    stop "$PLAIN"
    if start "$A"; then with+=("$START_TIME"); else not_ok "start $A: $START_OUT"; fi
    stop "$A"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if ((${#with[@]} && ${#without[@]})); then
    mw=$(median "${with[@]}"); mo=$(median "${without[@]}")
    say "virsh start without a lend: ${without[*]} (median $mo s)"
    say "virsh start with a pulseaudio bind lend: ${with[*]} (median $mw s)"
    say "ratio with/without: $(echo "scale=2; $mw / $mo" | bc -l)"
fi
check "after the timing runs the host is byte-identical" same_as_before "$BEFORE"

finish
