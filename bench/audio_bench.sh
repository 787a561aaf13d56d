#!/usr/bin/env bash
# What a listener hears: real PulseAudio and PipeWire streams with small buffers, played as
# QEMU's user into a desktop user's real servers, through each way of reaching them. No
# assertions: it prints a table and can write JSON.
#
#   sudo flock -o /tmp/sockhook-host.lock bench/audio_bench.sh [--build DIR] [--seconds N]
#        [--load idle|busy|both] [--only pulseaudio|pipewire] [--json FILE]
#        [--rounds 3] [--pulse-latencies "5 10 20"] [--pw-quanta "64 128 256"]
#        [--sockhook BIN] [--check]
#
# --check: can every path play? A few seconds per path (--seconds 3), one round, idle, one
# buffer each (20 ms, 256 frames); then one line per path, "ok   SERVER PATH: ..." or
# "FAIL SERVER PATH: why", and exit 1 when any path failed (tests/root/audio_paths.sh runs
# it in CI). Underruns and latency are printed, never judged. A path fails when its client
# exits before the end of its slice, when its lend cannot be made, or when the server reports
# nothing played for its stream (PulseAudio: pacat's stream time, the server's playback
# position, stays 0; PipeWire: the stream never gets a node in the graph, or the server's
# profiler shows that node in no graph cycle). --sockhook BIN tests that binary instead of --build's.
#
# Paths, side by side in one run:
#   direct  the owner's own client on the owner's socket (the reference)
#   no-shm  (PulseAudio) the same with shared memory off: PulseAudio gives shared memory only
#           to clients of its own uid, so QEMU's stream (another uid) always goes through the
#           socket; this is the transport every other path has
#   bind    a real `sockhook hook ... prepare/start` bind lend, client as libvirt-qemu
#   proxy   the same with method='proxy' (the hook starts `sockhook proxy` as the owner)
#   socat   `socat UNIX-LISTEN:...,fork,user=libvirt-qemu,mode=600 UNIX-CONNECT:...` as the
#           guides set it up (root runs it: only root can chown the socket to libvirt-qemu)
#   context (PipeWire) method='context': a PipeWire security context that the hook's holder
#           creates for the VM (PipeWire >= 1.2 and a sockhook built with the holder, i.e.
#           Debian 13; elsewhere the table says why not). WirePlumber needs sockhook's rules
#           (dist/wireplumber): the bench installs them for its run unless they are there.
# Streams: PulseAudio `pacat --latency-msec` 5, 10, 20; PipeWire `pw-cat --latency` 64, 128,
# 256 frames at 48 kHz. --seconds each (30), played in --rounds slices (3) that take turns
# with the other paths, so that a burst of other work on the machine hits every path alike.
# Once idle, once with `stress-ng --cpu 2`.
#
# What is counted (what the servers themselves report):
#   PulseAudio: `pacat -v` prints "Stream underrun." for every PA_COMMAND_UNDERFLOW the server
#     sends: the sink input ran dry and the sink played silence. Latency: pacat's own
#     "Latency: N usec" lines (pa_stream_get_latency, every 50 ms), mean and max.
#   PipeWire: the server's profiler (module-profiler, what pw-top shows; read with
#     pw-profiler as the owner), one record per graph cycle. xrun = a cycle at whose end the
#     stream's node had not finished (the sink played without it); late = a cycle where the
#     driver woke more than 1.3 quanta after the previous one. Latency: the quantum the
#     graph ran at (pw_stream's queue is one quantum, the null sink adds no delay).
#
# Priority, as rtkit gives it on a desktop (rtkit-daemon needs the system bus and
# CAP_SYS_RESOURCE-free rlimits, which this container lacks, so root applies rtkit's result
# with chrt, as rtkit-daemon does): every thread that asks rtkit for realtime gets SCHED_RR
# with reset-on-fork at its requested priority capped at rtkit's maximum 20, and the
# processes that ask for high priority get nice -11. Who asks: PulseAudio's sink thread
# (realtime-priority 5) and main thread (nice -11); PipeWire's data thread (88, capped to 20)
# and main thread (nice -11); pw-cat's data thread (libpipewire's module-rt: 83 → 20) and
# main thread (nice -11). pacat and socat ask for nothing (libpulse clients do not use
# rtkit), so they stay SCHED_OTHER nice 0, like QEMU's audio thread. The proxy runs as the
# hook started it (SCHED_OTHER since issue 22; SCHED_RR 1 before); the table says what it
# found.
#
# AUDIO_BENCH_PROXY_SCHED=other demotes the proxy to SCHED_OTHER first (to compare);
# AUDIO_BENCH_KEEP=1 keeps every client's output and profiler log in the temporary directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

