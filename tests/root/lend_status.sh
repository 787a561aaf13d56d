#!/bin/bash
# status, refresh, reconnect and cleanup from the journals alone (no libvirt): a bind lend goes
# stale when its server restarts and `refresh` binds the new socket; a killed proxy shows as
# broken and `reconnect` restarts it; `cleanup DOMAIN` and `cleanup --stale` release
# everything, byte-identically.
#
#   bash tests/root/lend_status.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"

U=3b2a1908-7f6e-4d5c-8b4a-39281706f501
lend_allow "$U"
lend_warm
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
server=$echo_pid
lend_snapshot "$tmp/before"
xml=$(lend_domain stat-dom "$U" pipewire:bind wayland:proxy)
lend_hook stat-dom prepare begin "$xml" || fail "prepare: $(cat "$tmp/hook.err")"
L=/run/sockhook/libvirt-$U

health() { "$bin" status --json | "$py" -c "import json,sys; print(' '.join(l['socket']+'='+l['health'] for l in json.load(sys.stdin) if l['uuid']=='$U'))"; }
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "status: both ok" || fail "status: $(health)"
"$bin" status | grep -q "stat-dom ($U) wayland: proxy" && ok "status: text lists the proxy" || fail "status text: $("$bin" status)"

# The server restarts: a new socket inode under the same name.
kill "$server"
wait "$server" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
[[ $(health) == "pipewire=stale wayland=ok" ]] && ok "status: stale after the server restarted" || fail "status after restart: $(health)"
"$bin" refresh stat-dom | grep -qx "refreshed pipewire" && ok "refresh: re-bound pipewire" || fail "refresh"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "status: ok after refresh" || fail "status after refresh: $(health)"
lend_ping qemu "$L/pipewire-0" && ok "refresh: QEMU reaches the new server" || fail "refresh: QEMU cannot reach the new server"

# The server restarts again; this time libvirtd's reconnect re-binds it.
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/pipewire-0"
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
[[ $(health) == "pipewire=stale wayland=ok" ]] || fail "status after the second restart: $(health)"
lend_hook stat-dom reconnect begin "$xml" || fail "reconnect exit"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "reconnect: re-bound the stale pipewire lend" || fail "after reconnect: $(health)"
lend_ping qemu "$L/pipewire-0" && ok "reconnect: QEMU reaches the restarted server" || fail "reconnect: QEMU cannot reach the restarted server"

# The proxy dies: broken; reconnect starts a new one on the same path.
pid=$("$bin" status --json | "$py" -c "import json,sys; print([l['proxy_pid'] for l in json.load(sys.stdin) if l['socket']=='wayland' and l['uuid']=='$U'][0])")
kill "$pid"
for ((i = 0; i < 100; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.02; done
[[ $(health) == "pipewire=ok wayland=broken" ]] && ok "status: broken after the proxy died" || fail "status after kill: $(health)"
lend_hook stat-dom reconnect begin "$xml" || fail "reconnect exit"
[[ $(health) == "pipewire=ok wayland=ok" ]] && ok "reconnect: proxy restarted" || fail "after reconnect: $(health)"
lend_echo_server "$lend_user" "$runtime/wayland-0" 0600
lend_ping qemu "$L/wayland-0" && ok "reconnect: QEMU reaches the server through the new proxy" || fail "new proxy does not relay"

# cleanup by name (no QEMU involved) and --stale (no QEMU runs with this uuid).
"$bin" cleanup stat-dom | grep -qx "released $U" && ok "cleanup NAME released it" || fail "cleanup NAME"
lend_hook stat-dom prepare begin "$xml" || fail "prepare again"
"$bin" cleanup --stale | grep -qx "released $U" && ok "cleanup --stale released it (no qemu -uuid $U)" || fail "cleanup --stale"
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -f "$runtime/wayland-0"
[[ $("$bin" status | grep -c "$U" || true) == 0 ]] && ok "status: nothing left" || fail "status still lists $U"
# The pipewire server was restarted, so its inode differs from the first snapshot's.
lend_snapshot "$tmp/after"
sed -i "s|^\(/run/user/$lend_uid/pipewire-0 socket [0-9]* [0-9]* [0-9]*\) [0-9]*|\1|" "$tmp/before" "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "status/refresh/reconnect/cleanup"
lend_finish
