#!/usr/bin/env bash
# e2e_pipewire.sh - QEMU's own PipeWire audio backend, lent pipewire-0 by the hook.
#
#   bash tests/root/e2e_pipewire.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# libvirt 9.10 has <audio type='pipewire' runtimeDir=...> and QEMU 8.1 the backend (the
# module audio-pipewire.so of qemu-system-gui). With older ones this skips and says which
# (Debian 12 has libvirt 9.0 and QEMU 7.2; Debian 13 has 11.3 and 10.0). `annotate --plugin
# pipewire` must use runtimeDir there, not PIPEWIRE_RUNTIME_DIR in qemu:env. The proof is
# PipeWire's own list of clients, asked as the owner: qemu-system-x86_64 is there with the
# lend and not without it (the negative shows that the check can fail).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gates.bash" pipewire_audio
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"
say "libvirt $lv, QEMU $qv, $(pipewire --version 2>/dev/null | grep -o 'libpipewire [0-9.]*')"

W=${E2E_PREFIX}pipewire
"$DESKTOP" start pipewire >/dev/null
define_domain "$W" UW

# qemu_client_block : the Client objects of `pw-cli ls Client` (asked as the owner) that are
# QEMU, each with its properties.
qemu_client_block() {
    "$DESKTOP" as-user pw-cli ls Client 2>/dev/null |
        awk '/^\tid [0-9]+, type PipeWire:Interface:Client/ { if (b ~ /qemu-system-x86_64/) printf "%s", b; b = "" }
             { b = b $0 "\n" }
             END { if (b ~ /qemu-system-x86_64/) printf "%s", b }'
}

annotate_ok "$W" --plugin pipewire --owner "$SH_USER" --method bind  # the bind lend: its ACL entry is checked below
check "annotate makes the audio backend pipewire with libvirt's runtimeDir" \
    grep -q "<audio id='1' type='pipewire' runtimeDir='/run/sockhook/libvirt-$UW'/>" <<<"$XML"
check "annotate does not fall back to PIPEWIRE_RUNTIME_DIR in qemu:env" \
    bash -c "! grep -q PIPEWIRE_RUNTIME_DIR <<<\"\$1\"" _ "$XML"
check "annotate keeps the sound card" grep -q "<sound model='ich9'>" <<<"$XML"
check "annotate recorded the policy allowance" policy_has "$UW"
plan_ok "$W"
doctor_ok "$W"

say "start: QEMU becomes a PipeWire client through its own backend"
host_snapshot >"$BEFORE"  # after annotate, which rewrote the policy on purpose
check "QEMU is not a PipeWire client before the start" no_pipewire_qemu
if started "$W"; then
    QP=$(qemu_pid "$W")
    audiodev=$({ tr '\0' '\n' <"/proc/$QP/cmdline"; } 2>/dev/null | grep -A1 -x -- -audiodev | tail -n1 || true)
    say "QEMU's -audiodev: $audiodev"
    check "QEMU runs with a PipeWire -audiodev" grep -q '"driver":"pipewire"' <<<"$audiodev"
    # libvirt turns runtimeDir into QEMU's environment.
    check "libvirt gives QEMU PIPEWIRE_RUNTIME_DIR=/run/sockhook/libvirt-$UW from runtimeDir" \
        bash -c "tr '\\0' '\\n' </proc/$QP/environ | grep -qx 'PIPEWIRE_RUNTIME_DIR=/run/sockhook/libvirt-$UW'"
    check "pw-cli ls Client (as $SH_USER) lists qemu-system-x86_64" wait_until "$E2E_TIMEOUT" pipewire_has_qemu
    block=$(qemu_client_block)
    show "$block"
    check "that client is QEMU's process, running as libvirt-qemu" \
        bash -c "grep -q 'pipewire.sec.pid = \"$QP\"' <<<\"\$1\" &&
                 grep -q 'pipewire.sec.uid = \"$QEMU_UID\"' <<<\"\$1\"" _ "$block"
    lent_in_ns "$W" "$UW" pipewire-0 "pipewire-0 is inside QEMU's mount namespace"
    one_qemu_acl_entry "$SH_PIPEWIRE_SOCKET"
    stop "$W"
fi
check "virsh destroy leaves the host byte-identical (ACL entry gone)" same_as_before "$BEFORE"
check "QEMU is no longer a PipeWire client" wait_until 5 no_pipewire_qemu

say "negative: the same domain without the hook"
# QEMU's PipeWire backend, unlike its JACK one, refuses to start when it cannot connect.
refused_without_hook "$W" "without the lend QEMU cannot reach PipeWire and does not start" \
    "Failed to connect to PipeWire instance"
check "and pw-cli does not list qemu-system-x86_64" no_pipewire_qemu
check "the host is byte-identical after the negative" same_as_before "$BEFORE"

say "annotate --remove"
annotate_removed "$W" pipewire

finish