build=build
sockhook=
check=no
seconds=
json=
load=both
only=
rounds=
pulse_latencies=
pw_quanta=
while (($#)); do
  case $1 in
    --build) build=$2; shift ;;
    --sockhook) sockhook=$2; shift ;;
    --check) check=yes ;;
    --seconds) seconds=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --json) json=$2; shift ;;
    --load) load=$2; shift ;;
    --only) only=$2; shift ;;
    --pulse-latencies) pulse_latencies=$2; shift ;;  # e.g. "5"
    --pw-quanta) pw_quanta=$2; shift ;;              # e.g. "64 128"
    *) echo "audio_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# --check: the smallest run that still plays every path (each default only where not given).
if [[ $check == yes ]]; then
  : "${seconds:=3}" "${rounds:=1}" "${pulse_latencies:=20}" "${pw_quanta:=256}"
  [[ $load == both ]] && load=idle
fi
: "${seconds:=30}" "${rounds:=3}" "${pulse_latencies:=5 10 20}" "${pw_quanta:=64 128 256}"
((EUID == 0)) || { echo "audio_bench.sh: needs root (users, lends, realtime priority)" >&2; exit 1; }
sockhook=$(realpath "${sockhook:-$build/sockhook}")
[[ -x $sockhook ]] || { echo "build first: cmake --build $build" >&2; exit 1; }
tools=(pacat pw-cat pw-profiler pulseaudio pipewire socat chrt setpriv python3)
[[ $load == idle ]] || tools+=(stress-ng)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null || { echo "audio_bench.sh: $t is missing (tests/deps.sh installs it)" >&2; exit 1; }
done
# The servers and proxies we start must not inherit the caller's lock (flock without -o
# passes its descriptor on): a daemon holding it would block every other user of the host.
# (bash reads this script through fd 255: that one stays.)
# No redirection on the loop: bash would keep the caller's stderr in a spare fd > 2 while it
# runs, the loop would close that one too, and stderr would stay /dev/null for the rest of
# the run (it did: every progress line and error went nowhere).
for fd in "/proc/$$/fd/"*; do
  fd=${fd##*/}
  if ((fd > 2 && fd != 255)); then eval "exec $fd>&-"; fi
done

# Our own desktop user and state, so nothing of the test suite's desktop user is touched.
export SH_USER=shaudio SH_OTHER=shaudio SH_STATE=/run/sockhook-audio-bench
desktop=$repo/tests/env/desktop.sh
qemu_uid=$(id -u libvirt-qemu)
qemu_gid=$(getent group libvirt-qemu | cut -d: -f3)
qemu_gid=${qemu_gid:-$(id -g libvirt-qemu)}

tmp=$(mktemp -d /tmp/sockhook-audio-XXXXXX)
chmod 755 "$tmp"
created_user=no
id "$SH_USER" >/dev/null 2>&1 || created_user=yes
lent=()      # domain names of our lends, to release
bg=()        # our background pids (socat, stress-ng)
cleanup() {
  set +e
  local p l
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${bg[@]}"; do wait "$p" 2>/dev/null; done
  for l in "${lent[@]}"; do release_lend "$l"; done
  declare -F wp_rules_remove >/dev/null && wp_rules_remove
  declare -F remove_cgroups >/dev/null && remove_cgroups
  if [[ $created_user == yes ]]; then "$desktop" teardown --users >/dev/null 2>&1; else "$desktop" teardown >/dev/null 2>&1; fi
  # AUDIO_BENCH_KEEP=1 keeps every client's output and profiler log for a look.
  if [[ ${AUDIO_BENCH_KEEP:-} == 1 ]]; then echo "audio_bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$desktop" user >/dev/null
uid=$(id -u "$SH_USER")
runtime=/run/user/$uid
etc=$tmp/etc
install -d -m 755 "$etc/plugins" "$tmp/out" "$tmp/qhome" "$tmp/socat" "$tmp/prof"
chown libvirt-qemu "$tmp/qhome"
chown "$SH_USER" "$tmp/prof"
install -m 644 "$repo"/plugins/*.xml "$etc/plugins/"

slice=$((seconds / rounds > 0 ? seconds / rounds : 1))
# The audio: --seconds + 5 s of low noise, 48 kHz stereo s16 (pw-cat reads WAV, pacat raw).
python3 - "$tmp/noise" "$((seconds + 5))" <<'PY'
import random, struct, sys, wave
path, secs = sys.argv[1], int(sys.argv[2])
chunk = b"".join(struct.pack("<hh", random.randint(-300, 300), random.randint(-300, 300))
                 for _ in range(4800))
with wave.open(path + ".wav", "wb") as w, open(path + ".raw", "wb") as r:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
    for _ in range(secs * 10):
        w.writeframes(chunk); r.write(chunk)
PY
chmod 644 "$tmp"/noise.*

# ---------------------------------------------------------------- realtime, as rtkit gives it
# rt_thread TID PRIO: what rtkit's MakeThreadRealtime does (SCHED_RR | SCHED_RESET_ON_FORK).
rt_thread() { chrt -r -R -p "$2" "$1" >/dev/null 2>&1 || true; }
# rt_high PID: what MakeThreadHighPriority does for the main thread (nice -11 requested).
rt_high() { renice -n -11 -p "$1" >/dev/null 2>&1 || true; }
pidof_server() { cat "$SH_STATE/$1.pid"; }
# rt_threads PID PRIO: every thread but the main one (the audio/data threads).
rt_threads() {
  local t
  for t in /proc/"$1"/task/*; do
    t=${t##*/}
    [[ $t == "$1" ]] || rt_thread "$t" "$2"
  done
}
rt_servers_pulse() {
  local p; p=$(pidof_server pulseaudio)
  rt_high "$p"
  rt_threads "$p" 5
}
rt_servers_pipewire() {
  local p; p=$(pidof_server pipewire)
  rt_high "$p"
  rt_threads "$p" 20
  rt_high "$(pidof_server wireplumber)"
}
# rt_client_pwcat PID: pw-cat's data thread appears once it connects; wait (bounded).
rt_client_pwcat() {
  local pid=$1 i
  local -a tasks
  for ((i = 0; i < 100; i++)); do
    tasks=(/proc/"$pid"/task/*)
    ((${#tasks[@]} >= 2)) && break
    sleep 0.02
  done
  rt_high "$pid"
  rt_threads "$pid" 20
}
priority_note="rtkit's result applied with chrt: server audio threads SCHED_RR (PulseAudio 5, PipeWire 20), servers nice -11; pw-cat data thread SCHED_RR 20, nice -11; pacat and socat SCHED_OTHER nice 0 (they do not ask rtkit)"
# proxy_sched PLUGIN: how the hook left the proxy it just started (the proxy of the newest
# lend); AUDIO_BENCH_PROXY_SCHED=other first demotes it to SCHED_OTHER, to see the difference.
proxies_seen=
# lend_proxy_pid DIR: the pid of the proxy (or holder) of the lend in DIR, from its journal.
lend_proxy_pid() {
  local uuid=${1##*/libvirt-}
  sed -n 's/.*kind="proxy"[^>]* pid="\([0-9]*\)".*/\1/p' "/run/sockhook/state/$uuid.xml" 2>/dev/null | head -n1
}
proxy_sched() {
  local pid
  pid=$(lend_proxy_pid "${pulse_lend[proxy]:-}")
  [[ $1 == pipewire ]] && pid=$(lend_proxy_pid "${pw_lend[proxy]:-}")
  [[ -n $pid ]] || { proxies_seen+="; $1 proxy: not found in its lend's journal"; return 0; }
  [[ ${AUDIO_BENCH_PROXY_SCHED:-} == other ]] && chrt -o -p 0 "$pid"
  proxies_seen+="; $1 proxy: $(ps -o cls=,rtprio=,ni= -p "$pid" | awk '{ print ($1 == "TS" ? "SCHED_OTHER nice " $3 : "SCHED_" $1 " " $2) }') (as the hook started it)"
}

