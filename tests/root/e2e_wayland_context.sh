#!/usr/bin/env bash
# e2e_wayland_context.sh - QEMU's own display window (libvirt <graphics type='sdl'/>, SDL on
# Wayland) on the desktop user's sway, lent with method context (issue 19): real libvirtd,
# real QEMU, real sway (headless), the hook installed as install.sh does.
#
#   bash tests/root/e2e_wayland_context.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# sway's IPC, asked as its owner, must list a window 'QEMU ...' whose client is QEMU itself
# (the compositor serves the context's socket directly) or, where the context sits behind the
# domain's proxy, that proxy, while the holder runs as the owner;
# virsh destroy leaves the host byte-identical and the window gone. What such a client can
# bind is tests/root/lend_wayland_context.sh's concern (wayland-info through the same lend).
# Where wayland-protocols has no security-context-v1.xml (Debian 12) the suite skips.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gates.bash" wayland_context
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"
need_tools sway swaymsg

# The holder where install.sh puts it (the hook is a copy in qemu.d, beside which it may not be).
e2e_install_holder sockhook-wayland-holder

D=${E2E_PREFIX}wlctx
rt=/run/user/$SH_UID
stop_sway() { pkill -u "$SH_UID" -x sway 2>/dev/null || true; }
on_exit stop_sway
say "the owner's sway (headless)"
"$DESKTOP" as-user env WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman \
    sway -c /dev/null >"$TMP/sway.log" 2>&1 &
wait_until 20 test -S "$rt/wayland-1" || die "sway made no $rt/wayland-1: $(tail -5 "$TMP/sway.log")"
wait_until 20 compgen -G "$rt/sway-ipc.*.sock" || die "sway made no IPC socket"
ipc=$(compgen -G "$rt/sway-ipc.*.sock" | head -1)

# qemu_window_pid : the pid of the client of sway's window 'QEMU ...' (empty if none).
qemu_window_pid() {
    "$DESKTOP" as-user swaymsg -s "$ipc" -t get_tree -r 2>/dev/null | python3 -c '
import json, sys
def walk(n):
    if n.get("pid") and (n.get("name") or "").startswith("QEMU"):
        print(n["pid"])
    for c in n.get("nodes", []) + n.get("floating_nodes", []):
        walk(c)
walk(json.load(sys.stdin))' | head -1
}
has_qemu_window() { [[ -n $(qemu_window_pid) ]]; }
no_qemu_window() { [[ -z $(qemu_window_pid) ]]; }

# The test domain with a VGA card: libvirt.sh's template has <video> model none.
define_domain "$D" UD "s|<model type='none'/>|<model type='vga'/>|"
annotate_ok "$D" --plugin wayland --owner "$SH_USER" --method context
check "annotate asks for method context" grep -q -E "method=[\"']context" <<<"$XML"
check "annotate adds an SDL display" grep -q "<graphics type='sdl'" <<<"$XML"
host_snapshot >"$BEFORE"
if started "$D" "method context"; then
    check "sway's tree lists QEMU's window" wait_until "$E2E_TIMEOUT" has_qemu_window
    pid=$(qemu_window_pid)
    want=$(qemu_pid "$D")
    # sway names the client by its socket's peer: QEMU where the context socket is the lend,
    # this domain's proxy where it sits behind one (no LSM keeps VMs apart: S10), which serves
    # this domain's QEMU alone.
    served=$(status_pid "$UD" proxy_pid)
    check "the window's client is QEMU itself (pid $want) or the proxy that serves only it (pid $served)" \
        test -n "$pid" -a \( "$pid" = "$want" -o "$pid" = "$served" \)
    st=$("$SOCKHOOK" status 2>&1 || true)
    show "$st"
    check "status shows the context lend, healthy" \
        bash -c "grep -q 'wayland: context, owner $SH_USER' <<<\"\$1\" && grep -q 'health ok' <<<\"\$1\"" _ "$st"
    check "the holder runs as $SH_USER" \
        test -n "$(pgrep -u "$SH_UID" -x sockhook-waylan)"
    stop "$D"
fi
check "virsh destroy leaves the host byte-identical" same_as_before "$BEFORE"
check "QEMU's window is gone" wait_until 5 no_qemu_window
check "the holder is gone" wait_until 5 bash -c "[[ -z \$(pgrep -u $SH_UID -x sockhook-waylan) ]]"

say "annotate --remove"
annotate_removed "$D" wayland

finish
