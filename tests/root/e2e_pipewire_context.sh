#!/usr/bin/env bash
# e2e_pipewire_context.sh - method context (issue 19) under real libvirtd and QEMU: QEMU's own
# PipeWire audio backend reaches the owner's PipeWire only through the security context that
# the hook creates for it, restricted by sockhook's WirePlumber rules (dist/wireplumber).
#
#   bash tests/root/e2e_pipewire_context.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# What it shows, in CI's Debian 13 root (libvirt 11, QEMU 10, PipeWire 1.4, WirePlumber 0.5):
# - start: the hook, installed as install.sh installs it (a copy in /etc/libvirt/hooks/qemu.d,
#   the holder where install.sh puts it), binds the lend and starts the holder; QEMU becomes a
#   PipeWire client of the owner's server, labelled with the context's properties (engine
#   org.sockhook, the domain, its UUID), and its playback stream is linked to the owner's sink,
#   while its capture stream is linked to nothing; status says ok;
# - libvirtd restarts (reconnect): the same holder, QEMU still a client, a new client as QEMU's
#   user in QEMU's namespace plays through the lend (issue 20, item 2);
# - the holder is killed: status says so; `sockhook refresh` starts a new one, and a new
#   client plays again; killed again, a libvirtd restart's reconnect starts one as well;
# - the owner's PipeWire restarts: the holder ends with the old server's context, so status
#   no longer says ok; refresh starts a holder on the new server, and a new client plays;
# - the JACK plugin through a context: a JACK client (jack_metro with PipeWire's libjack) as
#   QEMU's user makes its output port through it, which the owner links into the sink (a
#   client of the context can neither see the owner's ports nor link); QEMU's own JACK backend
#   is configured for the owner's server's rate and its client is a client of the context;
#   jack_lsp through the lend lists no port, and jack_rec of the source's port through it
#   gives 0 frames (the owner's gives frames);
# - virsh destroy: the host is byte-identical to before the start.
# QEMU 10 with libvirt's pipewire audiodev waits for ever for a server that does not answer:
# every virsh here is bounded (E2E_VIRSH_TIMEOUT).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gates.bash" pipewire_audio
pwv=$(pipewire --version 2>/dev/null | sed -n 's/.*libpipewire \([0-9][0-9.]*\).*/\1/p' | head -n1)
(($(version_number "${pwv:-0.0.0}") >= 1002000)) ||
    skip "PipeWire ${pwv:-?} has no security context (method context needs PipeWire >= 1.2)"
HOLDER=$(dirname "$(readlink -f "${1:-/nonexistent}")")/sockhook-context-holder
[[ -x $HOLDER ]] || skip "no sockhook-context-holder beside ${1:-?}: built without libpipewire >= 1.2"
WP_CONF=/etc/wireplumber/wireplumber.conf.d/sockhook.conf
[[ -n ${SOCKHOOK_TEST_INSTALLED:-} || ! -e $WP_CONF ]] || skip "$WP_CONF exists (an installed sockhook?)"
# Every virsh bounded well below the default: a start that waits for PipeWire waits for ever.
export E2E_VIRSH_TIMEOUT=${E2E_VIRSH_TIMEOUT:-90}
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"
need_tools pw-play pw-dump wireplumber jack_lsp jack_metro jack_connect jack_rec
say "libvirt $lv, QEMU $qv, libpipewire $pwv, $(wireplumber --version | grep -o 'libwireplumber [0-9.]*')"

# ---------------------------------------------------------------- install.sh's layout
WP_SCRIPT=/usr/share/sockhook/wireplumber/sockhook-access.lua
rules_remove() {
    rm -f "$WP_SCRIPT" "$WP_CONF"
    rmdir /usr/share/sockhook/wireplumber /usr/share/sockhook /etc/wireplumber/wireplumber.conf.d \
        /etc/wireplumber 2>/dev/null || true
}
# The holder where install.sh puts it (the hook is a copy in qemu.d, beside which it may not be).
e2e_install_holder sockhook-context-holder
if [[ $E2E_INSTALLED != 1 ]]; then
    on_exit rules_remove
    install -D -m 644 "$REPO/dist/wireplumber/sockhook-access.lua" "$WP_SCRIPT"
    install -D -m 644 "$REPO/dist/wireplumber/sockhook.conf" "$WP_CONF"
