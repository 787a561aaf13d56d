#!/usr/bin/env bash
# e2e_wayland_display.sh - QEMU's own display window (libvirt <graphics type='sdl'/>, SDL on
# Wayland) on the desktop user's weston, lent by the hook through bind and through proxy.
#
#   bash tests/root/e2e_wayland_display.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# The owner's weston (desktop.sh weston-seat: kiosk-shell, --debug, a background colour of
# its own) is asked two things as its owner: weston-debug's scene graph must list a top-level
# window 'QEMU' whose client is QEMU itself (bind) or the owner's proxy (proxy), and
# weston-screenshooter's picture of the output must be covered by that window: under 10% of
# its pixels in the background colour (before: all of them), showing the guest's VGA text
# (at least 2,000 pixels off the dominant black: SeaBIOS's lines, not just the pointer). Without the lend, QEMU's SDL display cannot initialise and
# QEMU refuses to start, and the scene graph has no window. Every stop is byte-identical.
# The screenshots are kept under the build directory (the path is printed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"
need_tools Xvfb weston weston-debug weston-screenshooter python3

PNG_STATS=$(dirname "${BASH_SOURCE[0]}")/lib/png_stats.py
# Beside the build tree's binary; an installed one (/usr/bin) gets a directory under /tmp.
if [[ $E2E_INSTALLED == 1 ]]; then
    ARTIFACTS=${E2E_ARTIFACTS:-/tmp/sockhook-artifacts}
else
    ARTIFACTS=${E2E_ARTIFACTS:-$(dirname "$SOCKHOOK")/artifacts}
fi
install -d -m 0755 "$ARTIFACTS"
D=${E2E_PREFIX}display
"$DESKTOP" start weston-seat >/dev/null

# The test domain with a VGA card: libvirt.sh's template has <video> model none.
define_domain "$D" UD "s|<model type='none'/>|<model type='vga'/>|"

# ---------------------------------------------------------------- what weston shows

scene_graph() { "$DESKTOP" as-user timeout 10 weston-debug scene-graph 2>/dev/null; }
# The pid of the client of the top-level window 'QEMU ...' (empty if there is none).
qemu_window_pid() {
    scene_graph | sed -n "s/.*role xdg_toplevel, PID \([0-9]*\),.*top-level window 'QEMU.*/\1/p" | head -1
}
has_qemu_window() { [[ -n $(qemu_window_pid) ]]; }
no_qemu_window() { [[ -z $(qemu_window_pid) ]]; }

SHOT=$TMP/shot.png
# screenshot FILE : weston-screenshooter as the owner, in a directory of its own.
screenshot() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    "$DESKTOP" as-user bash -c 'd=$(mktemp -d) && cd "$d" && timeout 10 weston-screenshooter \
        >/dev/null 2>&1 && cat wayland-screenshot-*.png; rc=$?; rm -rf "$d"; exit $rc' >"$1"
}
# stats FILE : "WIDTH HEIGHT COLOURS BACKGROUND_PIXELS OTHER_PIXELS" (png_stats.py).
stats() { python3 "$PNG_STATS" "$1" "$SH_WESTON_BACKGROUND"; }
# QEMU's window covers the output (under 10% left in weston's background colour) and shows
# the guest's text: SeaBIOS ends with five lines on black, some 3,500-4,700 pixels that are
# not black; the pointer is about 130, so 2,000 tells text from an empty screen.
TEXT_PIXELS=2000
covered_by_window() {
    local w h bg other
    read -r w h _ bg other < <(stats "$1") || return 1
    ((bg * 10 < w * h && other >= TEXT_PIXELS))
}
only_background() {
    local w h bg
    read -r w h _ bg _ < <(stats "$1") || return 1
    ((bg * 100 >= w * h * 99))
}
window_on_screen() { screenshot "$SHOT" && covered_by_window "$SHOT"; }
describe() {
    local w h c b o
    read -r w h c b o < <(stats "$1") || { echo "unreadable"; return 0; }
    echo "${w}x$h, $c colours, $b of $((w * h)) pixels in weston's background colour, $o not in the dominant one"
}

proxy_pids() { ps -u "$SH_UID" -o pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "sockhook" { print $1 }'; }

say "the owner's weston before any VM"
if screenshot "$SHOT"; then
    say "empty output: $(describe "$SHOT")"
    check "the empty output is the background colour (the window test can fail)" only_background "$SHOT"
else
    not_ok "weston-screenshooter as $SH_USER (weston --debug)"
fi
check "the scene graph has no QEMU window" no_qemu_window

# run_method METHOD : annotate, start, look, stop.
run_method() {
    local method=$1
    say "method $method"
    annotate_ok "$D" --plugin wayland --owner "$SH_USER" --method "$method"
    check "annotate adds an SDL display with the xauth virt-aa-helper needs" grep -q \
        "<graphics type='sdl' xauth='/run/sockhook/libvirt-$UD/no-xauthority'/>" <<<"$XML"
    qemu_env_has "annotate gives QEMU WAYLAND_DISPLAY as an absolute path" \
        WAYLAND_DISPLAY "/run/sockhook/libvirt-$UD/wayland-0"
    qemu_env_has "annotate gives QEMU SDL_VIDEODRIVER=wayland" SDL_VIDEODRIVER wayland
    qemu_env_has "annotate gives QEMU SDL_RENDER_DRIVER=software" SDL_RENDER_DRIVER software
    check "annotate recorded the policy allowance" policy_has "$UD"
    host_snapshot >"$BEFORE"
    if started "$D" "method $method"; then
        check "weston's scene graph lists QEMU's window" wait_until "$E2E_TIMEOUT" has_qemu_window
        local pid want
        pid=$(qemu_window_pid)
        if [[ $method == bind ]]; then
            want=$(qemu_pid "$D")
            check "the window's client is QEMU itself (pid $want), through the bind-mounted socket" \
                test "$pid" = "$want"
            one_qemu_acl_entry "$SH_WAYLAND_SOCKET"
        else
            want=$(proxy_pids)
            check "the window's client is the owner's proxy (pid $want)" test "$pid" = "$want"
        fi
        scene_graph | grep -A2 "top-level window 'QEMU" | sed 's/^/#   /'
        # SeaBIOS needs a few seconds of TCG to print its last line.
        check "a screenshot shows QEMU's window covering the output, with the guest's text" \
            wait_until "$((E2E_TIMEOUT * 3))" window_on_screen
        local keep=$ARTIFACTS/wayland-display-$method.png
        install -m 0644 "$SHOT" "$keep"
        say "screenshot: $(describe "$keep")"
        say "screenshot kept at $keep"
        stop "$D"
    fi
    check "virsh destroy leaves the host byte-identical" same_as_before "$BEFORE"
    check "QEMU's window is gone" wait_until 5 no_qemu_window
}

run_method bind
run_method proxy

say "negative: the annotated domain without the hook"
annotate "$D" --plugin wayland --owner "$SH_USER" --method bind >/dev/null
host_snapshot >"$BEFORE"
refused_without_hook "$D" "without the lend QEMU refuses to start: SDL cannot initialise" \
    "Could not initialize SDL"
check "and weston's scene graph has no QEMU window" no_qemu_window
if screenshot "$SHOT"; then
    check "and the output is still the background" only_background "$SHOT"
else
    not_ok "weston-screenshooter after the negative"
fi
check "the host is byte-identical after the negative" same_as_before "$BEFORE"

say "annotate --remove (the <graphics> goes with it)"
annotate_removed "$D" wayland

finish
