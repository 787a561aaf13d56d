#!/usr/bin/env bash
# e2e_jack.sh - QEMU's JACK audio through PipeWire's JACK implementation, lent by the hook.
#
# QEMU starts even when JACK fails (FINDINGS (b)), so the assertion is PipeWire's own list
# of clients: qemu-system-x86_64 must be there with the lend, and must not be there without
# it (the negative shows that the check can fail).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

J=${E2E_PREFIX}jack
"$DESKTOP" start pipewire >/dev/null
define_domain "$J" UJ

annotate_ok "$J" --plugin jack --owner "$SH_USER" --method bind  # the bind lend: its ACL entry is checked below
check "annotate makes the audio backend jack" grep -q "<audio id='1' type='jack'/>" <<<"$XML"
qemu_env_has "annotate gives QEMU PIPEWIRE_RUNTIME_DIR" \
    PIPEWIRE_RUNTIME_DIR "/run/sockhook/libvirt-$UJ"
qemu_env_has "annotate gives QEMU PipeWire's libjack" \
    LD_LIBRARY_PATH /usr/lib/x86_64-linux-gnu/pipewire-0.3/jack
check "annotate recorded the policy allowance" policy_has "$UJ"
doctor_ok "$J"

say "start: QEMU becomes a PipeWire client"
host_snapshot >"$BEFORE"
if started "$J"; then
    check "pw-cli ls Client lists qemu-system-x86_64" wait_until "$E2E_TIMEOUT" pipewire_has_qemu
    lent_in_ns "$J" "$UJ" pipewire-0 "pipewire-0 is inside QEMU's mount namespace"
    # The socket is 0755 (umask 022): the bind lend needs one ACL entry for QEMU's user.
    one_qemu_acl_entry "$SH_PIPEWIRE_SOCKET"
    stop "$J"
fi
check "virsh destroy leaves the host byte-identical (ACL entry gone)" same_as_before "$BEFORE"
check "QEMU is no longer a PipeWire client" wait_until 5 no_pipewire_qemu

say "negative: without the hook QEMU starts but never reaches PipeWire"
hook_disable
LOG=/var/log/libvirt/qemu/$J.log
lines=$(wc -l <"$LOG" 2>/dev/null || echo 0)
if start "$J"; then
    sleep 3
    check "without the lend pw-cli does not list qemu-system-x86_64" no_pipewire_qemu
    check "and QEMU's log of this start says JACK failed" \
        bash -c "tail -n +$((lines + 1)) '$LOG' | grep -q 'jack: unable to connect to JACK server'"
    stop "$J"
else
    not_ok "virsh start without the hook: $START_OUT"
fi
hook_enable
check "the host is byte-identical after the negative" same_as_before "$BEFORE"

say "annotate --remove"
annotate_removed "$J" jack

finish
