#!/bin/bash
# Method context on a Wayland compositor (issue 19): the VM reaches the owner's real sway only
# through a wp_security_context_v1 listener that sockhook creates for it (engine
# org.sockhook, app id the domain's name, instance id its UUID), held by
# sockhook-wayland-holder as the owner.
#
#   bash tests/root/lend_wayland_context.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# The owner runs a real headless sway (on wayland-1). As QEMU's user, through the lend:
# - wayland-info lacks the privileged globals that the owner's own connection lists
#   (screencopy, virtual keyboard and pointer, layer shell, data control, foreign toplevel,
#   session lock, input method), and still has wl_compositor, wl_shm and xdg_wm_base;
# - a real client (weston-simple-shm) gets its window into sway's tree, and sway's IPC shows
#   it with the context's engine, app id and instance id;
# - through a bind lend, for contrast, the same wayland-info lists the privileged globals;
# - a killed holder is reported by status, and the compositor then takes no new client on
#   the lend; each release leaves the host byte-identical;
# - where no LSM keeps VMs apart (as here) the context sits behind the proxy (S10, "the walls
#   compose"): plan says so, for method context and for auto; the context socket is the
#   owner's and QEMU's user cannot connect to it; QEMU's uid in another VM's cgroup is
#   refused by the proxy, while this VM's gets the restricted view through the lend;
# - on weston, which offers no security context, method context is refused in one line.
# Where wayland-protocols has no security-context-v1.xml (Debian 12 has 1.31) no sockhook
# can be built with it: the suite skips.
#
# Before: the wayland plugin had no context; method context was refused for it at plan time
# ("'wayland' has none"), and any lend made QEMU's user a full client of sway.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gates.bash" wayland_context
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools sway swaymsg wayland-info weston weston-simple-shm

NAME=wlctx
lend_setup 5c0e7a31-9b2d-4e6f-8a17-3d4c5b6a7e80

# The globals sway 1.10 hides from a security-context client (LIBVIRT-NOTES, "Security
# contexts"), and some it must keep.
PRIVILEGED=(zwlr_screencopy_manager_v1 zwp_virtual_keyboard_manager_v1
    zwlr_virtual_pointer_manager_v1 zwlr_layer_shell_v1 zwlr_data_control_manager_v1
    zwlr_foreign_toplevel_manager_v1 ext_session_lock_manager_v1 zwp_input_method_manager_v2)
KEPT=(wl_compositor wl_shm xdg_wm_base wl_seat wl_data_device_manager)

say "the owner's sway (headless)"
lend_sway
say "$(sway --version)"

# globals_of WHO DISPLAY : the interfaces wayland-info lists, one a line, as WHO (owner|qemu).
globals_of() {
    local who=$1 display=$2
    if [[ $who == owner ]]; then
        lend_as "$lend_user" env -i XDG_RUNTIME_DIR="$runtime" WAYLAND_DISPLAY="$display" \
            timeout 10 wayland-info
    else
        lend_as_qemu env -i WAYLAND_DISPLAY="$display" timeout 10 wayland-info
    fi 2>&1 | sed -n "s/^interface: '\([^']*\)'.*/\1/p" | sort -u
}
has() { grep -qx "$1" <<<"$2"; }
# lacks GLOBAL LIST : a connection that worked (it lists wl_compositor) did not list GLOBAL.
lacks() { has wl_compositor "$2" && ! grep -qx "$1" <<<"$2"; }

owner_sees=$(globals_of owner wayland-1)
say "the owner's connection lists $(wc -l <<<"$owner_sees") globals"
for g in "${PRIVILEGED[@]}"; do check "the owner's own connection lists $g" has "$g" "$owner_sees"; done

# sway_views : one JSON line per client window in sway's tree, as the owner asks its IPC.
sway_views() {
    lend_as "$lend_user" swaymsg -s "$ipc" -t get_tree -r | "$py" -c '
import json, sys
def walk(n):
    if n.get("pid"):
        print(json.dumps({k: n.get(k) for k in ("name", "app_id", "pid", "sandbox_engine",
                                                  "sandbox_app_id", "sandbox_instance_id")}))
    for c in n.get("nodes", []) + n.get("floating_nodes", []):
        walk(c)
walk(json.load(sys.stdin))'
}
has_window() { sway_views | grep -q "\"name\": \"$1\""; }

# lend_plan METHOD : `sockhook plan` (as root) of the domain lending wayland with METHOD.
lend_plan() {
    lend_domain "$NAME" "$U" "wayland:$1" >"$TMP/dom.xml"
    "$SOCKHOOK" plan --plugin-dir "$etc/plugins" --policy "$etc/policy.conf" "$TMP/dom.xml" 2>&1 || true
}
holder_pid() { context_holder_pid "$lend_uid" sockhook-waylan; }
# proxy_pid : the proxy in front of the context (it serves only domain $lend_id's QEMU).
proxy_pid() { context_proxy_pid "$lend_uid" "$lend_id"; }

