#!/bin/bash
# status, refresh, reconnect and cleanup from the journals alone (no libvirt): a bind lend goes
# stale when its server restarts and `refresh` binds the new socket; a killed proxy shows as
# broken and `reconnect` restarts it; `cleanup DOMAIN` and `cleanup --stale` release
# everything, byte-identically.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

lend_setup 3b2a1908-7f6e-4d5c-8b4a-39281706f501 pipewire-0
server=$echo_pid
host_snapshot >"$TMP/before"
xml=$(lend_domain stat-dom "$U" pipewire:bind wayland:proxy)
lend_hook stat-dom prepare begin "$xml" || not_ok "prepare: $(cat "$TMP/hook.err")"

health() { "$SOCKHOOK" status --json | "$py" -c "import json,sys; print(' '.join(l['socket']+'='+l['health'] for l in json.load(sys.stdin) if l['uuid']=='$U'))"; }
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "status: both ok" || not_ok "status: $(health)"
"$SOCKHOOK" status | grep -q "stat-dom ($U) wayland: proxy" && ok "status: text lists the proxy" || not_ok "status text: $("$SOCKHOOK" status)"

# The server restarts: a new socket inode under the same name.
kill "$server"
wait "$server" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
[[ $(health) == "pipewire=stale wayland=ok" ]] && ok "status: stale after the server restarted" || not_ok "status after restart: $(health)"
"$SOCKHOOK" refresh stat-dom --policy-file "$etc/policy.conf" | grep -qx "refreshed pipewire" && ok "refresh: re-bound pipewire" || not_ok "refresh"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "status: ok after refresh" || not_ok "status after refresh: $(health)"
lend_ping qemu "$L/pipewire-0" && ok "refresh: QEMU reaches the new server" || not_ok "refresh: QEMU cannot reach the new server"

# The server restarts again; this time libvirtd's reconnect re-binds it.
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
[[ $(health) == "pipewire=stale wayland=ok" ]] || not_ok "status after the second restart: $(health)"
lend_hook stat-dom reconnect begin "$xml" || not_ok "reconnect exit"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "reconnect: re-bound the stale pipewire lend" || not_ok "after reconnect: $(health)"
lend_ping qemu "$L/pipewire-0" && ok "reconnect: QEMU reaches the restarted server" || not_ok "reconnect: QEMU cannot reach the restarted server"

# The proxy dies: broken; reconnect starts a new one on the same path.
pid=$("$SOCKHOOK" status --json | "$py" -c "import json,sys; print([l['proxy_pid'] for l in json.load(sys.stdin) if l['socket']=='wayland' and l['uuid']=='$U'][0])")
kill "$pid"
wait_until 2 test ! -e "/proc/$pid" || true
[[ $(health) == "pipewire=ok wayland=broken" ]] && ok "status: broken after the proxy died" || not_ok "status after kill: $(health)"
lend_hook stat-dom reconnect begin "$xml" || not_ok "reconnect exit"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "reconnect: proxy restarted" || not_ok "after reconnect: $(health)"
lend_echo_server "$lend_user" "$runtime/wayland-0" 0600
lend_ping qemu "$L/wayland-0" && ok "reconnect: QEMU reaches the server through the new proxy" || not_ok "new proxy does not relay"

# cleanup by name (no QEMU involved) and --stale (no QEMU runs with this uuid; another user's
# process that only claims to be it does not count).
"$SOCKHOOK" cleanup stat-dom | grep -qx "released $U" && ok "cleanup NAME released it" || not_ok "cleanup NAME"
lend_hook stat-dom prepare begin "$xml" || not_ok "prepare again"
# Any user can start a process with "-uuid $U" in its arguments: that is no running QEMU
# (libvirt's root-owned status file is what names one), so --stale still releases the lend.
lend_spawn "$lend_user2" "$py" -c 'import time; time.sleep(120)' -uuid "$U"
fake_qemu=$spawned
wait_until 5 grep -q -- "-uuid" "/proc/$fake_qemu/cmdline" || not_ok "the fake QEMU did not start"
"$SOCKHOOK" cleanup --stale | grep -qx "released $U" &&
    ok "cleanup --stale released it although $lend_user2 runs a process with -uuid $U" ||
    not_ok "cleanup --stale kept the lend: it took $lend_user2's process with -uuid $U for QEMU"
kill "$fake_qemu"
wait "$fake_qemu" 2>/dev/null || true
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/wayland-0"
[[ $("$SOCKHOOK" status | grep -c "$U" || true) == 0 ]] && ok "status: nothing left" || not_ok "status still lists $U"
# The pipewire server was restarted, so its inode differs from the first snapshot's.
SNAP_SED="s|^\(/run/user/$lend_uid/pipewire-0 s [0-7]* [^ ]* [^ ]*\) [0-9]*|\1|"
sed -i "$SNAP_SED" "$TMP/before"
same_host "$TMP/before" "status/refresh/reconnect/cleanup"
finish