fi
# WirePlumber reads the rules when it starts.
"$DESKTOP" stop pipewire >/dev/null 2>&1 || true
"$DESKTOP" start pipewire >/dev/null

QEMU_GID=$(id -g libvirt-qemu)
py=/usr/bin/python3
# A 3 s tone, readable by QEMU's user.
"$py" - "$TMP/tone.wav" <<'EOF'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<hh", v, v) for v in
                  (int(16383 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(3 * 48000))))
EOF
chmod 755 "$TMP"
chmod 644 "$TMP/tone.wav"
install -d -m 700 -o libvirt-qemu "$TMP/qemu-rt"

# ---------------------------------------------------------------- what the owner sees
# owner_graph : the owner's pw-dump, reduced to what the checks need, one JSON object a line:
# {"type": "Client"|"Node"|"Link", "id", "client", "props"} (client: the owner Node's client).
owner_graph() {
    "$DESKTOP" as-user pw-dump 2>/dev/null | "$py" -c '
import json, sys
data = sys.stdin.read()
for o in (json.loads(data) if data.strip() else []):
    t = o.get("type", "").split(":")[-1]
    if t not in ("Client", "Node", "Link"):
        continue
    info = o.get("info") or {}
    p = info.get("props") or {}
    out = {"type": t, "id": o.get("id"), "props": p}
    if t == "Link":
        out["out"] = info.get("output-node-id"); out["in"] = info.get("input-node-id")
    print(json.dumps(out, sort_keys=True))
'
}
# context_clients DOMAIN : the Client objects that carry sockhook's context labels for DOMAIN,
# as "id pid app" lines.
context_clients() {
    owner_graph | "$py" -c '
import json, sys
for l in sys.stdin:
    o = json.loads(l); p = o["props"]
    if o["type"] == "Client" and p.get("pipewire.sec.engine") == "org.sockhook" \
            and p.get("pipewire.sockhook.domain") == sys.argv[1]:
        print(o["id"], p.get("pipewire.sec.pid"), p.get("application.name", "?"))
' "$1"
}
# qemu_is_context_client DOMAIN UUID PID : the owner sees QEMU (PID) as a client of DOMAIN's
# context, with the context's properties. The client is QEMU's libpipewire (it names PID as its
# process), and its socket peer is QEMU itself, or, where the context sits behind the proxy
# (no LSM keeps VMs apart: S10), the domain's proxy that status names.
qemu_is_context_client() {
    owner_graph | "$py" -c '
import json, sys
dom, uuid, pid, served = sys.argv[1:]
for l in sys.stdin:
    o = json.loads(l); p = o["props"]
    if o["type"] == "Client" and str(p.get("application.process.id")) == pid \
            and str(p.get("pipewire.sec.pid")) in (pid, served):
        sys.exit(0 if p.get("pipewire.sec.engine") == "org.sockhook"
                 and p.get("pipewire.sockhook.domain") == dom
                 and p.get("pipewire.sockhook.uuid") == uuid
                 and p.get("pipewire.access") == "sockhook" else 1)
sys.exit(1)' "$1" "$2" "$3" "$(served_by "$2")"
}
# streams_of PID : QEMU's stream nodes and what each is linked to, one line each:
# "<media.class> <node.name> linked-to:<names of the nodes it is linked with>".
streams_of() {
    owner_graph | "$py" -c '
import json, sys
pid = sys.argv[1]
objs = [json.loads(l) for l in sys.stdin]
# the clients of QEMU: they name PID as their process, and came through the context of sockhook
clients = {o["id"] for o in objs if o["type"] == "Client"
           and str(o["props"].get("application.process.id")) == pid
           and o["props"].get("pipewire.sec.engine") == "org.sockhook"}
nodes = {o["id"]: o["props"] for o in objs if o["type"] == "Node"}
for nid, p in nodes.items():
    if int(p.get("client.id", -1)) not in clients:
        continue
    peers = sorted({nodes.get(l["in"] if l["out"] == nid else l["out"], {}).get("node.name", "?")
                    for l in objs if l["type"] == "Link" and nid in (l["out"], l["in"])})
    print(p.get("media.class", "?"), p.get("node.name", "?"), "linked-to:" + ",".join(peers))
' "$1"
}
plays_to_sink() { streams_of "$1" | grep -q '^Stream/Output/Audio .*linked-to:.*sockhook-null-sink'; }
# capture_unlinked PID : QEMU has a capture stream, and it is linked to nothing.
capture_unlinked() {
    local s; s=$(streams_of "$1" | grep '^Stream/Input/Audio') || return 1
    ! grep -q -v 'linked-to:$' <<<"$s"
}

