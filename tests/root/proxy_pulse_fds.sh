#!/usr/bin/env bash
# proxy_pulse_fds.sh - which descriptors real clients pass through a proxy lend (issue 22).
#
# The proxy sends the descriptors of a read with that read's first byte (proxy/relay.cpp,
# Relay::pump): early, never late. Wayland and PipeWire queue descriptors, so early is what
# they need; PulseAudio pairs them with frames, so it must pass none through the proxy. The
# pulseaudio plugin's client.conf (enable-shm = no) turns shared memory, memfd and srbchannel
# off on QEMU's side. Shown here with real servers of a desktop user (tests/env/desktop.sh):
# strace on the hook's proxy counts the SCM_RIGHTS messages it receives and sends while QEMU's
# user runs a real client through it:
#   - PulseAudio: pactl info and paplay (a stream with the cookie): none, and audio plays;
#   - pipewire-pulse, where installed: pactl info and paplay: none;
#   - PipeWire: pw-cat, whose stream passes memfds and eventfds: some (the count is real).
#
#   bash tests/root/proxy_pulse_fds.sh /abs/path/to/sockhook
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools strace pactl paplay pw-cat pulseaudio setpriv

uuids=()
cleanup() {
  [[ -n ${strace_pid:-} ]] && kill -INT "$strace_pid" 2>/dev/null && wait "$strace_pid"
  desktop_release_all pfds
}
desktop_up
on_exit cleanup
# No set -e here (a failed check goes on): each setup step dies, naming itself, if it fails.
"$DESKTOP" make-wav "$TMP/tone.wav" || die "setup: cannot make $TMP/tone.wav (desktop.sh make-wav)"
{ install -d -m 755 "$TMP/etc/plugins" && install -m 644 "$REPO"/plugins/*.xml "$TMP/etc/plugins/" &&
    : >"$TMP/etc/policy.conf" && chmod 644 "$TMP/etc/policy.conf"; } ||
    die "setup: cannot install the plugins and policy in $TMP/etc"
warm_run_sockhook || die "setup: cannot make /run/sockhook and its state directory"
qemu_home=$TMP/qemu-home
install -d -m 700 -o libvirt-qemu -g libvirt-qemu "$qemu_home" ||
    die "setup: cannot make QEMU's home $qemu_home"

# as_qemu CMD...: CMD as QEMU's user in the stand-in domain's cgroup, with only $envs.
as_qemu() {
  in_domain_cgroup "$lend_id" setpriv --reuid=libvirt-qemu --regid=libvirt-qemu --init-groups \
    env -i HOME="$qemu_home" XDG_RUNTIME_DIR="$qemu_home" PATH=/usr/bin:/bin LANG=C.UTF-8 \
    "${envs[@]}" "$@"
}

n=0
# lend PLUGIN: a proxy lend of PLUGIN; sets $xml, $envs and $proxy (the proxy's pid).
lend() {
  n=$((n + 1))
  local uuid
  uuid=$(printf '5f3e2d1c-0b9a-4877-8665-%012d' "$n")
  uuids+=("$uuid")
  desktop_lend pfds "$uuid" "$1" proxy ||
    die "$1: prepare failed: $(cat "$TMP/err")"
  proxy=$(sed -n 's/.* pid="\([0-9]*\)".*/\1/p' "/run/sockhook/state/$uuid.xml" | head -1)
  [[ -n $proxy && -d /proc/$proxy ]] || die "$1: no proxy pid in the journal"
}
unlend() {
  printf '%s' "$xml" | "$SOCKHOOK" hook --config-dir "$TMP/etc" pfds release end - 2>/dev/null ||
    not_ok "release failed"
}

# traced CMD...: runs CMD with strace on $proxy; leaves the trace in $TMP/trace.
traced() {
  strace -qq -f -e trace=recvmsg,sendmsg -e signal=none -o "$TMP/trace" -p "$proxy" &
  strace_pid=$!
  wait_until 5 grep -q "^TracerPid:[[:space:]]*$strace_pid$" "/proc/$proxy/status" ||
    die "strace did not attach to the proxy"
  local rc=0
  "$@" || rc=$?
  kill -INT "$strace_pid"
  wait "$strace_pid"
  strace_pid=
  return "$rc"
}
# fd_messages: SCM_RIGHTS messages the proxy received and sent in $TMP/trace.
fd_messages() { grep -c 'SCM_RIGHTS' "$TMP/trace"; }
# relayed: messages the proxy sent in $TMP/trace.
relayed() { grep -c '^[0-9]* *sendmsg(.* = [0-9]' "$TMP/trace"; }

# pulse_client SERVER-NAME: pactl info names SERVER-NAME, and paplay plays the tone.
pulse_client() {
  if as_qemu timeout 10 pactl info >"$TMP/out" 2>&1 && grep -q "Server Name: .*$1" "$TMP/out" &&
    as_qemu timeout 10 paplay "$TMP/tone.wav" >>"$TMP/out" 2>&1; then
    return 0
  fi
  sed 's/^/#   /' "$TMP/out"
  return 1
}

# scenario PLUGIN WHAT CLIENT... : a proxy lend of PLUGIN, CLIENT traced; sets $fds, $sent.
scenario() {
  local plugin=$1 what=$2
  shift 2
  host_snapshot >"$TMP/before"
  lend "$plugin"
  if traced "$@"; then ok "$what through the proxy works as libvirt-qemu"; else not_ok "$what failed"; fi
  fds=$(fd_messages)
  sent=$(relayed)
  say "$what: the proxy sent $sent messages; $fds with SCM_RIGHTS (received and sent)"
  unlend
  same_host "$TMP/before" "$what: release"
}

"$DESKTOP" start pulseaudio >/dev/null || die "cannot start pulseaudio"
scenario pulseaudio "PulseAudio: pactl info and paplay" pulse_client pulseaudio
check "PulseAudio passed messages through the proxy ($sent)" test "$sent" -gt 0
check "PulseAudio passed no descriptor through the proxy ($fds)" test "$fds" -eq 0

if command -v pipewire-pulse >/dev/null; then
  "$DESKTOP" stop pulseaudio >/dev/null
  "$DESKTOP" start pipewire >/dev/null || die "cannot start pipewire"
  "$DESKTOP" start pipewire-pulse >/dev/null || die "cannot start pipewire-pulse"
  scenario pulseaudio "pipewire-pulse: pactl info and paplay" pulse_client 'on PipeWire'
  check "pipewire-pulse passed messages through the proxy ($sent)" test "$sent" -gt 0
  check "pipewire-pulse passed no descriptor through the proxy ($fds)" test "$fds" -eq 0
  "$DESKTOP" stop pipewire-pulse >/dev/null
else
  say "pipewire-pulse is not installed: only PulseAudio"
fi

# The count is real: PipeWire's stream passes memfds and eventfds through the same proxy.
"$DESKTOP" start pipewire >/dev/null || die "cannot start pipewire"
scenario pipewire "PipeWire: pw-cat" as_qemu timeout 10 pw-cat --playback "$TMP/tone.wav"
check "PipeWire's stream passed descriptors through the proxy ($fds)" test "$fds" -gt 0

finish
