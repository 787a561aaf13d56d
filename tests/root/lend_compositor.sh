#!/bin/bash
# The wayland lend reaches the compositor the owner runs (issue 19). sway, like Hyprland,
# starts counting at 1 and listens on wayland-1, where GNOME, KDE and weston take wayland-0;
# the metadata names no path. Here the owner runs a real headless sway and nothing on
# wayland-0: `plan` must name wayland-1 and say why in one line (and what the VM can reach in
# the compositor, which nothing restricts yet), and through bind and through proxy a real
# Wayland client as QEMU's user (weston-simple-shm: wl_shm pools are file descriptors) must
# put its window into sway's tree, as sway's own IPC tells the owner. A wayland-0 that sway
# did not make and nobody listens on (left by a compositor that exited) must not be taken
# for it. Each release leaves the host byte-identical.
#
# Before issue 19 the plugin named wayland-0 only: plan showed /run/user/UID/wayland-0, bind
# refused ("does not exist") and the proxy's client got nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools sway swaymsg weston-simple-shm

lend_setup 6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c21

say "the owner's sway (headless)"
lend_sway
check "sway listens on wayland-1, and there is no wayland-0" \
    eval '[[ -S $runtime/wayland-1 && ! -e $runtime/wayland-0 ]]'

# sway_windows : the names of the windows in sway's tree, asked as the owner through its IPC.
sway_windows() {
    lend_as "$lend_user" swaymsg -s "$ipc" -t get_tree -r |
        "$py" -c '
import json, sys
def walk(n):
    if n.get("pid"):
        print(n.get("name") or n.get("app_id") or "?")
    for c in n.get("nodes", []) + n.get("floating_nodes", []):
        walk(c)
walk(json.load(sys.stdin))'
}
has_window() { sway_windows | grep -qx "$1"; }

# plan_says WHAT TEXT : `sockhook plan` (as root) of $xml contains TEXT.
plan_says() {
    local what=$1 text=$2
    if grep -qF -- "$text" "$TMP/plan"; then ok "plan: $what"; else
        not_ok "plan: $what: no '$text' in: $(cat "$TMP/plan")"
    fi
}

# check_found METHOD WHY : plan names wayland-1 and says WHY, and a real client as QEMU reaches
# sway through the lend.
check_found() {
    local method=$1 why=$2 xml
    xml=$(lend_domain "sway-$method" "$U" "wayland:$method")
    printf '%s' "$xml" >"$TMP/dom.xml"
    "$SOCKHOOK" plan --plugin-dir "$etc/plugins" --policy "$etc/policy.conf" "$TMP/dom.xml" \
        >"$TMP/plan" 2>&1 || true
    plan_says "$method: the source is sway's socket" "source $runtime/wayland-1"
    plan_says "$method: says why, in one line" "found wayland-1 is the only one of wayland-0, wayland-1 $why"
    plan_says "$method: says what the VM can reach in the compositor" "wayland: unrestricted: this VM is a full client of your compositor"
    host_snapshot >"$TMP/before"
    if ! lend_hook "sway-$method" prepare begin "$xml"; then
        not_ok "$method: prepare failed: $(cat "$TMP/hook.err")"
        return
    fi
    ok "$method: prepare lends $L/wayland-0"
    # The client runs until stopped (its first line of output is its pid); its window must
    # appear in sway's tree.
    lend_as_qemu sh -c 'echo "$$"; exec env -i WAYLAND_DISPLAY="$1" weston-simple-shm' sh \
        "$L/wayland-0" >"$TMP/client.out" 2>&1 &
    local job=$! client
    bg_pids+=("$job")
    if wait_until 15 has_window simple-shm; then
        ok "$method: QEMU's user's weston-simple-shm is a window in the owner's sway"
    else
        not_ok "$method: no simple-shm window in sway's tree ($(sway_windows | tr '\n' ' ')); client: $(head -c 300 "$TMP/client.out")"
    fi
    client=$(head -1 "$TMP/client.out")
    if [[ $client =~ ^[0-9]+$ ]]; then kill "$client" 2>/dev/null || true; fi
    wait "$job" 2>/dev/null || true
    wait_until 10 eval '! has_window simple-shm' || not_ok "$method: the window stayed after the client ended"
    lend_hook "sway-$method" release end "$xml" || not_ok "$method: release exit $?"
    same_host "$TMP/before" "$method"
}

check_found bind "that is $lend_user's socket"

# A wayland-0 left over: a socket file of the owner's that nobody listens on (and the only
# one of the two a plugin naming wayland-0 alone would take).
lend_as "$lend_user" "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
' "$runtime/wayland-0"
check "a left-over wayland-0 exists, and nobody listens on it" test -S "$runtime/wayland-0"

check_found bind "where $lend_user's server listens"
check_found proxy "where $lend_user's server listens"
plan_says "names the left-over wayland-0 as such" "nothing listens on wayland-0 (left over)"

kill "$sway_pid" 2>/dev/null
wait "$sway_pid" 2>/dev/null || true
finish
