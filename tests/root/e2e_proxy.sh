#!/usr/bin/env bash
# e2e_proxy.sh - method proxy under real libvirtd: PulseAudio through the proxy, libvirtd
# restarts (the proxy survives; reconnect restarts a dead one), and optional lends whose
# server is down.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

P=${E2E_PREFIX}proxy
W=${E2E_PREFIX}wl
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$P" UP
define_domain "$W" UW
syslog_listen  # the proxy's refusals, shown when a client fails

# The live proxies (PID 1 reaps zombies late here, and pgrep lists zombies).
proxy_pids() { ps -u "$SH_UID" -o pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "sockhook" { print $1 }' | sort; }
no_proxy() { [[ -z $(proxy_pids) ]]; }
some_proxy() { [[ -n $(proxy_pids) ]]; }
has_status() { "$SOCKHOOK" --help 2>&1 | grep -q '^ *status'; }
# status_ok UUID-OR-NAME : `sockhook status` lists a lend of it, healthy.
status_ok() {
    "$SOCKHOOK" status --json | python3 -c '
import json, sys
lends = [l for l in json.load(sys.stdin) if l["uuid"] == sys.argv[1]]
sys.exit(0 if lends and all(l["health"] == "ok" for l in lends) else 1)' "$1"
}
# client_through_lend : a fresh PulseAudio client, as QEMU's user in QEMU's mount namespace and
# cgroup; on failure also what the proxy logged.
client_through_lend() {
    pulse_as_qemu "$UP" in_qemu_ns "$P" && return 0
    [[ -s $TMP/syslog ]] && grep -a 'proxy for' "$TMP/syslog" | tail -3 | sed 's/^/#   /'
    return 1
}

say "the real PulseAudio through the proxy"
annotate "$P" --plugin pulseaudio --owner "$SH_USER" --method proxy >/dev/null
host_snapshot >"$BEFORE"
# The real PulseAudio sees the proxy's uid (its own) and offers memfd shared memory, whose fd
# must reach QEMU with the very packet it belongs to.
if started "$P" "through the proxy"; then
    check "pactl lists qemu-system-x86_64 (through the proxy)" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    ns=$(in_qemu_ns "$P" ls -l "/run/sockhook/libvirt-$UP/" 2>&1 || true)
    show "$ns"
    check "the proxy's socket is in QEMU's namespace, QEMU's user's, 0600" \
        grep -q '^srw------- .* libvirt-qemu .* pulse-native$' <<<"$ns"
    check "one proxy runs as $SH_USER" test "$(proxy_pids | wc -w)" -eq 1
    stop "$P"
fi
check "virsh destroy stops the proxy and leaves the host byte-identical" same_as_before "$BEFORE"

say "pipewire-pulse through the proxy; libvirtd restarts"
"$DESKTOP" stop pulseaudio
"$DESKTOP" start pipewire-pulse >/dev/null
host_snapshot >"$BEFORE"
if started "$P" "through the proxy to pipewire-pulse"; then
    check "pactl lists qemu-system-x86_64 (through the proxy)" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    PROXY=$(proxy_pids)
    check "one proxy runs as $SH_USER" test "$(wc -w <<<"$PROXY")" -eq 1
    check "a new client gets through the proxy" client_through_lend

    say "libvirtd restart with the proxy running"
    "$LIBVIRT" restart
    check "the domain still runs after the restart" is_running "$P"
    check "the same proxy still runs" test "$(proxy_pids)" = "$PROXY"
    check "QEMU is still a PulseAudio client" has_pulse_clients 1
    check "a new client still gets through" client_through_lend
    if has_status; then
        check "sockhook status says ok" status_ok "$UP"
    else
        say "skip: sockhook status is not implemented in this build"
    fi

    say "the proxy dies; the next libvirtd restart brings it back (reconnect)"
    # shellcheck disable=SC2086 # one pid per word
    [[ -n $PROXY ]] && kill $PROXY
    check "the proxy is gone" wait_until 5 no_proxy
    check "QEMU survives its proxy's death" is_running "$P"
    # PID 1 here reaps orphans about once a second; until then the dead proxy is a zombie
    # that still has its pid and start time (reconnect would take it for alive).
    wait_until 5 bash -c "! pgrep -u $SH_UID -x sockhook" || say "the dead proxy is still a zombie"
    "$LIBVIRT" restart
    check "the domain still runs" is_running "$P"
    check "reconnect started a new proxy" wait_until 5 some_proxy
    check "it is a new process" test "$(proxy_pids)" != "$PROXY"
    check "a new client gets through the new proxy" client_through_lend
    if has_status; then
        check "sockhook status says ok again" status_ok "$UP"
    fi
    stop "$P"
fi
check "virsh destroy stops the proxy and leaves the host byte-identical" same_as_before "$BEFORE"
"$DESKTOP" stop pipewire
"$DESKTOP" start pulseaudio >/dev/null

say "optional lends whose server is down"
# QEMU's pa audiodev refuses to start without its server whatever sockhook does, and so does
# its SDL display (the wayland plugin) without the compositor; so the optional case uses a
# socket QEMU starts without: JACK's (pipewire-0, FINDINGS (b)), with PipeWire not running.
annotate "$W" --plugin jack --owner "$SH_USER" --method bind --wait 1 --required no >/dev/null
host_snapshot >"$BEFORE"  # annotate rewrote the policy: the reference is after it
if started "$W" "required='no', method bind, no server"; then
    check "nothing was lent" test ! -e "/run/sockhook/libvirt-$UW/pipewire-0"
    stop "$W"
fi
check "the skipped lend left the host byte-identical" same_as_before "$BEFORE"
annotate "$W" --plugin jack --owner "$SH_USER" --method proxy --required no >/dev/null
host_snapshot >"$BEFORE"
if started "$W" "required='no', method proxy, no server"; then
    check "the proxy listens lazily in the lend directory" test -S "/run/sockhook/libvirt-$UW/pipewire-0"
    stop "$W"
fi
check "the lazy proxy left the host byte-identical" same_as_before "$BEFORE"
annotate "$W" --plugin jack --owner "$SH_USER" --method bind --wait 1 >/dev/null
host_snapshot >"$BEFORE"
start_fails "$W" "the same lend, required: virsh start fails with sockhook's reason" \
    "sockhook: error: $W: jack: "
check "the failed start left the host byte-identical" same_as_before "$BEFORE"

say "PulseAudio proxy, required='no', server down: sockhook lets it start, QEMU refuses"
"$DESKTOP" stop pulseaudio
annotate "$P" --plugin pulseaudio --owner "$SH_USER" --method proxy --required no >/dev/null
DOWN=$TMP/down
host_snapshot >"$DOWN"
if start "$P"; then
    ok "virsh start succeeded (QEMU's pa backend tolerated the missing server)"
    stop "$P"
else
    check "the failure is QEMU's (pa), not sockhook's" \
        bash -c "grep -q -E '$PA_REFUSED' <<<\"\$1\" && ! grep -q 'sockhook: error' <<<\"\$1\"" _ "$START_OUT"
fi
check "nothing left behind" same_as_before "$DOWN"

finish
