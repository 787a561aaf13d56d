#!/usr/bin/env bash
# aa_confinement.sh - asked of a kernel that enforces AppArmor: each VM's QEMU, confined as
# libvirt-<uuid>, reaches its own lend directory and nothing of another VM's, of the owner's
# runtime directory or of sockhook's state; and without sockhook's rules the start fails.
#
#   bash tests/root/aa_confinement.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# Runs where the kernel has AppArmor enabled and libvirt confines QEMU with it (CI runs it
# under Debian 13's own kernel: tests/env/aa-kernel.sh, .ci/aa-kernel); elsewhere it skips
# and says why. Two VMs A (bind) and B (proxy) lend the owner's PulseAudio. The probes run
# in the VM's profile: `aa-exec -p libvirt-<uuid>` for files and directories (cat, which the
# profile may run), and for sockets a Python that enters the profile itself (writing
# "changeprofile" to /proc/self/attr/current, what aa-exec does before exec) and then calls
# connect(); each probe runs as QEMU's user and again as root, since root's refusal comes
# from AppArmor alone (QEMU's user is also refused by the modes, which proves nothing about
# AppArmor). Each refusal is matched with the kernel's own log line: apparmor="DENIED",
# profile="libvirt-<uuid>", name="<the path>".
#
# Sockets: a kernel whose AppArmor mediates connect() by path (features network_v9/af_unix,
# or network/af_unix) must refuse them like files. Debian 13's 6.12 does not (network_v8
# only): there the suite checks that this is still so (connect() goes through, and no denial
# is logged, for another VM's socket and the owner's own), and that doctor says it. That is a
# finding, not a pass of the separation: on such a kernel only a proxy that checks its peer can
# keep one VM from another's sockets.
set -euo pipefail
skip() { echo "SKIP: $*"; exit 77; }  # before the library: nothing to clean up yet
[[ $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null) == Y ]] ||
    skip "the kernel does not enforce AppArmor (tests/env/aa-kernel.sh boots one that does)"
[[ -f /etc/apparmor.d/libvirt/TEMPLATE.qemu ]] || skip "libvirt's AppArmor template is not installed"
grep -qE '^(libvirtd|/usr/sbin/libvirtd) \(enforce\)' /sys/kernel/security/apparmor/profiles ||
    skip "libvirtd's AppArmor profile is not loaded"
command -v aa-exec >/dev/null || skip "aa-exec is not installed (package apparmor)"
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

APPARMOR=$(dirname "$(dirname "$SOCKHOOK")")/share/sockhook/apparmor/sockhook-apparmor
[[ -x $APPARMOR ]] || APPARMOR=$REPO/dist/apparmor/sockhook-apparmor
A=${E2E_PREFIX}aa-a
B=${E2E_PREFIX}aa-b
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$A" UA
define_domain "$B" UB
annotate_ok "$A" --plugin pulseaudio --owner "$SH_USER" --method bind
annotate_ok "$B" --plugin pulseaudio --owner "$SH_USER" --method proxy
QEMU_GID=$(id -g libvirt-qemu)

# The rules as the package installs them (the e2e set-up copies the binary only).
"$APPARMOR" install >/dev/null
check "sockhook-apparmor check: VM and hook rules installed" "$APPARMOR" check

# probe PROFILE UID GID PATH : "allowed" or "refused <errno name>" for one access of PATH in
# PROFILE as UID:GID: a directory is listed, a socket connected, anything else read.
probe() {
    local profile=$1 uid=$2 gid=$3 path=$4
    if [[ -S $path ]]; then
        setpriv --reuid="$uid" --regid="$gid" --clear-groups python3 -c '
import errno, os, socket, sys
profile, path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
with open("/proc/self/attr/current", "w") as f:
    f.write("changeprofile " + profile)
try:
    s.connect(path)
    print("allowed")
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno))' "$profile" "$path"
    else
        local out rc=0
        out=$(setpriv --reuid="$uid" --regid="$gid" --clear-groups aa-exec -p "$profile" -- \
            cat "$path" 2>&1 >/dev/null) || rc=$?
        case $out in
            "" | *"Is a directory"*) echo allowed ;;
            *"Permission denied"*) echo "refused EACCES" ;;
            *) echo "refused ($rc: $out)" ;;
        esac
    fi
}