# ---------------------------------------------------------------- lends through the real hook
# domain_cgroup ID: the cgroup v2 directory libvirt gives a running domain of that id without
# systemd (/machine/qemu-ID-NAME.libvirt-qemu), made for the bench and removed at exit; in
# $lend_cg. A proxy lend serves only QEMU's uid in its domain's cgroup (docs/invariants.md,
# S10), so every lend's client runs in its domain's cgroup, as QEMU does.
cg_root=$(findmnt -n -o TARGET -t cgroup2 | head -n1 || true)
cg_made_machine=no
cgroups=()
domain_cgroup() {
  [[ -n $cg_root ]] || { lend_error="no cgroup2 hierarchy is mounted"; return 1; }
  if [[ ! -d $cg_root/machine ]]; then
    mkdir "$cg_root/machine" && cg_made_machine=yes
  fi
  lend_cg=$cg_root/machine/qemu-$1-audio-bench.libvirt-qemu
  mkdir -p "$lend_cg"
  cgroups+=("$lend_cg")
}
remove_cgroups() {
  local d
  for d in "${cgroups[@]}"; do rmdir "$d" 2>/dev/null; done
  [[ $cg_made_machine == no ]] || rmdir "$cg_root/machine" 2>/dev/null
}
# "${in_cgroup[@]}" DIR CMD...: CMD in cgroup DIR (root moves it there, as libvirt moves
# QEMU); a command, not a function, for timeout to run.
# shellcheck disable=SC2016 # the script is bash -c's
in_cgroup=(bash -c 'echo $$ >"$0/cgroup.procs" || { echo "audio_bench: cannot join $0" >&2; exit 99; }
  exec "$@"')

n_lend=0
# make_lend PLUGIN METHOD: a real lend for a new running domain; sets $lend_dir and its
# domain's cgroup $lend_cg, or, when the hook fails or makes no lend directory, returns 1
# with the reason in $lend_error (the path then fails: a client that cannot find its lend
# would measure nothing).
make_lend() {
  local plugin=$1 method=$2 name uuid id
  n_lend=$((n_lend + 1))
  name=audio-bench-$n_lend
  id=$((94300 + n_lend))  # far from the small ids a libvirtd hands out
  uuid=$(cat /proc/sys/kernel/random/uuid)
  lend_dir='' lend_error='' lend_cg=''
  domain_cgroup "$id" || return 1
  printf '[%s]\n%s = *\n' "$uuid" "$SH_USER" >>"$etc/policy.conf"
  printf "<domain type='kvm' id='%s'><name>%s</name><uuid>%s</uuid><metadata><sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'><sockhook:socket plugin='%s' owner='%s' method='%s'/></sockhook:sockets></metadata></domain>" \
    "$id" "$name" "$uuid" "$plugin" "$SH_USER" "$method" >"$tmp/$name.xml"
  lent+=("$name")  # released at exit even if only prepare went through
  local op
  for op in prepare start; do
    "$sockhook" hook --config-dir "$etc" "$name" "$op" begin - <"$tmp/$name.xml" 2>"$tmp/hook.err" || {
      lend_error="the hook's $op failed: $(tr '\n' ' ' <"$tmp/hook.err")"
      return 1
    }
  done
  # The hook's lend directory (README, Files).
  [[ -d /run/sockhook/libvirt-$uuid ]] ||
    { lend_error="the hook made no /run/sockhook/libvirt-$uuid"; return 1; }
  lend_dir=/run/sockhook/libvirt-$uuid
}
release_lend() {
  "$sockhook" hook --config-dir "$etc" "$1" release end - <"$tmp/$1.xml" 2>/dev/null || true
}
# lend_path PLUGIN METHOD DIRS: a METHOD lend of PLUGIN, its directory in the associative
# array DIRS[METHOD], or "" and the reason in lend_errors["PLUGIN METHOD"].
declare -A lend_errors lend_cgroup
lend_path() {
  local -n dirs=$3
  if make_lend "$1" "$2"; then
    dirs["$2"]=$lend_dir
    lend_cgroup["$1 $2"]=$lend_cg
  else
    # shellcheck disable=SC2034 # the caller's associative array
    dirs["$2"]=''
    lend_errors["$1 $2"]=$lend_error
    echo "audio_bench.sh: the $2 lend of $1: $lend_error" >&2
  fi
}
# bind_and_proxy PLUGIN DIRS: a bind and a proxy lend of PLUGIN (lend_path); then how the
# hook left the proxy.
bind_and_proxy() {
  lend_path "$1" bind "$2"
  lend_path "$1" proxy "$2"
  proxy_sched "$1"
}
# lend_failed SERVER PATH BUFFER: the JSON object of a path whose lend could not be made.
lend_failed() {
  python3 -c 'import json, sys; print(json.dumps({"server": sys.argv[1], "path": sys.argv[2],
      "buffer": sys.argv[3], "ok": False, "error": "cannot lend: " + sys.argv[4]}))' \
    "$1" "$2" "$3" "${lend_errors["$1 $2"]}"
}

