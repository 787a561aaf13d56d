#!/usr/bin/env bash
# e2e_lifecycle.sh - the days of a desktop VM that are not start and stop (issue 20, item 1),
# under real libvirtd and QEMU, for a bind and a proxy lend of the real PulseAudio:
#   virsh save, then restore     libvirt runs release when the QEMU ends, then restore begin,
#                                prepare begin and start begin for the new QEMU;
#   virsh managedsave, then start   the same, the image in libvirt's own directory;
#   virsh reset (a reboot from inside the guest)   the same QEMU goes on: no hook runs, and
#                                the lends must simply still be there;
#   libvirtd restarts            reconnect; the same lends go on (items 2);
#   the owner's server restarts  a proxy serves the new one; a bind lend is stale until
#                                `sockhook refresh` (item 4);
#   virsh destroy at the end     release; the host byte-identical to before the first start;
#   the owner logs out and in    logind's way: the owner's processes end (the proxy too) and
#                                /run/user/UID is unmounted under the running VM; status says
#                                so; after the login `sockhook refresh` lends again, the
#                                proxy included; release leaves no mount (item 3).
# After each way back the lend must work for the new QEMU (it is a PulseAudio client again,
# and `sockhook status` says ok), and while the VM is saved the host must be as before it
# started: a saved VM holds no lend.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

D=${E2E_PREFIX}life
SAVE=$TMP/$D.save
"$DESKTOP" start pulseaudio >/dev/null
# A reset restarts the guest inside the same QEMU only with on_reboot=restart. A snapshot
# needs a disk: a small qcow2 image where libvirt keeps images (QEMU's user must reach it).
DISK=/var/lib/libvirt/images/$D.qcow2
install -d -m 0711 /var/lib/libvirt/images
qemu-img create -q -f qcow2 "$DISK" 16M
# At exit, before the suite's cleanup undefines the domain: no snapshot may hold it.
drop_disk() { virsh_ snapshot-delete "$D" life1 --metadata >/dev/null 2>&1; rm -f "$DISK"; return 0; }
on_exit drop_disk
define_domain "$D" U "s|<on_reboot>destroy</on_reboot>|<on_reboot>restart</on_reboot>|;s|<devices>|<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$DISK'/><target dev='vda' bus='virtio'/></disk>|"