# denied_in_log PROFILE PATH : the kernel logged an AppArmor denial of PATH for PROFILE.
denied_in_log() {
    dmesg | grep 'apparmor="DENIED"' | grep -F "profile=\"$1\"" | grep -qF "name=\"$2\""
}

# Whether this kernel's AppArmor decides connect() to a unix socket by its path.
FEATURES=/sys/kernel/security/apparmor/features
if [[ -e $FEATURES/network_v9/af_unix || -e $FEATURES/network/af_unix ]]; then
    MEDIATES_UNIX=yes
else
    MEDIATES_UNIX=no
fi
say "AppArmor features: $(ls "$FEATURES" | tr '\n' ' '); connect() by path mediated: $MEDIATES_UNIX"

# reachable_socket WHO PROFILE PATH : on a kernel without af_unix mediation, connect() to
# PATH goes through in PROFILE (as root, past the modes) and the kernel logs no denial.
reachable_socket() {
    local who=$1 profile=$2 p=$3 r
    r=$(probe "$profile" 0 0 "$p")
    check "$who: this kernel lets the profile connect to $p ($r): no af_unix mediation" \
        test "$r" = allowed
    check "$who: and logs no denial for it" bash -c "! dmesg | grep 'apparmor=\"DENIED\"' |
        grep -F 'profile=\"$profile\"' | grep -qF 'name=\"$p\"'"
}

# refused_everywhere WHO PROFILE PATH... : every PATH is refused to PROFILE, as QEMU's user
# and as root, and for root (past the modes) the kernel logged the AppArmor denial. A socket,
# on a kernel that does not mediate connect(), is checked by reachable_socket instead.
refused_everywhere() {
    local who=$1 profile=$2 p r
    shift 2
    for p in "$@"; do
        if [[ -S $p && $MEDIATES_UNIX == no ]]; then
            reachable_socket "$who" "$profile" "$p"
            continue
        fi
        r=$(probe "$profile" "$QEMU_UID" "$QEMU_GID" "$p")
        check "$who as QEMU's user: $p is refused ($r)" test "${r%% *}" = refused
        r=$(probe "$profile" 0 0 "$p")
        check "$who as root in the profile: $p is refused ($r)" test "${r%% *}" = refused
        if denied_in_log "$profile" "$p"; then
            ok "$who: the kernel logged the denial: $(dmesg | grep 'apparmor="DENIED"' |
                grep -F "profile=\"$profile\"" | grep -F "name=\"$p\"" | tail -n1 |
                grep -oE 'operation="[^"]*".*name="[^"]*"')"
        else
            not_ok "$who: no apparmor=\"DENIED\" line for $p in the kernel log"
        fi
    done
}

host_snapshot >"$BEFORE"
say "both VMs confined, each with its lend"
started "$A" || die "A does not start under AppArmor: $START_OUT"
started "$B" || die "B does not start under AppArmor: $START_OUT"
PA=libvirt-$UA PB=libvirt-$UB
for d in "$A:$PA" "$B:$PB"; do
    label=$(cat "/proc/$(qemu_pid "${d%%:*}")/attr/current")
    check "${d%%:*}'s QEMU runs as ${d#*:} (enforce): $label" test "$label" = "${d#*:} (enforce)"
done
check "A's QEMU is a client of the owner's PulseAudio" wait_until "$E2E_TIMEOUT" has_pulse_clients 2

say "each VM reaches its own lend (the probe can say allowed)"
for d in "A:$PA:$UA" "B:$PB:$UB"; do
    IFS=: read -r who profile uuid <<<"$d"
    r=$(probe "$profile" "$QEMU_UID" "$QEMU_GID" "/run/sockhook/libvirt-$uuid/pulse-native")
    check "$who reaches its own /run/sockhook/libvirt-$uuid/pulse-native ($r)" test "$r" = allowed
    r=$(probe "$profile" "$QEMU_UID" "$QEMU_GID" "/run/sockhook/libvirt-$uuid/pulse-cookie")
    check "$who reads its own pulse-cookie ($r)" test "$r" = allowed
done