# as_qemu_in DOMAIN UUID CMD... : CMD as QEMU's user, in QEMU's mount namespace and cgroup,
# reaching PipeWire only through the domain's lend.
as_qemu_in() {
    local d=$1 u=$2
    shift 2
    in_qemu_ns "$d" setpriv --reuid="$QEMU_UID" --regid="$QEMU_GID" --clear-groups \
        env -i PATH=/usr/bin:/bin HOME=/nonexistent XDG_RUNTIME_DIR="$TMP/qemu-rt" \
        PIPEWIRE_RUNTIME_DIR="/run/sockhook/libvirt-$u" "$@"
}
# new_client_plays DOMAIN UUID : a new client as QEMU's user plays the 3 s tone through the lend
# to its end.
new_client_plays() {
    local rc=0
    as_qemu_in "$1" "$2" timeout 20 pw-play "$TMP/tone.wav" >"$TMP/play.out" 2>&1 || rc=$?
    ((rc == 0)) || sed 's/^/#   pw-play: /' "$TMP/play.out" | head -3
    return "$rc"
}
# holder_of UUID : the context's holder; served_by UUID : the process QEMU connects to (the
# proxy in front of the context, or the holder where the context socket is the lend).
holder_of() { status_pid "$1" holder_pid; }
served_by() { status_pid "$1" proxy_pid; }
# status_is UUID HEALTH : `sockhook status` lists UUID's lends, each with HEALTH.
status_is() {
    "$SOCKHOOK" status --json | "$py" -c '
import json, sys
lends = [l for l in json.load(sys.stdin) if l["uuid"] == sys.argv[1]]
sys.exit(0 if lends and all(l["health"] == sys.argv[2] for l in lends) else 1)' "$1" "$2"
}
alive() { [[ -n $1 && $1 != 0 ]] && kill -0 "$1" 2>/dev/null; }
# rebase_before PREFIX : in the reference snapshot, the lines of the paths that start with
# PREFIX as they are now (files someone else made anew); every other line stays the reference's.
rebase_before() {
    host_snapshot >"$TMP/now"
    "$py" - "$BEFORE" "$TMP/now" "$1" <<'PY'
import sys
before, now, prefix = sys.argv[1:]
key = lambda l: l.split(' ', 1)[0]
fresh = {key(l): l for l in open(now) if key(l).startswith(prefix)}
lines = [fresh.get(key(l), l) for l in open(before)]
open(before, 'w').writelines(lines)
PY
}
# holder_ok UUID PID : status says ok and PID, the holder, runs as the owner.
holder_ok() { status_is "$1" ok && [[ $(ps -o user= -p "${2:-0}" | tr -d ' ') == "$SH_USER" ]]; }
# new_holder UUID OLD : the holder status names is alive and is not OLD.
new_holder() { local h; h=$(holder_of "$1"); [[ $h != "$2" ]] && alive "$h"; }

# ---------------------------------------------------------------- pipewire, method context
W=${E2E_PREFIX}pwctx
# ac97 opens its voices at reset, so QEMU makes its playback and capture streams without a
# guest OS (ich9's codec waits for a guest driver).
define_domain "$W" UW "s|<sound model='ich9'/>|<sound model='ac97'/>|"
annotate_ok "$W" --plugin pipewire --owner "$SH_USER" --method context
check "annotate makes the audio backend pipewire with libvirt's runtimeDir" \
    grep -q "<audio id='1' type='pipewire' runtimeDir='/run/sockhook/libvirt-$UW'/>" <<<"$XML"
