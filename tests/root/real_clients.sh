#!/usr/bin/env bash
# Every shipped plugin, proven with a real client of its protocol (SPEC §3), run as QEMU's user
# (libvirt-qemu) after the hook's prepare, against real servers run by a desktop user
# (tests/env/desktop.sh): PipeWire (pw-cli info, a pw-cat stream: memfds over the socket),
# real PulseAudio (pactl info with the cookie, paplay), JACK through PipeWire (jack_lsp with
# PipeWire's libjack), Wayland (weston-simple-shm: wl_shm pools are fds). Each through bind,
# proxy and acl or group. Another user cannot reach a lent socket. After each release the
# host is byte-identical. And the reason the proxy method exists: weston-simple-shm fails
# through socat, which cannot forward file descriptors.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools pw-cli pw-cat pactl paplay jack_lsp weston weston-simple-shm socat getfacl setpriv

uuids=()
cleanup() {
  desktop_release_all clients
  [[ -n ${socat_pid:-} ]] && kill "$socat_pid" 2>/dev/null
}
desktop_up
on_exit cleanup

"$DESKTOP" start pipewire >/dev/null || die "cannot start pipewire"
"$DESKTOP" start pulseaudio >/dev/null || die "cannot start pulseaudio"
"$DESKTOP" start weston >/dev/null || die "cannot start weston"
"$DESKTOP" make-wav "$TMP/tone.wav"