say "the kernel refuses each VM the other's lends, the owner's runtime directory, sockhook's state"
runtime=/run/user/$SH_UID
state=$(find /run/sockhook/state -maxdepth 1 -type f -name '*.xml' | head -n1)
refused_everywhere "A" "$PA" "/run/sockhook/libvirt-$UB/" "/run/sockhook/libvirt-$UB/pulse-native" \
    "/run/sockhook/libvirt-$UB/pulse-cookie" "$runtime/" "$runtime/pulse/native" \
    /run/sockhook/state/ "$state"
refused_everywhere "B" "$PB" "/run/sockhook/libvirt-$UA/" "/run/sockhook/libvirt-$UA/pulse-native" \
    "/run/sockhook/libvirt-$UA/pulse-cookie" "$runtime/" "$runtime/pulse/native" \
    /run/sockhook/state/ "$state"
if [[ $MEDIATES_UNIX == no ]]; then
    out=$("$SOCKHOOK" doctor "$A" 2>&1 || true)
    check "doctor says this kernel does not mediate connecting to sockets" \
        grep -q "^warn  VMs apart: this kernel's AppArmor does not mediate connecting to sockets" <<<"$out"
fi

# What keeps B's sockets from A here is B's proxy (S10): a PulseAudio client as QEMU's user,
# in A's QEMU's cgroup, gets nothing through B's proxy; in B's QEMU's cgroup it is served.
check "B's proxy serves QEMU's user in B's cgroup" pulse_as_qemu "$UB" in_cgroup_of "$(qemu_pid "$B")"
check "B's proxy refuses QEMU's user in A's cgroup" pulse_refused "$UB" in_cgroup_of "$(qemu_pid "$A")"
stop "$A"
stop "$B"
same_host "$BEFORE" "both VMs stopped"

say "without the VM rules (the hook's kept) the kernel refuses A's QEMU its own lend"
DROPIN=/etc/apparmor.d/abstractions/libvirt-qemu.d/sockhook
if [[ -f $DROPIN ]]; then
    mv "$DROPIN" "$TMP/vm-rules"
    on_exit restore_vm_rules
    restore_vm_rules() { [[ -f $TMP/vm-rules ]] && mv "$TMP/vm-rules" "$DROPIN"; return 0; }
    start_fails "$A" "A's start fails without its VM rules" "pulse|PulseAudio|cookie|Permission denied|cannot"
    show "$START_OUT"
    if denied_in_log "libvirt-$UA" "/run/sockhook/libvirt-$UA/pulse-cookie"; then
        ok "the kernel logged it: $(dmesg | grep 'apparmor="DENIED"' | grep -F "profile=\"libvirt-$UA\"" |
            grep -F "libvirt-$UA/pulse-cookie" | tail -n1 | grep -oE 'operation="[^"]*".*name="[^"]*"')"
    else
        not_ok "no apparmor=\"DENIED\" line for A's pulse-cookie in the kernel log"
    fi
    restore_vm_rules
else
    not_ok "no VM rules at $DROPIN to take away (libvirt < 9.6 layout?)"
fi
same_host "$BEFORE" "VM rules taken away and put back"

say "without any of sockhook's rules the kernel refuses the hook its bind mount"
"$APPARMOR" remove >/dev/null
check "sockhook-apparmor check now finds the rules missing" bash -c "! '$APPARMOR' check >/dev/null"
start_fails "$A" "A's start fails without the rules" "pulse|PulseAudio|Permission denied|cannot"
show "$START_OUT"
if denied_in_log "libvirt-$UA" "/run/sockhook/libvirt-$UA/pulse-native" ||
    denied_in_log "libvirt-$UA" "/run/sockhook/libvirt-$UA/pulse-cookie" ||
    denied_in_log "libvirtd" "/run/sockhook/libvirt-$UA/pulse-native"; then
    ok "the kernel logged it: $(dmesg | grep 'apparmor="DENIED"' | grep -F "libvirt-$UA/pulse-" | tail -n1 |
        grep -oE 'operation="[^"]*".*name="[^"]*"')"
else
    not_ok "no apparmor=\"DENIED\" line for A's lend in the kernel log"
fi
"$APPARMOR" install >/dev/null
started "$A" "again with the rules back" && stop "$A"
same_host "$BEFORE" "rules removed and installed again, A stopped"

finish