# socat_relay SOCKET TARGET: socat as the guides run it, listening on SOCKET for QEMU's user
# and connecting each client to TARGET; waits (bounded) for SOCKET. Its pid in $socat_pid.
socat_relay() {
  socat "UNIX-LISTEN:$1,fork,user=libvirt-qemu,mode=600" "UNIX-CONNECT:$2" </dev/null >/dev/null 2>&1 &
  socat_pid=$!
  bg+=("$socat_pid")
  local i
  for ((i = 0; i < 100; i++)); do [[ -S $1 ]] && break; sleep 0.05; done
}

# QEMU's identity as libvirt sets it up, with a clean environment; and the owner's session.
as_qemu=(setpriv --reuid="$qemu_uid" --regid="$qemu_gid" --init-groups
  env -i HOME="$tmp/qhome" PATH=/usr/bin:/bin LANG=C.UTF-8)
as_owner=("$desktop" as-user)

# ---------------------------------------------------------------- PulseAudio
# pulse_run PATH LATENCY_MS OUT → one JSON object (pacat's output in OUT)
pulse_run() {
  local path=$1 lat=$2 out=$3
  local -a run
  case $path in
    direct) run=("${as_owner[@]}") ;;
    no-shm) run=(env SH_EXTRA_ENV="PULSE_CLIENTCONFIG=$tmp/socat/pulse-client.conf" "${as_owner[@]}") ;;
    bind | proxy)
      [[ -n ${pulse_lend[$path]} ]] || { lend_failed pulseaudio "$path" "$lat ms"; return 0; }
      run=("${in_cgroup[@]}" "${lend_cgroup["pulseaudio $path"]}" "${as_qemu[@]}" PULSE_SERVER="unix:${pulse_lend[$path]}/pulse-native"
        PULSE_COOKIE="${pulse_lend[$path]}/pulse-cookie" PULSE_CLIENTCONFIG="${pulse_lend[$path]}/pulse-client.conf") ;;
    socat) run=("${as_qemu[@]}" PULSE_SERVER="unix:$tmp/socat/pulse-native" PULSE_COOKIE="$tmp/socat/pulse-cookie"
      PULSE_CLIENTCONFIG="$tmp/socat/pulse-client.conf") ;;
  esac
  local rc=0
  timeout -s INT "$slice" "${run[@]}" pacat -v --latency-msec="$lat" --raw --rate=48000 \
    --channels=2 --format=s16le --stream-name="audio-bench-$path" <"$tmp/noise.raw" >"$out" 2>&1 || rc=$?
  python3 - "$out" "$path" "$lat" "$rc" "$slice" <<'PY'