plan=$("$SOCKHOOK" plan --domain "$W" 2>&1 || true)
show "$(grep -E 'context|holder|sees|source' <<<"$plan" | head -n 8)"
check "plan shows the holder with sockhook's engine" grep -q "pipewire.sec.engine=org.sockhook" <<<"$plan"

host_snapshot >"$BEFORE"
say "start: QEMU becomes a PipeWire client through the context"
if started "$W"; then
    QP=$(qemu_pid "$W")
    check "the owner's pw-dump shows QEMU (pid $QP) as a client with the context's properties (engine org.sockhook, domain $W, uuid $UW)" \
        wait_until "$E2E_TIMEOUT" qemu_is_context_client "$W" "$UW" "$QP"
    show "$(context_clients "$W")"
    check "QEMU's playback stream is linked to the owner's sink" wait_until "$E2E_TIMEOUT" plays_to_sink "$QP"
    show "$(streams_of "$QP")"
    check "QEMU's capture stream is linked to nothing" capture_unlinked "$QP"
    lent_in_ns "$W" "$UW" pipewire-0 "pipewire-0 is inside QEMU's mount namespace"
    HP=$(holder_of "$UW")
    check "status says ok, with the holder's pid ($HP), running as $SH_USER" holder_ok "$UW" "$HP"
    check "a new client as QEMU's user in QEMU's namespace plays through the lend" new_client_plays "$W" "$UW"

    say "libvirtd restarts while the VM runs (reconnect)"
    "$LIBVIRT" restart >/dev/null
    check "libvirtd restart: the domain still runs" is_running "$W"
    check "libvirtd restart: the same holder runs" test "$(holder_of "$UW")" = "$HP"
    check "libvirtd restart: status says ok" status_is "$UW" ok
    check "libvirtd restart: QEMU is still a client of the context" qemu_is_context_client "$W" "$UW" "$QP"
    check "libvirtd restart: a new client through the lend plays" new_client_plays "$W" "$UW"

    say "the holder is killed: PipeWire drops QEMU; refresh starts a new holder"
    kill -KILL "${HP:-0}" 2>/dev/null || true
    check "killed holder: PipeWire dropped QEMU's client" \
        wait_until 10 not qemu_is_context_client "$W" "$UW" "$QP"
    st=$("$SOCKHOOK" status 2>&1 || true)
    show "$(grep -A3 'pipewire' <<<"$st")"
    check "killed holder: status says so" grep -q "the context's holder is not running" <<<"$st"
    out=$("$SOCKHOOK" refresh "$W" 2>&1) || true
    show "refresh: $out"
    HP2=$(holder_of "$UW")
    check "refresh: a new holder runs (pid ${HP2:-none})" new_holder "$UW" "$HP"
    check "refresh: status says ok" status_is "$UW" ok
    lent_in_ns "$W" "$UW" pipewire-0 "refresh: the new lend socket is inside QEMU's mount namespace"
    check "refresh: a new client as QEMU's user in QEMU's namespace plays through the lend" \
        new_client_plays "$W" "$UW"

    say "the holder is killed again; libvirtd restarts (reconnect)"
    kill -KILL "${HP2:-0}" 2>/dev/null || true
    wait_until 5 not alive "$HP2" || true
    "$LIBVIRT" restart >/dev/null
    # The reconnect hook runs from a libvirt thread that may not have begun when virsh answers.
    wait_until 30 new_holder "$UW" "$HP2" || true
    HP3=$(holder_of "$UW")
    check "reconnect: a new holder runs (pid ${HP3:-none})" new_holder "$UW" "$HP2"
    check "reconnect: status says ok" status_is "$UW" ok
    check "reconnect: a new client through the lend plays" new_client_plays "$W" "$UW"

    say "the owner's PipeWire restarts while the VM runs"
    HP4=$(holder_of "$UW")
    "$DESKTOP" stop pipewire >/dev/null 2>&1 || true
    "$DESKTOP" start pipewire >/dev/null
    # The new server's sockets are new inodes, not sockhook's doing: the reference takes them.
    rebase_before "$SH_RUNTIME/pipewire-"
    check "server restart: the domain still runs" is_running "$W"
    check "server restart: status no longer calls the lend ok (the old server served it)" \
        wait_until 10 not status_is "$UW" ok
    show "$("$SOCKHOOK" status 2>&1 | grep -A2 "$W" | tail -n 1)"
    out=$("$SOCKHOOK" refresh "$W" 2>&1) || true
    show "refresh: $out"
    check "server restart: after refresh a new holder runs" new_holder "$UW" "$HP4"
    check "server restart: after refresh status says ok" status_is "$UW" ok
    check "server restart: after refresh a new client through the lend plays to the new server" \
        new_client_plays "$W" "$UW"
    stop "$W"
