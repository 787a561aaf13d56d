#!/usr/bin/env bash
# lend_context.sh - method context (issue 19): the VM reaches the owner's real PipeWire only
# through a security context that sockhook creates for it, restricted by the WirePlumber rules
# of dist/wireplumber.
#
#   bash tests/root/lend_context.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# The owner is the desktop user (tests/env/desktop.sh: real PipeWire and WirePlumber with a
# null sink and a null source). The hook runs by hand (prepare, release) with its own
# configuration; QEMU's stand-in is QEMU's user with PIPEWIRE_RUNTIME_DIR at the lend
# directory, running PipeWire's own tools (pw-play, pw-record, pw-dump) through the lend:
# - it plays, and the owner's pw-dump shows its client with the context's properties;
# - recording from the default source, from a named source and from the sink's monitor gives
#   0 samples, while the owner plays into that sink; the source and the owner's own stream
#   are not in what it sees;
# - with capture="yes" the recording works and the source is visible;
# - release stops the holder, PipeWire drops the VM's client, the host is byte-identical;
# - without the rules the lend fails closed: nothing plays.
# Where no LSM keeps VMs apart (as in this root) the context sits behind the proxy (S10, "the
# walls compose"): plan says so; the context socket is the owner's, 0600, and QEMU's user
# cannot connect to it; QEMU's uid in another VM's cgroup, or in none, is refused by the
# proxy; PipeWire's client is the proxy, still with the context's properties; a dead holder
# and a dead proxy are each reported by status, and reconnect starts them again.
# PipeWire before 1.2 (Debian 12 has 0.3.65) has no security context: the suite skips.
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }  # before the library: nothing to clean up yet
command -v pipewire >/dev/null || skip "PipeWire is not installed"
pwv=$(pipewire --version 2>/dev/null | sed -n 's/.*libpipewire \([0-9][0-9.]*\).*/\1/p' | head -n1)
IFS=. read -r pw_major pw_minor _ <<<"${pwv:-0.0.0}"
((pw_major > 1 || (pw_major == 1 && pw_minor >= 2))) ||
    skip "PipeWire ${pwv:-?} has no security context (method context needs PipeWire >= 1.2)"
[[ -x $(dirname "$(readlink -f "${1:-/nonexistent}")")/sockhook-context-holder ]] ||
    skip "no sockhook-context-holder beside ${1:-?}: built without libpipewire >= 1.2"
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools pw-play pw-record pw-dump wireplumber
say "$(pipewire --version | grep -o 'libpipewire [0-9.]*'), $(wireplumber --version | grep -o 'libwireplumber [0-9.]*')"

WP_SCRIPT=/usr/share/sockhook/wireplumber/sockhook-access.lua
WP_CONF=/etc/wireplumber/wireplumber.conf.d/sockhook.conf
# rules_install / rules_remove : the files install.sh puts in place (unless already there).
rules_install() {
    # LEND_CONTEXT_RULES: another script in place of sockhook's (to show the checks failing).
    install -D -m 644 "${LEND_CONTEXT_RULES:-$REPO/dist/wireplumber/sockhook-access.lua}" "$WP_SCRIPT"
    install -D -m 644 "$REPO/dist/wireplumber/sockhook.conf" "$WP_CONF"
}
rules_remove() {
    [[ -n ${SOCKHOOK_TEST_INSTALLED:-} ]] && return 0
    rm -f "$WP_SCRIPT" "$WP_CONF"
    rmdir /usr/share/sockhook/wireplumber /usr/share/sockhook /etc/wireplumber/wireplumber.conf.d \
        /etc/wireplumber 2>/dev/null || true
}
[[ -n ${SOCKHOOK_TEST_INSTALLED:-} ]] || { [[ -e $WP_CONF ]] && skip "$WP_CONF exists (an installed sockhook?)"; }
# (Re)starts the owner's PipeWire, so that WirePlumber reads the rules (or their absence).
restart_pipewire() { "$DESKTOP" stop pipewire >/dev/null 2>&1 || true; "$DESKTOP" start pipewire >/dev/null; }