# Our own configuration: the repository's plugins and a policy for these domains only.
install -d -m 755 "$TMP/etc/plugins"
install -m 644 "$REPO"/plugins/*.xml "$TMP/etc/plugins/"
: >"$TMP/etc/policy.conf"
chmod 644 "$TMP/etc/policy.conf"
warm_run_sockhook
# QEMU's user needs a private runtime directory for Wayland clients' own use.
qemu_home=$TMP/qemu-home
install -d -m 700 -o libvirt-qemu -g libvirt-qemu "$qemu_home"

# as_qemu ENV... -- CMD...: runs CMD as QEMU's user with only the given environment.
as_qemu() {
  local envv=(HOME="$qemu_home" XDG_RUNTIME_DIR="$qemu_home" PATH=/usr/bin:/bin LANG=C.UTF-8)
  while [[ $1 != -- ]]; do envv+=("$1"); shift; done
  shift
  # In the cgroup of the domain id the XML names: a proxy lend serves only that VM (S10).
  in_domain_cgroup "$lend_id" setpriv --reuid=libvirt-qemu --regid=libvirt-qemu --init-groups \
    env -i "${envv[@]}" "$@"
}

n=0
# lend PLUGIN METHOD: prepare a fresh domain; sets $uuid, $xml and $envs (QEMU's environment
# from `sockhook plan --json`, the same the hook checks).
lend() {
  local plugin=$1 method=$2
  n=$((n + 1))
  uuid=$(printf '9a8b7c6d-5e4f-4a3b-8c2d-%012d' "$n")
  uuids+=("$uuid")
  desktop_lend "clients-$n" "$uuid" "$plugin" "$method" ||
    { not_ok "$plugin/$method: prepare failed: $(cat "$TMP/err")"; return 1; }
}
unlend() {
  printf '%s' "$xml" | "$SOCKHOOK" hook --config-dir "$TMP/etc" "clients-$n" release end - 2>/dev/null
}

# scenario PLUGIN METHOD CHECK-FUNCTION: lend, run the real client, release, compare the host.
scenario() {
  local plugin=$1 method=$2 check=$3
  host_snapshot >"$TMP/before"
  lend "$plugin" "$method" || return
  if "$check"; then ok "$plugin/$method: ${what:-real client works as libvirt-qemu}"; else not_ok "$plugin/$method: $what"; fi
  unlend
  same_host "$TMP/before" "$plugin/$method: release"
}

pipewire_client() {
  what="pw-cli info 0 and a pw-cat stream as libvirt-qemu"
  as_qemu "${envs[@]}" -- timeout 10 pw-cli info 0 >"$TMP/out" 2>&1 || { cat "$TMP/out"; return 1; }
  grep -q 'PipeWire' "$TMP/out" || return 1
  as_qemu "${envs[@]}" -- timeout 10 pw-cat --playback "$TMP/tone.wav" >"$TMP/out" 2>&1 ||
    { sed 's/^/#   /' "$TMP/out"; return 1; }
}
pulse_client() {
  what="pactl info and paplay as libvirt-qemu"
  as_qemu "${envs[@]}" -- timeout 10 pactl info >"$TMP/out" 2>&1 || { sed 's/^/#   /' "$TMP/out"; return 1; }
  grep -q 'Server Name: pulseaudio' "$TMP/out" || return 1
  as_qemu "${envs[@]}" -- timeout 10 paplay "$TMP/tone.wav" >"$TMP/out" 2>&1 ||
    { sed 's/^/#   /' "$TMP/out"; return 1; }
}
jack_client() {
  what="jack_lsp through PipeWire's libjack as libvirt-qemu"
  as_qemu "${envs[@]}" -- timeout 10 jack_lsp >"$TMP/out" 2>&1 || { sed 's/^/#   /' "$TMP/out"; return 1; }
  grep -q ':' "$TMP/out"
}
wayland_client() {
  what="weston-simple-shm as libvirt-qemu"
  local rc=0
  as_qemu "${envs[@]}" -- timeout 3 weston-simple-shm >"$TMP/out" 2>&1 || rc=$?
  # It draws until killed: exit 124 (timeout) is success; anything else is a failure.
  [[ $rc == 124 ]] && ! grep -qi 'error' "$TMP/out" || { sed 's/^/#   /' "$TMP/out"; return 1; }
}
other_user_refused() {
  # Another unprivileged user cannot even reach the lend directory.
  local target=${envs[0]#*=}
  target=${target#unix:}
  [[ -d $target ]] && target=$target/pipewire-0
  what="another user (shother) cannot reach $target"
  ! setpriv --reuid=shother --regid=shother --clear-groups /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' "$target" 2>/dev/null
}

scenario pipewire bind pipewire_client
scenario pipewire proxy pipewire_client
scenario pipewire acl pipewire_client
scenario pipewire bind other_user_refused
scenario pulseaudio bind pulse_client
scenario pulseaudio proxy pulse_client
scenario pulseaudio group pulse_client
scenario jack bind jack_client
scenario wayland bind wayland_client
scenario wayland proxy wayland_client
scenario wayland proxy other_user_refused

# Why the proxy exists: socat relays bytes only, so the wl_shm pool's fd never arrives.
# As people do it today: socat runs as the owner and listens where QEMU's user can connect.
install -d -m 755 -o "$SH_UID" -g "$SH_GID" "$TMP/socat"
setpriv --reuid="$SH_UID" --regid="$SH_GID" --clear-groups \
  socat "UNIX-LISTEN:$TMP/socat/wl,fork,mode=777" "UNIX-CONNECT:$SH_WAYLAND_SOCKET" 2>"$TMP/socat.err" &
socat_pid=$!
wait_until 2 test -S "$TMP/socat/wl" || true
[[ -S $TMP/socat/wl ]] || not_ok "socat did not start: $(cat "$TMP/socat.err")"
as_qemu WAYLAND_DISPLAY="$TMP/socat/wl" -- timeout 3 weston-simple-shm >"$TMP/out" 2>&1
if grep -q 'invalid arguments for wl_shm' "$TMP/out"; then
  ok "through socat weston-simple-shm fails: $(grep -m1 'invalid arguments' "$TMP/out")"
else
  not_ok "through socat weston-simple-shm did not fail as expected: $(head -3 "$TMP/out")"
fi
kill "$socat_pid" 2>/dev/null
wait "$socat_pid" 2>/dev/null
socat_pid=

finish
