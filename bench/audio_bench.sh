#!/usr/bin/env bash
# What a listener hears: real PulseAudio and PipeWire streams with small buffers, played as
# QEMU's user into a desktop user's real servers, through each way of reaching them. No
# assertions: it prints a table and can write JSON.
#
#   sudo flock -o /tmp/sockhook-host.lock bench/audio_bench.sh [--build DIR] [--seconds N]
#        [--load idle|busy|both] [--only pulseaudio|pipewire] [--json FILE]
#        [--rounds 3] [--pulse-latencies "5 10 20"] [--pw-quanta "64 128 256"]
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
seconds=30
json=
load=both
only=
rounds=3
pulse_latencies="5 10 20"
pw_quanta="64 128 256"
while (($#)); do
  case $1 in
    --build) build=$2; shift ;;
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
((EUID == 0)) || { echo "audio_bench.sh: needs root (users, lends, realtime priority)" >&2; exit 1; }
sockhook=$(realpath "$build/sockhook")
[[ -x $sockhook ]] || { echo "build first: cmake --build $build" >&2; exit 1; }
for t in pacat pw-cat pw-profiler pulseaudio pipewire socat stress-ng chrt setpriv python3; do
  command -v "$t" >/dev/null || { echo "audio_bench.sh: $t is missing (tests/deps.sh installs it)" >&2; exit 1; }
done
# The servers and proxies we start must not inherit the caller's lock (flock without -o
# passes its descriptor on): a daemon holding it would block every other user of the host.
# (bash reads this script through fd 255: that one stays.)
for fd in "/proc/$$/fd/"*; do
  fd=${fd##*/}
  ((fd > 2 && fd != 255)) && eval "exec $fd>&-"
done 2>/dev/null || true

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
proxy_sched() {
  local pid
  pid=$(pgrep -n -u "$SH_USER" -f "sockhook proxy .*${lend_dir##*/}") || return 0
  [[ ${AUDIO_BENCH_PROXY_SCHED:-} == other ]] && chrt -o -p 0 "$pid"
  proxies_seen+="; $1 proxy: $(ps -o cls=,rtprio=,ni= -p "$pid" | awk '{ print ($1 == "TS" ? "SCHED_OTHER nice " $3 : "SCHED_" $1 " " $2) }') (as the hook started it)"
}

# ---------------------------------------------------------------- lends through the real hook
n_lend=0
# make_lend PLUGIN METHOD: a real lend for a new domain; sets $lend_dir.
make_lend() {
  local plugin=$1 method=$2 name uuid
  n_lend=$((n_lend + 1))
  name=audio-bench-$n_lend
  uuid=$(cat /proc/sys/kernel/random/uuid)
  printf '[%s]\n%s = *\n' "$uuid" "$SH_USER" >>"$etc/policy.conf"
  printf "<domain type='kvm'><name>%s</name><uuid>%s</uuid><metadata><sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'><sockhook:socket plugin='%s' owner='%s' method='%s'/></sockhook:sockets></metadata></domain>" \
    "$name" "$uuid" "$plugin" "$SH_USER" "$method" >"$tmp/$name.xml"
  local op
  for op in prepare start; do
    "$sockhook" hook --config-dir "$etc" "$name" "$op" begin - <"$tmp/$name.xml" 2>"$tmp/hook.err" ||
      { echo "audio_bench.sh: the $method lend of $plugin failed: $(cat "$tmp/hook.err")" >&2; exit 1; }
  done
  lent+=("$name")
  # The hook's lend directory (README, Files); a bench that measured a client failing to find
  # it would report a path as broken, so say so and stop.
  lend_dir=/run/sockhook/libvirt-$uuid
  [[ -d $lend_dir ]] ||
    { echo "audio_bench.sh: the $method lend of $plugin made no $lend_dir" >&2; exit 1; }
}
release_lend() {
  "$sockhook" hook --config-dir "$etc" "$1" release end - <"$tmp/$1.xml" 2>/dev/null || true
}
# bind_and_proxy PLUGIN DIRS: a bind and a proxy lend of PLUGIN, their directories in the
# associative array DIRS[bind] and DIRS[proxy]; then how the hook left the proxy.
bind_and_proxy() {
  local -n dirs=$2
  local method
  for method in bind proxy; do
    make_lend "$1" "$method"
    # shellcheck disable=SC2034 # the caller's associative array
    dirs["$method"]=$lend_dir
  done
  proxy_sched "$1"
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
    bind | proxy) run=("${as_qemu[@]}" PULSE_SERVER="unix:${pulse_lend[$path]}/pulse-native"
      PULSE_COOKIE="${pulse_lend[$path]}/pulse-cookie" PULSE_CLIENTCONFIG="${pulse_lend[$path]}/pulse-client.conf") ;;
    socat) run=("${as_qemu[@]}" PULSE_SERVER="unix:$tmp/socat/pulse-native" PULSE_COOKIE="$tmp/socat/pulse-cookie"
      PULSE_CLIENTCONFIG="$tmp/socat/pulse-client.conf") ;;
  esac
  local rc=0
  timeout -s INT "$slice" "${run[@]}" pacat -v --latency-msec="$lat" --raw --rate=48000 \
    --channels=2 --format=s16le --stream-name="audio-bench-$path" <"$tmp/noise.raw" >"$out" 2>&1 || rc=$?
  python3 - "$out" "$path" "$lat" "$rc" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "\n")