import json, re, sys
out, path, lat, rc, secs = sys.argv[1:6]
text = open(out, errors="replace").read().replace("\r", "\n")
lat_us = [int(m) for m in re.findall(r"Latency: (\d+) usec", text)]
lat_us = [l for l in lat_us if l > 0]
# "Time: N sec" is pa_stream_get_time: the server's playback position in the stream (its
# read index, from the timing info it sends), so the server's own word on what it played.
played = max([float(m) for m in re.findall(r"Time: ([0-9.]+) sec", text)] or [0.0])
err = [l.strip() for l in text.splitlines() if re.search(r"failed|error|refused", l, re.I)]
# timeout exits 124 when it ended the client at the end of the slice: the client played
# until we stopped it. Any other status is the client giving up by itself.
if rc != "124":
    error = f"pacat exited {rc} before the end of its {secs} s" + (f": {err[0]}" if err else "")
elif played <= 0:
    error = "the server reports nothing played for the stream (pacat's stream time stayed 0)"
else:
    error = None
print(json.dumps({"server": "pulseaudio", "path": path, "buffer": f"{lat} ms",
    "underruns": text.count("Stream underrun."), "played_s": played,
    "latency_mean_ms": round(sum(lat_us) / len(lat_us) / 1000, 2) if lat_us else None,
    "latency_max_ms": round(max(lat_us) / 1000, 2) if lat_us else None,
    "ok": error is None, "error": error}))
PY
}

declare -A pulse_lend pw_lend
pulse_setup() {
  "$desktop" start pulseaudio >/dev/null
  rt_servers_pulse
  bind_and_proxy pulseaudio pulse_lend  # the socket and the companion files (cookie, client.conf)
  # socat as the guides run it, with the cookie and client.conf a user would copy by hand.
  install -m 644 "$(getent passwd "$SH_USER" | cut -d: -f6)/.config/pulse/cookie" "$tmp/socat/pulse-cookie"
  printf 'enable-shm = no\n' >"$tmp/socat/pulse-client.conf"
  socat_relay "$tmp/socat/pulse-native" "$runtime/pulse/native"
}

# ---------------------------------------------------------------- PipeWire
# pw_run PATH QUANTUM OUT → one JSON object (pw-cat's output in OUT)
pw_run() {
  local path=$1 q=$2 out=$3 prof=$tmp/prof/profiler.log
  local -a run
  case $path in
    direct) run=("${as_owner[@]}") ;;
    bind | proxy | context)
      [[ -n ${pw_lend[$path]} ]] || { lend_failed pipewire "$path" "$q frames"; return 0; }
      run=("${in_cgroup[@]}" "${lend_cgroup["pipewire $path"]}" "${as_qemu[@]}" PIPEWIRE_RUNTIME_DIR="${pw_lend[$path]}") ;;
  esac
  rm -f "$prof"
  # The profiler reports the graph cycle by cycle; it runs as the owner (only the owner's
  # own clients may bind it), in our tmp dir, where it also drops its plot scripts.
  (cd "$tmp/prof" && exec "$desktop" as-user pw-profiler -o "$prof") >"$tmp/profiler.out" 2>&1 &
  local prof_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do grep -q 'Attaching' "$tmp/profiler.out" 2>/dev/null && break; sleep 0.05; done
  local rc=0
  timeout -s INT "$slice" "${run[@]}" pw-cat -v -p --latency="$q" \
    -P "{ node.name = audio-bench-$path }" "$tmp/noise.wav" >"$out" 2>&1 &
  local cat_pid=$!
  # timeout → setpriv/env exec → pw-cat: the stream's process is timeout's child.
  local pw_pid=
  for ((i = 0; i < 100; i++)); do
    pw_pid=$(pgrep -P "$cat_pid" -x pw-cat || true)
    [[ -n $pw_pid ]] && break
    sleep 0.02
  done
  [[ -n $pw_pid ]] && rt_client_pwcat "$pw_pid"
  wait "$cat_pid" || rc=$?
  sleep 0.2
  kill -INT "$prof_pid" 2>/dev/null || true
  wait "$prof_pid" 2>/dev/null || true
  cp "$prof" "${out%.txt}.profiler" 2>/dev/null || true
  python3 - "$prof" "$out" "$path" "$q" "$rc" "$slice" <<'PY'