# Which hook operations libvirt runs on each path: a second hook in qemu.d (libvirt runs
# every one of them with the same arguments) writes them down; it goes at exit.
OPS=$TMP/ops
TRACE=${HOOK%/*}/00-e2e-lifecycle-trace
printf '#!/bin/sh\ncat >/dev/null\necho "$2 $3" >>%s\n' "$OPS" |
    install -m 0755 -o root -g root /dev/stdin "$TRACE"
untrace() { rm -f "$TRACE"; "$LIBVIRT" reload >/dev/null 2>&1 || true; }
on_exit untrace
"$LIBVIRT" reload >/dev/null
: >"$OPS"
# ops : the operations since the last call, on one line ("prepare begin, start begin, ...").
ops() { paste -sd, "$OPS" | sed 's/,/, /g'; : >"$OPS"; }

proxy_pids() { ps -u "$SH_UID" -o pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "sockhook" { print $1 }' | sort; }
# status_is HEALTH : `sockhook status` lists the domain's lends, each with HEALTH.
status_is() {
    "$SOCKHOOK" status --json | python3 -c '
import json, sys
lends = [l for l in json.load(sys.stdin) if l["uuid"] == sys.argv[1]]
sys.exit(0 if lends and all(l["health"] == sys.argv[2] for l in lends) else 1)' "$U" "$1"
}
status_ok() { status_is ok; }
# lent_to_qemu WHEN : the running QEMU is PulseAudio's client through the lend, a new client
# as QEMU's user in QEMU's namespace and cgroup gets through, and status says ok.
lent_to_qemu() {
    check "$1: QEMU is a PulseAudio client again" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    check "$1: a new client as QEMU's user gets through the lend" pulse_as_qemu "$U" in_qemu_ns "$D"
    check "$1: sockhook status says ok" status_ok
}
qemu_of() { qemu_pid "$D" 2>/dev/null || true; }
# same_proxies BEFORE : the proxies that run are BEFORE's, and there is one exactly for a proxy
# lend (none for bind): an empty list on both sides proves nothing for a proxy.
same_proxies() {
    local now; now=$(proxy_pids)
    [[ $now == "$1" ]] || return 1
    if [[ $method == proxy ]]; then [[ $(wc -w <<<"$now") -eq 1 ]]; else [[ -z $now ]]; fi
}
# rebase_before PATH... : in the reference snapshot, the lines of exactly these paths as they
# are now (a file someone else made anew); every other line stays the reference's.
rebase_before() {
    host_snapshot >"$TMP/now"
    python3 - "$BEFORE" "$TMP/now" "$@" <<'PY'
import sys
before, now, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
fresh = {l.split(' ', 1)[0]: l for l in open(now) if l.split(' ', 1)[0] in paths}
lines = [fresh.get(l.split(' ', 1)[0], l) for l in open(before)]
open(before, 'w').writelines(lines)
PY
}

for method in bind proxy; do
    say "method $method"
    annotate "$D" --plugin pulseaudio --owner "$SH_USER" --method "$method" >/dev/null
    host_snapshot >"$BEFORE"
    : >"$OPS"
    started "$D" "($method)" || continue
    say "start ran: $(ops)"
    lent_to_qemu "started"
    first_qemu=$(qemu_of)

    say "$method: virsh save, then restore"
    if virsh_ save "$D" "$SAVE" >"$TMP/virsh.out" 2>&1; then
        ok "virsh save $D"
        ran=$(ops)
        say "save ran: $ran"
        check "save: release ran" grep -q 'release end' <<<"$ran"
        check "while saved the VM holds no lend: the host is as before the start" same_as_before "$BEFORE"
        if virsh_ restore "$SAVE" >"$TMP/virsh.out" 2>&1; then
            ok "virsh restore"
            ran=$(ops)
            say "restore ran: $ran"
            check "restore: prepare and start ran for the new QEMU" \
                grep -q 'prepare begin.*start begin' <<<"$ran"
            check "restore: the domain runs" is_running "$D"
            check "restore: it is a new QEMU" test "$(qemu_of)" != "$first_qemu"
            lent_to_qemu "restore"
        else
            not_ok "virsh restore: $(tr '\n' ' ' <"$TMP/virsh.out")"
        fi
    else
        not_ok "virsh save $D: $(tr '\n' ' ' <"$TMP/virsh.out")"
    fi
    rm -f "$SAVE"

    if is_running "$D"; then
        say "$method: virsh managedsave, then start"
        if virsh_ managedsave "$D" >"$TMP/virsh.out" 2>&1; then
            ok "virsh managedsave $D"
            say "managedsave ran: $(ops)"
            check "while saved the VM holds no lend: the host is as before the start" same_as_before "$BEFORE"
            if started "$D" "from its managed save image"; then
                check "the start resumed the managed save (the image is gone)" \
                    bash -c "! virsh -c qemu:///system managedsave-dumpxml '$D' >/dev/null 2>&1"
                say "the start from the image ran: $(ops)"
                lent_to_qemu "managedsave and start"
            fi
        else
            not_ok "virsh managedsave $D: $(tr '\n' ' ' <"$TMP/virsh.out")"
        fi
    fi

    if is_running "$D"; then
        say "$method: a snapshot of the running VM, then a revert to it"
        if virsh_ snapshot-create-as "$D" life1 >"$TMP/virsh.out" 2>&1; then
            ok "virsh snapshot-create-as $D life1 (with the VM's memory)"
            say "the snapshot ran: $(ops)"
            if virsh_ snapshot-revert "$D" life1 >"$TMP/virsh.out" 2>&1; then
                ok "virsh snapshot-revert $D life1"
                say "the revert ran: $(ops)"
                check "revert: the domain runs" is_running "$D"
                lent_to_qemu "snapshot revert"
            else
                not_ok "virsh snapshot-revert: $(tr '\n' ' ' <"$TMP/virsh.out")"
            fi
            virsh_ snapshot-delete "$D" life1 >/dev/null 2>&1 || true
        else
            not_ok "virsh snapshot-create-as $D: $(tr '\n' ' ' <"$TMP/virsh.out")"
        fi
    fi

    if is_running "$D"; then
        say "$method: virsh reset (the guest reboots; the same QEMU goes on, no hook runs)"
        before_reset=$(qemu_of)
        proxies=$(proxy_pids)
        : >"$OPS"
        if virsh_ reset "$D" >"$TMP/virsh.out" 2>&1; then
            ok "virsh reset $D"
            check "reset: no hook ran" test -z "$(ops)"
            check "reset: the same QEMU runs" test "$(qemu_of)" = "$before_reset"
            check "reset: the same proxy runs (none for bind)" same_proxies "$proxies"
            lent_to_qemu "reset"
        else
            not_ok "virsh reset $D: $(tr '\n' ' ' <"$TMP/virsh.out")"
        fi
    fi

    if is_running "$D"; then
        say "$method: libvirtd restarts while the VM runs (reconnect)"
        proxies=$(proxy_pids)
        : >"$OPS"
        "$LIBVIRT" restart >/dev/null
        # libvirt runs the reconnect hook from a thread of its own, which may not have begun when
        # virsh answers again: wait (bounded) for the trace of it, not for a time.
        wait_until 30 grep -q 'reconnect begin' "$OPS" || true
        ran=$(ops)
        say "the restart ran: $ran"
        check "libvirtd restart: reconnect ran" grep -q 'reconnect begin' <<<"$ran"
        check "libvirtd restart: the domain still runs" is_running "$D"
        check "libvirtd restart: the same proxy runs (none for bind)" same_proxies "$proxies"
        lent_to_qemu "libvirtd restart"
    fi

    if is_running "$D"; then
        say "$method: the owner's PulseAudio restarts while the VM runs"
        "$DESKTOP" stop pulseaudio
        "$DESKTOP" start pulseaudio >/dev/null
        # The new server's files are new inodes, not sockhook's doing: the reference takes them.
        rebase_before "$SH_RUNTIME/pulse/native" "$SH_RUNTIME/.sockhook-pulseaudio.pa"
        if [[ $method == proxy ]]; then
            check "server restart: a new client through the proxy reaches the new server" \
                pulse_as_qemu "$U" in_qemu_ns "$D"
            check "server restart: sockhook status says ok" status_ok
        else
            check "server restart: sockhook status says the bind lend is stale" \
                status_is stale
            out=$("$SOCKHOOK" refresh "$D" 2>&1) || true
            show "$out"
            check "server restart: after refresh, status says ok" status_ok
            check "server restart: after refresh, a client as QEMU's user in the host's namespace gets through" \
                pulse_as_qemu "$U" in_cgroup_of "$(qemu_of)"
            if pulse_as_qemu "$U" in_qemu_ns "$D" >/dev/null 2>&1; then
                ok "server restart: the re-bind reaches QEMU's own namespace too"
            else
                say "the re-bind does not reach QEMU's own mount namespace here (/ is not shared without systemd; docs/contract.md §4)"
            fi
        fi
    fi

    stop "$D"
    virsh_ managedsave-remove "$D" >/dev/null 2>&1 || true
    check "$method: virsh destroy at the end leaves the host byte-identical" same_as_before "$BEFORE"
done

# no_lend_left : nothing of the domain's lend is on the host: no mount below /run/sockhook, no
# lend directory, no journal, no proxy.
no_lend_left() {
    ! grep -q ' /run/sockhook/' /proc/self/mountinfo && [[ ! -e /run/sockhook/libvirt-$U ]] &&
        [[ ! -e /run/sockhook/state/$U.xml ]] && [[ -z $(proxy_pids) ]]
}

for method in bind proxy; do
    say "$method: the owner logs out while the VM runs, and logs in again"
    annotate "$D" --plugin pulseaudio --owner "$SH_USER" --method "$method" >/dev/null
    started "$D" "($method)" || continue
    check "$method: the lend works before the logout" pulse_as_qemu "$U" in_qemu_ns "$D"
    # What logind does at logout: the user's processes end, /run/user/UID is unmounted.
    "$DESKTOP" stop all >/dev/null
    if umount "$SH_RUNTIME" 2>"$TMP/umount.err"; then
        ok "$method: logout: $SH_RUNTIME unmounted while the lend exists"
    else
        not_ok "$method: logout: umount $SH_RUNTIME: $(cat "$TMP/umount.err")"
    fi
    check "$method: logout: the VM keeps running" is_running "$D"
    st=$("$SOCKHOOK" status 2>&1) || true
    show "$st"
    check "$method: logout: status does not call the lend ok" bash -c '! "$0" status --json | python3 -c "
import json, sys
sys.exit(0 if any(l[\"uuid\"] == sys.argv[1] and l[\"health\"] == \"ok\" for l in json.load(sys.stdin)) else 1)" "$1"' "$SOCKHOOK" "$U"
    # Login: a new runtime directory and a new server.
    "$DESKTOP" user >/dev/null
    "$DESKTOP" start pulseaudio >/dev/null
    out=$("$SOCKHOOK" refresh "$D" 2>&1) || true
    show "refresh: $out"
    if [[ $method == proxy ]]; then
        check "$method: login: the proxy serves the new server by itself" pulse_as_qemu "$U" in_qemu_ns "$D"
    else
        check "$method: login: after refresh a client as QEMU's user reaches the new server" \
            pulse_as_qemu "$U" in_cgroup_of "$(qemu_of)"
    fi
    stop "$D"
    check "$method: release after the logout leaves no mount, lend directory, journal or proxy" no_lend_left
done

finish