lat = [int(m) for m in re.findall(r"Latency: (\d+) usec", text)]
lat = [l for l in lat if l > 0]
err = [l for l in text.splitlines() if re.search(r"failed|error|refused", l, re.I)]
print(json.dumps({"server": "pulseaudio", "path": sys.argv[2], "buffer": f"{sys.argv[3]} ms",
    "underruns": text.count("Stream underrun."), "latency_mean_ms": round(sum(lat) / len(lat) / 1000, 2) if lat else None,
    "latency_max_ms": round(max(lat) / 1000, 2) if lat else None, "ok": bool(lat),
    "error": err[0].strip() if err and not lat else None}))
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
    bind | proxy) run=("${as_qemu[@]}" PIPEWIRE_RUNTIME_DIR="${pw_lend[$path]}") ;;
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
  python3 - "$prof" "$out" "$path" "$q" "$rc" <<'PY'
import json, re, sys
prof, out, path, q = sys.argv[1:5]
text = open(out, errors="replace").read()
# Our stream's node, as pw-cat -v names it; the profiler lists every follower of the driver.
node = re.search(r"stream node (\d+)", text)
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
    ours = [s for s in slots if s[0].strip() and (node is None or s[0].strip() == node)]
    if not ours:
        continue
    cycles += 1
    d1, period = float(c[0]), float(c[3])
    periods.append(period)
    if ours[0][6].strip() != "3":     # 3 = finished
        xruns += 1
    if d1 > 1.3 * period:
        late += 1
err = [l for l in text.splitlines() if re.search(r"error|failed|refused", l, re.I)]
period = sorted(periods)[len(periods) // 2] / 1000 if periods else None
print(json.dumps({"server": "pipewire", "path": path, "buffer": f"{q} frames",
    "cycles": cycles, "xruns": xruns, "late_wakeups": late,
    "quantum_ms": round(period, 2) if period else None, "ok": cycles > 0,
    "error": err[0].strip() if err and not cycles else None}))
PY
}

pw_setup() {
  "$desktop" stop pulseaudio >/dev/null
  "$desktop" start pipewire >/dev/null
  rt_servers_pipewire
  bind_and_proxy pipewire pw_lend
}