import json, re, sys
prof, out, path, q, rc, secs = sys.argv[1:7]
text = open(out, errors="replace").read()
# Our stream's node, as pw-cat -v names it once the stream is in the graph; the profiler
# lists every follower of the driver. Without it, no slot is ours: a stream that never got
# into the graph played nothing, whatever else ran.
node = re.search(r"^stream node (\d+)$", text, re.M)  # not "stream node N error: ..."
node = node.group(1) if node else None
cycles = xruns = late = 0
periods = []
try:
    rows = open(prof).read().splitlines()
except OSError:
    rows = []
for row in rows:
    c = row.split("\t")
    # 4 driver columns (wake-up interval, end, delay, period), then 8 per follower slot:
    # id, signal, awake, finish, scheduling, duration, status, 0 (blank while not running).
    slots = [c[i:i + 8] for i in range(4, len(c) - 7, 8)]
    ours = [s for s in slots if node is not None and s[0].strip() == node]
    if not ours:
        continue
    cycles += 1
    d1, period = float(c[0]), float(c[3])
    periods.append(period)
    if ours[0][6].strip() != "3":     # 3 = finished
        xruns += 1
    if d1 > 1.3 * period:
        late += 1
err = [l.strip() for l in text.splitlines() if re.search(r"error|failed|refused", l, re.I)]
state = re.findall(r"stream state changed .*", text)
period = sorted(periods)[len(periods) // 2] / 1000 if periods else None
# timeout exits 124 when it ended the client at the end of the slice (see pulse_run).
if rc != "124":
    error = f"pw-cat exited {rc} before the end of its {secs} s" + (f": {err[0]}" if err else "")
elif node is None:
    error = "the stream never got into the graph (pw-cat -v names no stream node" + \
        (f"; last: {state[-1]}" if state else "; no stream state at all") + ")"
elif cycles == 0:
    # Whether the node played, not how well: "finished" reads differently in PipeWire 1.4's
    # profiler (the Debian 13 root showed nearly every cycle "missed" on the direct path).
    error = f"the server's profiler shows the stream's node {node} in no graph cycle"
else:
    error = None
print(json.dumps({"server": "pipewire", "path": path, "buffer": f"{q} frames", "node": node,
    "cycles": cycles, "xruns": xruns, "late_wakeups": late,
    "quantum_ms": round(period, 2) if period else None, "ok": error is None, "error": error}))
PY
}

# context_unavailable: why method context cannot run here (nothing when it can).
context_unavailable() {
  local v major minor
  v=$(pipewire --version 2>/dev/null | sed -n 's/.*libpipewire \([0-9][0-9.]*\).*/\1/p' | head -n1)
  IFS=. read -r major minor _ <<<"${v:-0.0.0}"
  if ((major < 1 || (major == 1 && minor < 2))); then
    echo "PipeWire ${v:-?} has no security context (method context needs PipeWire >= 1.2)"
  elif [[ ! -x $(dirname "$sockhook")/sockhook-context-holder ]]; then
    echo "no sockhook-context-holder beside $sockhook (built without libpipewire >= 1.2)"
  elif ! command -v wireplumber >/dev/null; then
    echo "WirePlumber is not installed"
  fi
}
# WirePlumber grants a context's client nothing without sockhook's rules (dist/wireplumber,
# which install.sh puts in place); for this run we install them where they are not, and
# remove them at exit. WirePlumber reads them at start: before the owner's PipeWire starts.
wp_script=/usr/share/sockhook/wireplumber/sockhook-access.lua
wp_conf=/etc/wireplumber/wireplumber.conf.d/sockhook.conf
wp_rules_ours=no
wp_rules_install() {
  [[ -e $wp_conf ]] && return 0
  wp_rules_ours=yes
  install -D -m 644 "$repo/dist/wireplumber/sockhook-access.lua" "$wp_script"
  install -D -m 644 "$repo/dist/wireplumber/sockhook.conf" "$wp_conf"
}
wp_rules_remove() {
  [[ $wp_rules_ours == yes ]] || return 0
  rm -f "$wp_script" "$wp_conf"
  rmdir /usr/share/sockhook/wireplumber /usr/share/sockhook /etc/wireplumber/wireplumber.conf.d \
    /etc/wireplumber 2>/dev/null || true
}
context_why=$(context_unavailable)
pw_paths=(direct bind proxy)
[[ -n $context_why ]] || pw_paths+=(context)

pw_setup() {
  "$desktop" stop pulseaudio >/dev/null
  [[ -n $context_why ]] || wp_rules_install
  "$desktop" start pipewire >/dev/null
  rt_servers_pipewire
  bind_and_proxy pipewire pw_lend
  [[ -n $context_why ]] || lend_path pipewire context pw_lend
}