on_exit rules_remove
[[ -n ${SOCKHOOK_TEST_INSTALLED:-} ]] || rules_install
desktop_up
restart_pipewire
warm_run_sockhook
QEMU_GID=$(getent group libvirt-qemu | cut -d: -f3 || true)
QEMU_GID=${QEMU_GID:-$(id -g libvirt-qemu)}

etc=$TMP/etc
install -d -m 755 "$etc" "$etc/plugins"
install -m 644 "$REPO"/plugins/*.xml "$etc/plugins/"
U=4f1f2f3f-0000-4000-8000-00000000c0de
L=/run/sockhook/libvirt-$U
printf '[%s]\n%s = *\n' "$U" "$SH_USER" >"$etc/policy.conf"
chmod 644 "$etc/policy.conf"
cleanup_lend() {
    [[ -e /run/sockhook/state/$U.xml ]] && printf '<domain><name>ctx</name><uuid>%s</uuid></domain>' "$U" |
        "$SOCKHOOK" hook --config-dir "$etc" ctx release end - 2>/dev/null
    rm -rf "$L" "/run/sockhook/state/$U".*
    pkill -u "$QEMU_UID" -x pw-play 2>/dev/null
    pkill -u "$QEMU_UID" -x pw-record 2>/dev/null
    return 0
}
on_exit cleanup_lend

# domain_xml CAPTURE : the domain's XML, one pipewire socket lent with method context.
domain_xml() {
    printf "<domain type='kvm' id='77'><name>ctx</name><uuid>%s</uuid><metadata>" "$U"
    printf "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>"
    printf "<sockhook:socket plugin='pipewire' owner='%s' method='context' capture='%s'/>" "$SH_USER" "$1"
    printf "</sockhook:sockets></metadata></domain>"
}
hook() { printf '%s' "$4" | "$SOCKHOOK" hook --config-dir "$etc" "$1" "$2" "$3" - 2>"$TMP/hook.err"; }
prepare() { hook ctx prepare begin "$(domain_xml "$1")"; }
release() { hook ctx release end "$(domain_xml no)"; }

# as_qemu CMD... : CMD as QEMU's user in the domain's cgroup (id 77, as libvirt would place
# it), reaching PipeWire only through the lend. as_qemu_in ID CMD... : the same in the cgroup
# of domain ID (another VM's QEMU), or in none for ID "none".
as_qemu() { as_qemu_in 77 "$@"; }
as_qemu_in() {
    local id=$1
    shift
    local run=(setpriv --reuid="$QEMU_UID" --regid="$QEMU_GID" --init-groups
        env -i PATH=/usr/bin:/bin HOME=/nonexistent XDG_RUNTIME_DIR="$TMP/qemu-rt"
        PIPEWIRE_RUNTIME_DIR="$L" "$@")
    if [[ $id == none ]]; then "${run[@]}"; else in_domain_cgroup "$id" "${run[@]}"; fi
}
install -d -m 700 -o "$QEMU_UID" "$TMP/qemu-rt" "$TMP/qemu-rec"
install -d -m 700 -o "$SH_USER" "$TMP/owner-rec"

# A 2 s tone (0.5 amplitude, 440 Hz) and a 60 s one, for playing and for being recorded.
make_tone() {
    "$py" - "$1" "$2" <<'EOF'
import math, struct, sys, wave
path, secs = sys.argv[1], float(sys.argv[2])
with wave.open(path, "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    frame = [struct.pack("<hh", v, v) for v in
             (int(16383 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(48000))]
    one = b"".join(frame)
    w.writeframes(one * int(secs) + one[: int((secs % 1) * 48000) * 4])
EOF
    chmod 644 "$1"
}
py=/usr/bin/python3
make_tone "$TMP/tone.wav" 2
make_tone "$TMP/long.wav" 60

# frames FILE : the number of sample frames in a WAV that pw-record wrote (0 if none or no file).
frames() {
    "$py" - "$1" <<'EOF'
import sys, wave
try:
    with wave.open(sys.argv[1]) as w:
        print(w.getnframes())
except Exception:
    print(0)
EOF
}
# record_as_qemu NAME [pw-record options] : records 3 s through the lend; prints the frames.
record_as_qemu() {
    local out=$TMP/qemu-rec/$1.wav
    shift
    rm -f "$out"
    as_qemu timeout -s INT -k 5 3 pw-record "$@" "$out" >/dev/null 2>&1 || true
    frames "$out"
}
# qemu_sees : what pw-dump lists through the lend (type and name of each object).
qemu_sees() {
    as_qemu timeout 10 pw-dump 2>/dev/null |
        "$py" -c '
import json, sys
data = sys.stdin.read()
for o in (json.loads(data) if data.strip() else []):
    p = (o.get("info") or {}).get("props") or {}
    print(o.get("type", "").split(":")[-1], p.get("node.name") or p.get("media.name") or p.get("application.name") or p.get("factory.name") or "")
'
}
owner_clients() { "$DESKTOP" as-user pw-dump 2>/dev/null; }
# context_client_props : the owner's view of the VM's client: its properties as JSON lines.
context_client_props() {
    owner_clients | "$py" -c '
import json, sys
data = sys.stdin.read()
for o in (json.loads(data) if data.strip() else []):
    p = (o.get("info") or {}).get("props") or {}
    if o.get("type", "").endswith(":Client") and p.get("pipewire.sec.engine") == "org.sockhook":
        print(json.dumps({k: v for k, v in p.items() if k.startswith("pipewire.")}, sort_keys=True))
'
}
holder_pid() { context_holder_pid "$SH_UID" sockhook-contex; }
# proxy_pid : the proxy in front of the context (it serves only domain 77's QEMU).
proxy_pid() { context_proxy_pid "$SH_UID" 77; }

SNAP_UIDS=("$SH_UID")  # QEMU's stand-ins come and go; the owner's processes must not change
host_snapshot >"$TMP/before"
syslog_listen  # before the proxy starts: its refusals go to syslog

say "plan: method context, what the VM will see"
domain_xml no >"$TMP/ctx.xml"
plan=$("$SOCKHOOK" plan "$TMP/ctx.xml" --plugin-dir "$etc/plugins" --policy "$etc/policy.conf" 2>&1 || true)
show "$(grep -E 'method|context|revocable|start a holder' <<<"$plan")"
check "plan shows the holder step with sockhook's engine" grep -q "pipewire.sec.engine=org.sockhook" <<<"$plan"
check "plan says what the VM sees without capture" grep -q "no source, no monitor" <<<"$plan"
check "plan says the context sits behind the proxy, since nothing here keeps VMs apart" \
    grep -q "context behind the proxy: .*so the context socket is the owner's and only a proxy that serves only this VM's QEMU reaches it" <<<"$plan"
check "plan shows the proxy step, connecting to the context socket through a descriptor" \
    grep -qF "connects to the context socket $L/pipewire-0.context through a descriptor the hook hands it (fd 4)" <<<"$plan"

say "prepare: the hook binds the lend and starts the holder as $SH_USER"
rc=0; prepare no || rc=$?
check_context_lend pipewire "$SH_USER" "$SH_UID" "$QEMU_UID" 77 as_qemu

say "the VM plays through the lend"
rc=0; as_qemu timeout 20 pw-play "$TMP/tone.wav" >"$TMP/play.out" 2>&1 || rc=$?
check "pw-play as QEMU's user plays a 2 s tone to the end (exit $rc)" test "$rc" -eq 0
show "$(grep -i -E 'sockhook' "$SH_STATE/wireplumber.log" 2>/dev/null | tail -n 8)"
# What a WirePlumber loads, when the VM could not play: a second instance's debug log, briefly.
((rc == 0)) || show "$("$DESKTOP" as-user env WIREPLUMBER_DEBUG=4 timeout 4 wireplumber 2>&1 |
    grep -i -E 'sockhook|fragment|conf.d' | head -n 15)"
as_qemu pw-play "$TMP/long.wav" >/dev/null 2>&1 &
vm_play=$!
check "the owner's pw-dump shows the VM's client with the context's properties" \
    wait_until 10 bash -c "$(declare -f context_client_props owner_clients); DESKTOP=$DESKTOP py=$py; context_client_props | grep -q '\"pipewire.sockhook.uuid\": \"$U\"'"
props=$(context_client_props | head -n1)
show "$props"
# Behind the proxy PipeWire's client is the proxy (the owner's uid, the proxy's pid); the
# context's properties are what restrict it.
check "... access 'sockhook', domain ctx, and the proxy as its peer" \
    bash -c "grep -q '\"pipewire.access\": \"sockhook\"' <<<\"\$1\" && grep -q '\"pipewire.sockhook.domain\": \"ctx\"' <<<\"\$1\" && grep -q '\"pipewire.sec.pid\": ${PP:-x}' <<<\"\$1\"" _ "$props"

say "another VM's QEMU, and QEMU's uid in no VM, through this VM's lend"
# A process must be placeable in domain 78's cgroup, or pw-play's failure would say nothing.
in_domain_cgroup 78 true || die "cannot place a process in domain 78's cgroup"
cgroup_root=$(cgroup2_root)
for who in 78 none; do
    if [[ $who == none ]]; then
        where="no VM's cgroup" cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
    else
        where="domain $who's cgroup" cg=$(domain_cgroup "$who") cg=${cg#"$cgroup_root"}
    fi
    rc=0; as_qemu_in "$who" timeout 10 pw-play "$TMP/tone.wav" >"$TMP/other.out" 2>&1 || rc=$?
    # 99: in_domain_cgroup could not place it, so the proxy never saw it.
    check "QEMU's uid in $where is refused by the proxy: pw-play fails (exit $rc: $(tr '\n' ' ' <"$TMP/other.out" | head -c 120))" \
        test "$rc" -ne 0 -a "$rc" -ne 99
    check "... and the proxy logs the refusal once, naming QEMU's uid and that cgroup ($cg)" \
        logged_once "uid $QEMU_UID cgroup $cg: not in this VM's cgroup"
done

say "what the VM sees, while the owner plays into the sink"
"$DESKTOP" as-user pw-play --media-name=owner-private-stream "$TMP/long.wav" >/dev/null 2>&1 &
owner_play=$!
wait_until 10 bash -c "'$DESKTOP' as-user pw-dump 2>/dev/null | grep -q owner-private-stream" || true
sees=$(qemu_sees)
show "$sees"
check "the VM sees the sink" grep -q "Node sockhook-null-sink" <<<"$sees"
check "the VM does not see the source" bash -c "! grep -q sockhook-null-source <<<\"\$1\"" _ "$sees"
check "the VM does not see the owner's stream" bash -c "! grep -q owner-private-stream <<<\"\$1\"" _ "$sees"
check "the VM sees no other client than itself" \
    test "$(grep -c '^Client' <<<"$sees")" -le 1
n=$(record_as_qemu default)
check "recording the default source through the lend gives 0 samples (got $n)" test "$n" -eq 0
n=$(record_as_qemu source --target sockhook-null-source)
check "recording the named source gives 0 samples (got $n)" test "$n" -eq 0
n=$(record_as_qemu monitor -P stream.capture.sink=true --target sockhook-null-sink)
check "recording the sink's monitor (the owner's audio) gives 0 samples (got $n)" test "$n" -eq 0
# The check can fail: the owner records the same monitor and gets samples.
"$DESKTOP" as-user timeout -s INT -k 5 3 pw-record -P stream.capture.sink=true --target sockhook-null-sink "$TMP/owner-rec/monitor.wav" >/dev/null 2>&1 || true
n=$(frames "$TMP/owner-rec/monitor.wav")
check "the owner, recording the same monitor, gets samples (got $n)" test "$n" -gt 0

say "release: the holder stops and PipeWire drops the VM's client"
rc=0; release || rc=$?
check "release succeeds" test "$rc" -eq 0
check "the holder is gone" wait_until 5 bash -c "! kill -0 ${HP:-0} 2>/dev/null"
check "PipeWire dropped the VM's playing client" wait_until 10 bash -c "! kill -0 $vm_play 2>/dev/null"
wait "$vm_play" 2>/dev/null || true
check "the owner's pw-dump has no sockhook client left" \
    wait_until 10 bash -c "$(declare -f context_client_props owner_clients); DESKTOP=$DESKTOP py=$py; test -z \"\$(context_client_props)\""
kill "$owner_play" 2>/dev/null || true
wait "$owner_play" 2>/dev/null || true
same_host "$TMP/before" "after release"

say "capture='yes': the VM may record"
rc=0; prepare yes || rc=$?
check "prepare with capture='yes' succeeds ($(head -c 300 "$TMP/hook.err"))" test "$rc" -eq 0
sees=$(qemu_sees)
check "the VM sees the source" grep -q "sockhook-null-source" <<<"$sees"
n=$(record_as_qemu capture-default)
check "recording the default source gives samples (got $n)" test "$n" -gt 0
HP=$(holder_pid)
kill -KILL "${HP:-none}" 2>/dev/null || true
wait_until 5 bash -c "! kill -0 ${HP:-0} 2>/dev/null" || true
st=$("$SOCKHOOK" status 2>&1 || true)
check "a dead holder is reported by status" grep -q "the context's holder is not running" <<<"$st"
show "$(grep -A3 'pipewire: context' <<<"$st")"

say "reconnect starts the pair again: the holder, and the proxy whose socket it held"
rc=0; hook ctx reconnect begin "$(domain_xml yes)" || rc=$?
check "reconnect succeeds ($(head -c 300 "$TMP/hook.err"))" test "$rc" -eq 0
NHP=$(holder_pid); NPP=$(proxy_pid)
check "a new holder ($NHP) and a new proxy ($NPP) run" \
    test -n "$NHP" -a -n "$NPP" -a "$NHP" != "$HP" -a "$NPP" != "$PP"
n=$(record_as_qemu after-reconnect)
check "the VM records through the lend again (got $n)" test "$n" -gt 0
PP=$NPP
kill -KILL "${PP:-none}" 2>/dev/null || true
wait_until 5 bash -c "! kill -0 ${PP:-0} 2>/dev/null" || true
st=$("$SOCKHOOK" status 2>&1 || true)
check "a dead proxy in front of a live holder is reported by status" \
    bash -c 'grep -q "the proxy is not running" <<<"$1" && ! grep -q "holder is not running" <<<"$1"' _ "$st"
rc=0; hook ctx reconnect begin "$(domain_xml yes)" || rc=$?
RPP=$(proxy_pid)
check "reconnect starts the proxy alone (the holder $NHP stays; a new proxy ${RPP:-none}, not $PP)" \
    test "$rc" -eq 0 -a -n "$NHP" -a "$(holder_pid)" = "$NHP" -a -n "$RPP" -a "$RPP" != "$PP"
n=$(record_as_qemu after-proxy-reconnect)
check "the VM records through the lend again (got $n)" test "$n" -gt 0
KHP=$(holder_pid) KPP=$(proxy_pid)
kill -KILL "${KHP:-none}" "${KPP:-none}" 2>/dev/null || true
check "the killed holder (${KHP:-none}) and proxy (${KPP:-none}) are gone" \
    wait_until 10 bash -c "test -n '$KHP' -a -n '$KPP' && ! kill -0 ${KHP:-0} 2>/dev/null && ! kill -0 ${KPP:-0} 2>/dev/null"
st=$("$SOCKHOOK" status 2>&1 || true)
check "both dead: status reports each" \
    bash -c 'grep -q "the context.s holder is not running.*; the proxy is not running" <<<"$1"' _ "$st"
show "$(grep -A3 'pipewire: context' <<<"$st")"
rc=0; release || rc=$?
check "release after the holder died succeeds" test "$rc" -eq 0
same_host "$TMP/before" "after the capture lend's release"

say "without sockhook's rules the lend fails closed"
rm -f "$WP_CONF"
restart_pipewire
# The restart made the owner's PipeWire sockets anew: compare with the host after it.
host_snapshot >"$TMP/before-norules"
rc=0; prepare no || rc=$?
check "prepare succeeds (PipeWire accepts the context)" test "$rc" -eq 0
rc=0; as_qemu timeout 8 pw-play "$TMP/tone.wav" >/dev/null 2>&1 || rc=$?
check "pw-play through the lend does not play (exit $rc: WirePlumber grants nothing)" test "$rc" -ne 0
release || true
pkill -u "$QEMU_UID" -x pw-play 2>/dev/null || true
[[ -n ${SOCKHOOK_TEST_INSTALLED:-} ]] || rules_install
same_host "$TMP/before-norules" "after the last release"

finish