host_snapshot >"$TMP/before"

say "bind, for contrast: QEMU's user is a full client of sway"
x=$(lend_domain "$NAME" "$U" wayland:bind)
if lend_hook "$NAME" prepare begin "$x"; then
    bound_sees=$(globals_of qemu "$L/wayland-0")
    check "through bind, QEMU's user's wayland-info lists zwlr_screencopy_manager_v1" \
        has zwlr_screencopy_manager_v1 "$bound_sees"
    check "through bind, ... and zwp_virtual_keyboard_manager_v1" \
        has zwp_virtual_keyboard_manager_v1 "$bound_sees"
else
    not_ok "bind: prepare failed: $(cat "$TMP/hook.err")"
fi
lend_hook "$NAME" release end "$x" || not_ok "bind: release exit $?"
same_host "$TMP/before" "bind"

say "plan: method context on sway"
plan=$(lend_plan context)
show "$(grep -E 'method|context|holder|unrestricted|found' <<<"$plan")"
check "plan shows the holder step: a Wayland security context with the domain's name and UUID" \
    grep -qF "Wayland security context on $runtime/wayland-1 (wp_security_context_v1: engine org.sockhook, app id $NAME, instance id $U)" <<<"$plan"
check "plan says the compositor hides its privileged globals" grep -q "hides its privileged globals" <<<"$plan"
check "plan lends with method context and says nothing is unrestricted" \
    bash -c 'grep -q "method context" <<<"$1" && ! grep -q "unrestricted" <<<"$1"' _ "$plan"
check "plan says the context sits behind the proxy, since nothing here keeps VMs apart" \
    grep -q "context behind the proxy: .*only a proxy that serves only this VM's QEMU reaches it" <<<"$plan"
check "plan shows the proxy step, connecting to the context socket through a descriptor" \
    grep -qF "connects to the context socket $L/wayland-0.context through a descriptor" <<<"$plan"

say "prepare: the hook binds the lend and starts the holder as $lend_user"
x=$(lend_domain "$NAME" "$U" wayland:context)
rc=0; lend_hook "$NAME" prepare begin "$x" || rc=$?
check_context_lend wayland "$lend_user" "$lend_uid" "$qemu_uid" "$lend_id" lend_as_qemu

say "another VM's QEMU through this VM's lend"
# A process must be placeable in that cgroup, or listing nothing would say nothing.
in_domain_cgroup $((lend_id + 1)) true || die "cannot place a process in domain $((lend_id + 1))'s cgroup"
# The proxy accepts and closes a refused peer's connection: wayland-info then lists nothing
# (the same globals_of that lists this VM's globals below).
other=$(lend_id=$((lend_id + 1)) globals_of qemu "$L/wayland-0" || true)
check "QEMU's uid in domain $((lend_id + 1))'s cgroup is refused by the proxy: its wayland-info lists no global ($(grep -c . <<<"$other") listed)" \
    bash -c '! grep -qx wl_compositor <<<"$1"' _ "$other"

say "what QEMU's user sees through the lend"
vm_sees=$(globals_of qemu "$L/wayland-0")
say "QEMU's user's connection lists $(wc -l <<<"$vm_sees") globals"
for g in "${PRIVILEGED[@]}"; do check "through the context, QEMU's user's wayland-info lacks $g" lacks "$g" "$vm_sees"; done
for g in "${KEPT[@]}"; do check "through the context, QEMU's user still has $g" has "$g" "$vm_sees"; done

say "a real client's window, and what sway knows of it"
lend_as_qemu sh -c 'echo "$$"; exec env -i WAYLAND_DISPLAY="$1" weston-simple-shm' sh \
    "$L/wayland-0" >"$TMP/client.out" 2>&1 &
job=$!
bg_pids+=("$job")
if wait_until 15 has_window simple-shm; then
    ok "QEMU's user's weston-simple-shm is a window in the owner's sway"
    view=$(sway_views | grep '"name": "simple-shm"' | head -1)
    show "$view"
    if grep -q '"sandbox_engine": null' <<<"$view"; then
        say "this sway's IPC does not show a view's security context"
    else
        check "sway shows the window with engine org.sockhook, app id $NAME, instance id $U" \
            bash -c 'grep -q "\"sandbox_engine\": \"org.sockhook\"" <<<"$1" &&
                     grep -q "\"sandbox_app_id\": \"$2\"" <<<"$1" &&
                     grep -q "\"sandbox_instance_id\": \"$3\"" <<<"$1"' _ "$view" "$NAME" "$U"
    fi
else
    not_ok "no simple-shm window in sway's tree ($(sway_views | tr '\n' ' ')); client: $(head -c 300 "$TMP/client.out")"