# pw_socat_error: PipeWire through socat, once (10 s; with --check, one slice): the error
# line the client prints.
pw_socat_error() {
  local socat_secs=10
  [[ $check == no ]] || socat_secs=$slice
  install -d -m 755 "$tmp/socat-pw"
  socat_relay "$tmp/socat-pw/pipewire-0" "$runtime/pipewire-0"
  local s=$socat_pid
  local log=$SH_STATE/pipewire.log from
  from=$(($(stat -c %s "$log") + 1))
  timeout -s INT "$socat_secs" "${as_qemu[@]}" PIPEWIRE_RUNTIME_DIR="$tmp/socat-pw" pw-cat -v -p --latency=128 \
    "$tmp/noise.wav" >"$tmp/out/pipewire-socat.txt" 2>&1 || true
  kill "$s" 2>/dev/null || true
  # The client itself prints no error: its stream connects and then stays paused, because
  # the memfds and eventfds it needs never arrive. The server says why, in its log.
  local state err
  state=$(grep -o 'stream state changed .*' "$tmp/out/pipewire-socat.txt" | tail -1)
  err=$(tail -c +"$from" "$log" | grep -E '\[E\]' | grep -v -i dbus | head -1 | sed 's/.*()\] [^:]*: //')
  echo "pw-cat: \"${state:-no stream}\" and no sound for $socat_secs s; pipewire logs \"${err:-nothing}\""
}

# ---------------------------------------------------------------- the runs
results=$tmp/results.jsonl
: >"$results"
: >"$tmp/expected"
# stress-ng as nobody, in a directory it may write (it refuses to start otherwise).
start_load() {
  install -d -o nobody "$tmp/load"
  (cd "$tmp/load" && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    stress-ng --cpu 2 --temp-path "$tmp/load" </dev/null >"$tmp/out/stress-ng.txt" 2>&1) &
  load_pid=$!
  bg+=("$load_pid")
  sleep 1
  [[ $(pgrep -c -P "$load_pid" stress-ng) -ge 2 ]] ||
    { echo "audio_bench.sh: stress-ng did not start: $(cat "$tmp/out/stress-ng.txt")" >&2; exit 1; }
}
stop_load() {
  kill -TERM "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
}
loads=(idle busy)
[[ $load == both ]] || loads=("$load")
# sweep SERVER RUNNER UNIT BUFFERS PATH...: every load, buffer, round and path in turn,
# RUNNER PATH BUFFER OUT's JSON object (with its load and slice) into $results; the client's
# output stays in OUT under $tmp/out.
sweep() {
  local server=$1 runner=$2 unit=$3 buffers=$4 l b round path
  shift 4
  for l in "${loads[@]}"; do
    [[ $l == busy ]] && start_load
    for b in $buffers; do
      for ((round = 1; round <= rounds; round++)); do
        for path in "$@"; do
          echo "audio_bench: $server $path $b $unit, $l, round $round/$rounds" >&2
          echo "$server $path" >>"$tmp/expected"
          "$runner" "$path" "$b" "$tmp/out/$server-$path-$b-$l-$round.txt" | sed "s/^{/{\"load\": \"$l\", \"seconds\": $slice, /" >>"$results"
        done
      done
    done
    if [[ $l == busy ]]; then stop_load; fi
  done
}
began=$SECONDS

if [[ -z $only || $only == pulseaudio ]]; then
  pulse_setup
  sweep pulseaudio pulse_run ms "$pulse_latencies" direct no-shm bind proxy socat
fi
pw_socat=
if [[ -z $only || $only == pipewire ]]; then
  pw_setup
  pw_socat=$(pw_socat_error)
  sweep pipewire pw_run frames "$pw_quanta" "${pw_paths[@]}"
fi
elapsed=$((SECONDS - began))
priority_note+=$proxies_seen

python3 - "$results" "$json" "$((slice * rounds))" "$rounds" "$priority_note" "$pw_socat" "$elapsed" \
  "$context_why" "$tmp/expected" <<'PY'
import json, sys
res_file, out_file, seconds, rounds, prio, pw_socat, elapsed, context_why, exp_file = sys.argv[1:10]
rows = [json.loads(l) for l in open(res_file) if l.strip()]
expected = set(tuple(l.split()) for l in open(exp_file) if l.strip())
paths = ["direct", "no-shm", "bind", "proxy", "socat", "context"]
# The rounds of one stream add up: counts sum, latency means average, maxima take the max.
table = {}
for r in rows:
    key = (r["load"], r["server"], r["buffer"], r["path"])
    t = table.setdefault(key, {k: r[k] for k in ("load", "server", "buffer", "path")} |
                         {"seconds": 0, "ok": True, "rounds": 0, "errors": []})
    t["seconds"] += r["seconds"]
    t["rounds"] += 1
    t["ok"] &= r["ok"]
    if r.get("error"):
        t["errors"].append(r["error"])
    if r["server"] == "pulseaudio":
        t["underruns"] = t.get("underruns", 0) + r.get("underruns", 0)
        t["played_s"] = round(t.get("played_s", 0) + r.get("played_s", 0), 2)
        if r.get("latency_mean_ms") is not None:
            t.setdefault("_lat", []).append(r["latency_mean_ms"])
            t["latency_max_ms"] = max(t.get("latency_max_ms", 0), r["latency_max_ms"])
    else:
        for k in ("cycles", "xruns", "late_wakeups"):
            t[k] = t.get(k, 0) + r.get(k, 0)
        if r.get("quantum_ms") is not None:
            t["quantum_ms"] = r["quantum_ms"]