# pw_socat_error: PipeWire through socat, once: the error line the client prints.
pw_socat_error() {
  install -d -m 755 "$tmp/socat-pw"
  socat_relay "$tmp/socat-pw/pipewire-0" "$runtime/pipewire-0"
  local s=$socat_pid
  local log=$SH_STATE/pipewire.log from
  from=$(($(stat -c %s "$log") + 1))
  timeout -s INT 10 "${as_qemu[@]}" PIPEWIRE_RUNTIME_DIR="$tmp/socat-pw" pw-cat -v -p --latency=128 \
    "$tmp/noise.wav" >"$tmp/out/pipewire-socat.txt" 2>&1 || true
  kill "$s" 2>/dev/null || true
  # The client itself prints no error: its stream connects and then stays paused, because
  # the memfds and eventfds it needs never arrive. The server says why, in its log.
  local state err
  state=$(grep -o 'stream state changed .*' "$tmp/out/pipewire-socat.txt" | tail -1)
  err=$(tail -c +"$from" "$log" | grep -E '\[E\]' | grep -v -i dbus | head -1 | sed 's/.*()\] [^:]*: //')
  echo "pw-cat: \"${state:-no stream}\" and no sound for 10 s; pipewire logs \"${err:-nothing}\""
}

# ---------------------------------------------------------------- the runs
results=$tmp/results.jsonl
: >"$results"
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
  sweep pipewire pw_run frames "$pw_quanta" direct bind proxy
fi
elapsed=$((SECONDS - began))
priority_note+=$proxies_seen

python3 - "$results" "$json" "$((slice * rounds))" "$rounds" "$priority_note" "$pw_socat" "$elapsed" <<'PY'
import json, sys
res_file, out_file, seconds, rounds, prio, pw_socat, elapsed = sys.argv[1:8]
rows = [json.loads(l) for l in open(res_file) if l.strip()]
paths = ["direct", "no-shm", "bind", "proxy", "socat"]
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
        t["underruns"] = t.get("underruns", 0) + r["underruns"]
        if r["latency_mean_ms"] is not None:
            t.setdefault("_lat", []).append(r["latency_mean_ms"])
            t["latency_max_ms"] = max(t.get("latency_max_ms", 0), r["latency_max_ms"])
    else:
        for k in ("cycles", "xruns", "late_wakeups"):
            t[k] = t.get(k, 0) + r[k]
        if r["quantum_ms"] is not None:
            t["quantum_ms"] = r["quantum_ms"]
for t in table.values():
    lat = t.pop("_lat", None)
    if lat:
        t["latency_mean_ms"] = round(sum(lat) / len(lat), 2)
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
                    cells.append("no fds" if server == "pipewire" and p == "socat" else "-")
                elif not t["ok"]:
                    cells.append("failed")
                elif server == "pulseaudio":
                    cells.append(f"{t['underruns']} u {t['latency_mean_ms']:.1f}/{t['latency_max_ms']:.1f}")
                else:
                    cells.append(f"{t['xruns']} x {t['late_wakeups']} l {t['quantum_ms']:.2f}")
            print(f"{server:11}{b:11}" + "".join(f"{c:>{w}}" for c in cells))
print()
print("pulseaudio: u = underruns: the server's underflow events (pacat -v \"Stream underrun.\"),")
print("            then the latency pacat reports, mean/max ms")
print("pipewire:   x = cycles the stream's node missed (server profiler: not finished at the end")
print("            of the cycle), l = driver wake-ups > 1.3 quanta late, then the quantum, ms")
if pw_socat:
    print(f"pipewire through socat (\"no fds\": it cannot pass descriptors): {pw_socat}")
print(f"run time {elapsed} s")
for t in table.values():
    if not t["ok"]:
        print(f"failed: {t['server']} {t['path']} {t['buffer']} {t['load']}: {t['errors'][:1]}")
if out_file:
    json.dump({"seconds": int(seconds), "rounds": int(rounds), "priority": prio,
               "pipewire_socat_error": pw_socat, "run_time_s": int(elapsed),
               "table": list(table.values()), "rounds_raw": rows}, open(out_file, "w"), indent=2)
PY