fi
client=$(head -1 "$TMP/client.out")
if [[ $client =~ ^[0-9]+$ ]]; then kill "$client" 2>/dev/null || true; fi
wait "$job" 2>/dev/null || true

say "the holder killed: status says so, and sway takes no new client on the lend"
kill -KILL "${HP:-none}" 2>/dev/null || true
wait_until 5 bash -c "! kill -0 ${HP:-0} 2>/dev/null" || true
st=$("$SOCKHOOK" status 2>&1 || true)
check "a dead holder is reported by status" \
    grep -q "the context's holder is not running, so the compositor accepts no new connection" <<<"$st"
show "$(grep -A3 'wayland: context' <<<"$st")"
# Behind the proxy the connection is accepted and closed (nothing listens behind it any
# more): the client gets no global either way.
after=$(globals_of qemu "$L/wayland-0" || true)
check "a new client through the lend gets no global ($(grep -c . <<<"$after") listed)" \
    bash -c '! grep -qx wl_compositor <<<"$1"' _ "$after"
rc=0; lend_hook "$NAME" release end "$x" || rc=$?
check "release after the holder died succeeds" test "$rc" -eq 0
same_host "$TMP/before" "context"

say "auto, where no LSM keeps VMs apart"
plan=$(lend_plan auto)
show "$(grep -E 'method|auto' <<<"$plan")"
check "auto picks context behind the proxy, since the compositor offers a security context" \
    grep -q "auto: context, since the compositor at .* offers a security context.*; context behind the proxy: " <<<"$plan"

say "the owner's sway ends while the lend stands: the holder ends with it, and status says so"
# sway's own sockets and processes (sway, its swaybg) end with sway, not through sockhook: they do not count in
# this part's snapshots (a getfacl block runs from its "# file:" line to a blank line).
SNAP_SED="\%^# file: $runtime/\(wayland-1\|sway-ipc\.\)%,/^\$/d; \%^$runtime/\(wayland-1\|sway-ipc\.\)%d; /^$lend_user sway\(bg\)\?\$/d"
host_snapshot >"$TMP/before-sway-ends"
x=$(lend_domain "$NAME" "$U" wayland:context)
rc=0; lend_hook "$NAME" prepare begin "$x" || rc=$?
check "prepare succeeds again ($(head -c 300 "$TMP/hook.err"))" test "$rc" -eq 0
HP=$(holder_pid)
kill "$sway_pid" 2>/dev/null || true
wait "$sway_pid" 2>/dev/null || true
check "the holder ($HP) ends when the compositor does" \
    wait_until 10 bash -c "! kill -0 ${HP:-0} 2>/dev/null"
st=$("$SOCKHOOK" status 2>&1 || true)
check "status reports the dead holder" \
    grep -q "the context's holder is not running" <<<"$st"
rc=0; lend_hook "$NAME" release end "$x" || rc=$?
check "release after the compositor ended succeeds, and leaves no journal" \
    test "$rc" -eq 0 -a ! -e "/run/sockhook/state/$U.xml"
none_running() { [[ -z $(holder_pid) && -z $(proxy_pid) ]]; }
check "... no holder and no proxy left" wait_until 5 none_running
check "... and no lend directory" test ! -e "$L"
same_host "$TMP/before-sway-ends" "release after the compositor ended"
SNAP_SED=

say "weston offers no security context: method context is refused in one line"
kill "$sway_pid" 2>/dev/null || true
wait "$sway_pid" 2>/dev/null || true
rm -f "$runtime"/wayland-1 "$runtime"/wayland-1.lock "$runtime"/sway-ipc.*.sock
lend_spawn "$lend_user" env -i PATH=/usr/bin:/bin HOME=/nonexistent XDG_RUNTIME_DIR="$runtime" \
    weston --backend=headless-backend.so --use-pixman --shell=kiosk-shell.so \
    --socket=wayland-0 --idle-time=0 --no-config >"$TMP/weston.log" 2>&1
weston_pid=$spawned
wait_until 20 test -S "$runtime/wayland-0" || die "weston made no $runtime/wayland-0"
host_snapshot >"$TMP/before-weston"
plan=$(lend_plan context)
check "plan refuses context on weston, naming the socket and the problem" \
    grep -qF "wayland: method context: the compositor at $runtime/wayland-0 offers no security context" <<<"$plan"
rc=0; lend_hook "$NAME" prepare begin "$(lend_domain "$NAME" "$U" wayland:context)" || rc=$?
lend_one_line "prepare of method context on weston" "$rc" \
    "wayland: method context: the compositor at $runtime/wayland-0 offers no security context"
same_host "$TMP/before-weston" "the refusal"
plan=$(lend_plan bind)
check "bind on weston says what the VM reaches" \
    grep -q "wayland: unrestricted: this VM is a full client of your compositor" <<<"$plan"

kill "$weston_pid" 2>/dev/null || true
wait "$weston_pid" 2>/dev/null || true
finish