for t in table.values():
    lat = t.pop("_lat", None)
    if lat:
        t["latency_mean_ms"] = round(sum(lat) / len(lat), 2)
def ms(v):
    return "?" if v is None else f"{v:.1f}"
print(f"what a listener hears: {seconds} s per stream ({rounds} rounds, taking turns), 48 kHz "
      f"stereo s16; client as libvirt-qemu (direct, no-shm: as the owner)")
print(f"priority: {prio}")
w = 17
for load in ["idle", "busy"]:
    sel = [t for t in table.values() if t["load"] == load]
    if not sel:
        continue
    print()
    print("idle machine" if load == "idle" else "both cores busy (stress-ng --cpu 2)")
    print(f"{'server':11}{'buffer':11}" + "".join(f"{p:>{w}}" for p in paths))
    for server in ["pulseaudio", "pipewire"]:
        bufs = []
        for t in sel:
            if t["server"] == server and t["buffer"] not in bufs:
                bufs.append(t["buffer"])
        bufs.sort(key=lambda b: int(b.split()[0]))
        for b in bufs:
            cells = []
            for p in paths:
                t = table.get((load, server, b, p))
                if t is None:
                    cells.append("no fds" if server == "pipewire" and p == "socat" else
                                 "n/a" if server == "pipewire" and p == "context" else "-")
                elif not t["ok"]:
                    cells.append("failed")
                elif server == "pulseaudio":
                    cells.append(f"{t['underruns']} u {ms(t.get('latency_mean_ms'))}/{ms(t.get('latency_max_ms'))}")
                else:
                    cells.append(f"{t['xruns']} x {t['late_wakeups']} l {ms(t.get('quantum_ms'))}")
            print(f"{server:11}{b:11}" + "".join(f"{c:>{w}}" for c in cells))
print()
print("pulseaudio: u = underruns: the server's underflow events (pacat -v \"Stream underrun.\"),")
print("            then the latency pacat reports, mean/max ms")
print("pipewire:   x = cycles the stream's node missed (server profiler: not finished at the end")
print("            of the cycle), l = driver wake-ups > 1.3 quanta late, then the quantum, ms")
if pw_socat:
    print(f"pipewire through socat (\"no fds\": it cannot pass descriptors): {pw_socat}")
if context_why:
    print(f"pipewire context (\"n/a\"): {context_why}")
print(f"run time {elapsed} s")
# The verdict, one line per path that ran: did it play? (Underruns and latency are reported
# above, never judged.) A path fails if any of its streams failed; the first reason is given.
print()
failed = 0
for server in ["pulseaudio", "pipewire"]:
    for p in paths:
        ts = [t for t in table.values() if t["server"] == server and t["path"] == p]
        if not ts:
            if (server, p) in expected:  # it ran, and its runner printed no result
                failed += 1
                print(f"FAIL {server} {p}: no result (the bench's runner printed nothing)")
            continue
        bad = [t for t in ts if not t["ok"]]
        if bad:
            failed += 1
            t = bad[0]
            why = t["errors"][0] if t["errors"] else "no reason recorded"
            print(f"FAIL {server} {p}: {why} ({t['buffer']}, {t['load']})")
        elif server == "pulseaudio":
            print(f"ok   {server} {p}: the server's playback position reached {sum(t['played_s'] for t in ts):.1f} s in "
                  f"{sum(t['seconds'] for t in ts)} s, {sum(t['underruns'] for t in ts)} underruns")
        else:
            c = sum(t["cycles"] for t in ts)
            x = sum(t["xruns"] for t in ts)
            print(f"ok   {server} {p}: the server's profiler shows the stream's node in {c} graph "
                  f"cycles in {sum(t['seconds'] for t in ts)} s, {x} missed")
if pw_socat:
    print(f"skip pipewire socat: not a path for PipeWire (it cannot pass descriptors)")
if context_why:
    print(f"skip pipewire context: {context_why}")
if out_file:
    json.dump({"seconds": int(seconds), "rounds": int(rounds), "priority": prio,
               "pipewire_socat_error": pw_socat, "context_unavailable": context_why,
               "run_time_s": int(elapsed), "failed_paths": failed,
               "table": list(table.values()), "rounds_raw": rows}, open(out_file, "w"), indent=2)
sys.exit(1 if failed else 0)
PY