fi
check "virsh destroy leaves the host byte-identical (holder, socket, lend directory gone)" \
    same_as_before "$BEFORE"
no_context_client() { [[ -z $(context_clients "$1") ]]; }
check "no client of the context is left" wait_until 10 no_context_client "$W"

# ---------------------------------------------------------------- jack, method context
J=${E2E_PREFIX}jackctx
define_domain "$J" UJ "s|<sound model='ich9'/>|<sound model='ac97'/>|"
annotate_ok "$J" --plugin jack --owner "$SH_USER" --method context
host_snapshot >"$BEFORE"
say "jack through a context: a JACK client as QEMU's user plays, and records nothing"
# libvirt appends to the domain's log on every start: only what this start adds counts.
qemu_log=/var/log/libvirt/qemu/$J.log
log_start=$(stat -c %s "$qemu_log" 2>/dev/null || echo 0)
if started "$J"; then
    QJ=$(qemu_pid "$J")
    # QEMU asks PipeWire's libjack for the rate right after jack_client_open, before
    # jack_activate; libjack knows it then only from its node's transport. A client that sees
    # no object libjack binds during the open (no port, no metadata) syncs only once and gets
    # the transport a round trip after jack_client_open has returned: QEMU configured -1 Hz
    # and dropped its clients, until the rules let such a client read the settings metadata.
    # Every rate QEMU configured must be the owner's server's.
    server_rate=$("$DESKTOP" as-user pw-metadata -n settings 0 clock.rate 2>/dev/null |
        sed -n "s/.*key:'clock.rate' value:'\([0-9]*\)'.*/\1/p" | head -n1)
    qemu_rates() {
        tail -c +$((log_start + 1)) "$qemu_log" 2>/dev/null | grep -o 'JACK [a-z]* configured for -\?[0-9]*Hz'
    }
    rates_are_servers() {
        local r
        r=$(qemu_rates) || return 1
        [[ -n ${server_rate:-} ]] && ! grep -v -q " for ${server_rate}Hz$" <<<"$r"
    }
    wait_until "$E2E_TIMEOUT" qemu_rates >/dev/null || true
    show "$(qemu_rates | sort | uniq -c | tr '\n' ';'), the owner's server runs at ${server_rate:-?} Hz"
    check "QEMU's JACK backend is configured for the owner's server's rate (${server_rate:-?} Hz)" \
        rates_are_servers
    check "QEMU's JACK client is a client of the context, with its properties" \
        wait_until "$E2E_TIMEOUT" qemu_is_context_client "$J" "$UJ" "$QJ"
    check "status says ok" status_is "$UJ" ok
    jack_env=(LD_LIBRARY_PATH="$(dirname "$(compgen -G '/usr/lib/*/pipewire-0.3/jack/libjack.so.0' | head -n1)")")
    owner_jack() { "$DESKTOP" as-user env "${jack_env[@]}" "$@"; }
    # The ports by their JACK names, as the owner sees them (PipeWire's libjack names a node's
    # ports after its description).
    owner_ports=$(owner_jack timeout 10 jack_lsp 2>/dev/null || true)
    sink_port=$(grep -m1 -i 'null sink:playback_FL$' <<<"$owner_ports" || true)
    source_port=$(grep -m1 -i 'null source:capture_FL$' <<<"$owner_ports" || true)
    say "the owner's JACK ports: sink '$sink_port', source '$source_port'"
    # A JACK client plays into its own output port and leaves the connecting to a patchbay:
    # jack_metro as QEMU's user, connected by the owner (a client of the context may not link,
    # and sees no port to link to).
    { as_qemu_in "$J" "$UJ" env "${jack_env[@]}" timeout -s INT -k 5 12 jack_metro -n vmmetro -b 120 \
        >"$TMP/metro.out" 2>&1 || true; } &
    metro=$!
    metro_port() { owner_jack timeout 5 jack_lsp 2>/dev/null | grep -m1 '^vmmetro:'; }
    wait_until 10 metro_port || true
    mport=$(metro_port || true)
    # Each JACK client is a PipeWire client of its own, and a client of the context sees no
    # other client's objects and no port of the owner's (the rules grant the sink node, not
    # its ports): jack_lsp connects and lists nothing, where the owner's lists them all.
    vm_rc=0
    vm_ports=$(as_qemu_in "$J" "$UJ" env "${jack_env[@]}" timeout 10 jack_lsp 2>&1) || vm_rc=$?
    show "jack_lsp as QEMU's user: exit $vm_rc, ${vm_ports:-no port listed}"
    check "jack_lsp as QEMU's user connects through the context" test "$vm_rc" -eq 0
    check "... and lists no port: not the owner's source, nor the metronome of another client" \
        test -z "$vm_ports"
    check "the owner's jack_lsp lists the source and the VM's metronome" \
        bash -c 'grep -q -i "null source:capture" <<<"$1" && grep -q "^vmmetro:" <<<"$1"' _ \
        "$(owner_jack timeout 10 jack_lsp 2>/dev/null)"
    owner_jack timeout 10 jack_connect "${mport:-vmmetro:none}" "${sink_port:-none}" >"$TMP/connect.out" 2>&1 || true
    metro_plays() {
        owner_graph | "$py" -c '
import json, sys
objs = [json.loads(l) for l in sys.stdin]
nodes = {o["id"]: o["props"] for o in objs if o["type"] == "Node"}
clients = {o["id"] for o in objs if o["type"] == "Client" and o["props"].get("pipewire.sec.engine") == "org.sockhook" and o["props"].get("pipewire.sockhook.domain") == sys.argv[1]}
mine = {i for i, p in nodes.items() if int(p.get("client.id", -1)) in clients and p.get("node.name", "") == "vmmetro"}
sys.exit(0 if any(l["type"] == "Link" and l["out"] in mine and nodes.get(l["in"], {}).get("node.name") == "sockhook-null-sink" for l in objs) else 1)' "$J"
    }
    check "jack_metro's output port ($mport), made as QEMU's user through the context, is linked into the owner's sink" \
        wait_until 10 metro_plays
    show "$(cat "$TMP/metro.out" "$TMP/connect.out" | head -n 5)"
    wait "$metro" 2>/dev/null || true  # its timeout ends it
    frames_of() {
        "$py" -c '
import sys, wave
try:
    with wave.open(sys.argv[1]) as w: print(w.getnframes())
except Exception: print(0)' "$1"
    }
    install -d -m 700 -o libvirt-qemu "$TMP/jrec"
    as_qemu_in "$J" "$UJ" env "${jack_env[@]}" timeout -s INT -k 5 10 jack_rec -f "$TMP/jrec/rec.wav" -d 2 \
        "${source_port:-none}" >"$TMP/jrec.out" 2>&1 || true
    show "$(head -n 3 "$TMP/jrec.out")"
    n=$(frames_of "$TMP/jrec/rec.wav")
    check "jack_rec as QEMU's user of the owner's source port through the context records 0 frames (got $n; it sees no port)" test "$n" -eq 0
    # The check can fail: the owner records the same port.
    install -d -m 700 -o "$SH_USER" "$TMP/orec"
    owner_jack timeout -s INT -k 5 10 jack_rec -f "$TMP/orec/rec.wav" -d 2 "${source_port:-none}" >"$TMP/orec.out" 2>&1 || true
    n=$(frames_of "$TMP/orec/rec.wav")
    ((n > 0)) || show "$(head -n 3 "$TMP/orec.out")"
    check "the owner's jack_rec of the same port records frames (got $n)" test "$n" -gt 0
    stop "$J"
fi
check "jack: virsh destroy leaves the host byte-identical" same_as_before "$BEFORE"

finish
