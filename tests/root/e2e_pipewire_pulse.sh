#!/usr/bin/env bash
# e2e_pipewire_pulse.sh - the pulseaudio plugin against pipewire-pulse, what Debian 13 and
# other current desktops run on pulse/native (no PulseAudio daemon, usually no cookie).
#
#   bash tests/root/e2e_pipewire_pulse.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# QEMU's pa audiodev refuses to start when it cannot reach the server (FINDINGS (a)), so a
# start that succeeds and a qemu-system-x86_64 client in `pactl list clients` prove the lend;
# PipeWire lists the same QEMU among its own clients, through pipewire-pulse. Methods bind
# and acl; the proxy to pipewire-pulse is in e2e_proxy.sh. Each stop leaves the host
# byte-identical; without the hook the start fails.
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }  # before the library: nothing to clean up yet
command -v pipewire-pulse >/dev/null || skip "pipewire-pulse is not installed"
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

A=${E2E_PREFIX}pwpulse
"$DESKTOP" stop pulseaudio >/dev/null
"$DESKTOP" start pipewire-pulse >/dev/null
define_domain "$A" UA
server=$("$DESKTOP" as-user pactl info 2>/dev/null | sed -n 's/^Server Name: //p')
say "pulse/native is served by: $server"
check "pulse/native is pipewire-pulse's, not a PulseAudio daemon's" grep -q 'on PipeWire' <<<"$server"

# pipewire_pulse_has_qemu : PipeWire itself lists QEMU's pulse connection as a client.
pipewire_pulse_has_qemu() {
    "$DESKTOP" as-user pw-dump 2>/dev/null | python3 -c '
import json, sys
clients = [o for o in json.load(sys.stdin) if o.get("type") == "PipeWire:Interface:Client"]
props = [c.get("info", {}).get("props", {}) for c in clients]
sys.exit(0 if any(p.get("application.process.binary") == "qemu-system-x86_64"
                  and p.get("client.api") == "pipewire-pulse" for p in props) else 1)'
}

no_pulse_clients() { ! has_pulse_clients 1; }

for method in bind acl; do
    say "method $method"
    annotate_ok "$A" --plugin pulseaudio --owner "$SH_USER" --method "$method"
    host_snapshot >"$BEFORE"  # after annotate, which rewrote the policy on purpose
    if [[ $method == bind ]]; then
        check "annotate sets serverName to the lent socket" \
            grep -q "<audio id='1' type='pulseaudio' serverName='unix:/run/sockhook/libvirt-$UA/pulse-native'/>" <<<"$XML"
    else
        check "annotate points serverName at the owner's socket itself" \
            grep -q "<audio id='1' type='pulseaudio' serverName='unix:$SH_PULSE_SOCKET'/>" <<<"$XML"
    fi
    doctor_ok "$A" "$method"
    if started "$A" "method $method"; then
        check "pactl (pipewire-pulse) lists qemu-system-x86_64 ($method)" \
            wait_until "$E2E_TIMEOUT" has_pulse_clients 1
        check "PipeWire lists QEMU as a pipewire-pulse client ($method)" \
            wait_until "$E2E_TIMEOUT" pipewire_pulse_has_qemu
        stop "$A"
    fi
    check "virsh destroy leaves the host byte-identical ($method)" same_as_before "$BEFORE"
    check "QEMU is no longer a pulse client ($method)" wait_until 5 no_pulse_clients
done

say "negative: the same domain without the hook"
annotate "$A" --plugin pulseaudio --owner "$SH_USER" --method bind >/dev/null
host_snapshot >"$BEFORE"
refused_without_hook "$A" "without the hook virsh start fails because QEMU cannot reach pipewire-pulse" \
    "$PA_REFUSED"
check "no lend without the hook leaves the host byte-identical" same_as_before "$BEFORE"

say "annotate --remove"
annotate_removed "$A" pulseaudio

finish
