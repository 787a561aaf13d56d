#!/usr/bin/env bash
# desktop.sh - a fake desktop user with real PipeWire / PulseAudio / weston servers.
#
# sockhook lends a desktop user's sockets to QEMU.  The integration tests need that
# desktop to exist on a headless CI machine without systemd or logind, so this
# script plays logind (the /run/user/<uid> tmpfs) and the systemd user manager
# (dbus session bus, audio servers, compositor) by hand.
#
# Usage (as root):
#   desktop.sh user                   create shtest + shother, mount /run/user/<uid>
#   desktop.sh start NAME...          NAME: dbus pipewire pipewire-pulse pulseaudio weston
#                                           weston-seat (weston with a seat, see start_weston_seat)
#   desktop.sh stop [NAME...|all]     stop servers (default: all)
#   desktop.sh status                 which servers are running
#   desktop.sh teardown [--users]     stop all, unmount the runtime dir (and userdel)
#   desktop.sh env                    print `export` lines for tests to eval
#   desktop.sh as-user CMD...         run CMD as shtest with the session environment
#   desktop.sh as-other CMD...        run CMD as shother (plain environment)
#   desktop.sh make-wav FILE          write a 0.5 s 48 kHz stereo WAV (for pw-cat/paplay)
#
# Overridable: SH_USER (shtest), SH_OTHER (shother), SH_STATE (/run/sockhook-test),
#              SH_TIMEOUT (seconds for each bounded wait, default 10),
#              SH_WESTON_SIZE (weston-seat's output, default 640x480).
set -euo pipefail

SH_USER=${SH_USER:-shtest}
SH_OTHER=${SH_OTHER:-shother}
# Root-only bookkeeping: pid files and server logs.  Tests must not be able to
# spoof a pid file as the desktop user, hence not under /run/user.
SH_STATE=${SH_STATE:-/run/sockhook-test}
SH_TIMEOUT=${SH_TIMEOUT:-10}
# Every server we manage, in the order "stop all" tears them down (clients of the
# session bus first, the bus last).
ALL_SERVERS=(weston xvfb pulseaudio pipewire-pulse wireplumber pipewire dbus)
# weston-seat's background: a colour no client here draws, so that a screenshot tells the
# compositor's own background from a window (0xAARRGGBB, as weston.ini writes it).
WESTON_BACKGROUND=0xff336699

ENV_NAME=desktop.sh
WAIT_TIMEOUT=$SH_TIMEOUT
# shellcheck source=SCRIPTDIR/common.bash
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# ---------------------------------------------------------------- identity
user_exists() { getent passwd "$1" >/dev/null; }
uid_of() { id -u "$1"; }
gid_of() { id -g "$1"; }
home_of() { getent passwd "$1" | cut -d: -f6; }
runtime_dir() { echo "/run/user/$(uid_of "$SH_USER")"; }

# The session bus lives at a fixed path, like systemd's user bus does, so every
# client finds it without us passing an address around.
bus_address() { echo "unix:path=$(runtime_dir)/bus"; }

# run_as USER CMD... : exec CMD as USER with a clean, desktop-like environment.
# setpriv (not su/runuser) because it does not go through PAM (no pam_systemd,
# no session bookkeeping) and keeps our pid: `setpriv ... &` gives $! == server pid.
run_as() {
    local user=$1; shift
    local home; home=$(home_of "$user")
    local -a envv=(HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash
                   PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8)
    if [[ $user == "$SH_USER" ]]; then
        local rt; rt=$(runtime_dir)
        envv+=(XDG_RUNTIME_DIR="$rt")
        # Only advertise the bus if it is actually up; otherwise libraries would
        # wait for D-Bus activation timeouts.
        [[ -S $rt/bus ]] && envv+=(DBUS_SESSION_BUS_ADDRESS="$(bus_address)")
    fi
    # Extra VAR=value settings from the caller (SH_EXTRA_ENV, space separated).
    if [[ -n ${SH_EXTRA_ENV:-} ]]; then
        local -a extra; read -r -a extra <<<"$SH_EXTRA_ENV"; envv+=("${extra[@]}")
    fi
    cd "$home" 2>/dev/null || cd /
    exec setpriv --reuid="$(uid_of "$user")" --regid="$(gid_of "$user")" --init-groups \
        env -i "${envv[@]}" "$@"
}

# ---------------------------------------------------------------- pid files
pidfile() { echo "$SH_STATE/$1.pid"; }
logfile() { echo "$SH_STATE/$1.log"; }

# alive NAME : the recorded server still runs (not a zombie).
alive() { pid_alive "$(pidfile "$1")" >/dev/null; }

# spawn NAME CMD... : start CMD as the desktop user in its own session (so a test
# harness's Ctrl-C or process-group kill does not take it down silently), stdio on
# a log file, and record its pid.
spawn() {
    local name=$1; shift
    install -d -m 0700 "$SH_STATE"
    # umask 022 like a systemd user service: PipeWire's socket then ends up 0755,
    # which is exactly the case where sockhook must add an ACL entry.
    umask 022
    # setsid does not fork (a background job of a script is no group leader) and
    # the __run_as chain only execs (bash -> setpriv -> env -> server), so $! is
    # the server's own pid.
    setsid "$0" __run_as "$SH_USER" "$@" </dev/null >"$(logfile "$name")" 2>&1 &
    echo $! >"$(pidfile "$name")"
}

stop_one() { stop_pidfile "$1" "$(pidfile "$1")"; }

# ---------------------------------------------------------------- user
cmd_user() {
    need_root
    local u
    for u in "$SH_USER" "$SH_OTHER"; do
        if ! user_exists "$u"; then
            # -K UID_MIN=1000: regular user even if login.defs was changed.
            useradd --create-home --user-group --shell /bin/bash -K UID_MIN=1000 "$u"
        fi
    done
    local uid gid rt
    uid=$(uid_of "$SH_USER"); gid=$(gid_of "$SH_USER"); rt=/run/user/$uid
    ((uid >= 1000)) || die "$SH_USER has uid $uid < 1000"
    install -d -m 0755 /run/user
    # logind gives each user a private tmpfs: sockhook resolves below it with
    # RESOLVE_NO_XDEV, so it has to be a real mount point, not a plain dir.
    if ! mountpoint -q "$rt"; then
        install -d -m 0700 -o "$uid" -g "$gid" "$rt"
        mount -t tmpfs -o "mode=0700,uid=$uid,gid=$gid,size=64M,nosuid,nodev" "tmpfs-$SH_USER" "$rt"
    fi
    # Directory for the per-user pipewire drop-in (see start_pipewire).
    install_pipewire_conf
    echo "$SH_USER uid=$uid runtime=$rt; $SH_OTHER uid=$(uid_of "$SH_OTHER")"
}

need_user() {
    user_exists "$SH_USER" || die "run '$0 user' first"
    mountpoint -q "$(runtime_dir)" || die "$(runtime_dir) is not mounted; run '$0 user'"
}

# ---------------------------------------------------------------- servers
start_dbus() {
    alive dbus && return 0
    local rt; rt=$(runtime_dir)
    rm -f "$rt/bus"
    # A session bus at the systemd path.  PipeWire (rtkit), WirePlumber and
    # PulseAudio all want one and log noisy errors or stall without it.
    spawn dbus dbus-daemon --session --nofork --nopidfile --address="$(bus_address)"
    wait_for "dbus session bus socket" test -S "$rt/bus" || { cat "$(logfile dbus)" >&2; return 1; }
}

# Null sink + null source so playback and capture have somewhere to go: there is
# no sound hardware.  A drop-in under ~/.config is how a user would add one.
install_pipewire_conf() {
    local home; home=$(home_of "$SH_USER")
    local dir=$home/.config/pipewire/pipewire.conf.d
    install -d -o "$SH_USER" -g "$(gid_of "$SH_USER")" "$home/.config" "$home/.config/pipewire" "$dir"
    cat >"$dir/50-sockhook-null.conf" <<'EOF'
# Written by sockhook tests/env/desktop.sh: virtual devices for a machine
# without sound hardware.
context.objects = [
    { factory = adapter
      args = { factory.name = support.null-audio-sink
               node.name = "sockhook-null-sink" node.description = "sockhook null sink"
               media.class = "Audio/Sink" object.linger = true
               audio.position = [ FL FR ] priority.driver = 1000 priority.session = 1000
               monitor.channel-volumes = true } }
    { factory = adapter
      args = { factory.name = support.null-audio-sink
               node.name = "sockhook-null-source" node.description = "sockhook null source"
               media.class = "Audio/Source/Virtual" object.linger = true
               audio.position = [ FL FR ] priority.driver = 900 priority.session = 900 } }
]
EOF
    chown "$SH_USER:" "$dir/50-sockhook-null.conf"
}

pw_ready() {
    [[ -S $(runtime_dir)/pipewire-0 ]] && "$0" as-user pw-cli info 0 >/dev/null 2>&1
}

start_pipewire() {
    alive pipewire && return 0
    start_dbus
    install_pipewire_conf
    rm -f "$(runtime_dir)/pipewire-0" "$(runtime_dir)/pipewire-0.lock" \
          "$(runtime_dir)/pipewire-0-manager" "$(runtime_dir)/pipewire-0-manager.lock"
    spawn pipewire pipewire
    wait_for "pipewire-0 socket + pw-cli info 0" pw_ready || { cat "$(logfile pipewire)" >&2; return 1; }
    if ! alive wireplumber; then
        spawn wireplumber wireplumber
        # WirePlumber is up when it has registered its own client and the null
        # sink has become the default (metadata "default.audio.sink").
        wait_for "wireplumber default sink" \
            bash -c "'$0' as-user pw-metadata 0 default.audio.sink 2>/dev/null | grep -q sockhook-null-sink" \
            || { cat "$(logfile wireplumber)" >&2; return 1; }
    fi
}

pulse_ready() { "$0" as-user pactl info >/dev/null 2>&1; }

start_pipewire_pulse() {
    alive pipewire-pulse && return 0
    alive pulseaudio && die "the real pulseaudio owns pulse/native; stop it first"
    start_pipewire
    spawn pipewire-pulse pipewire-pulse
    wait_for "pipewire-pulse pulse/native" pulse_ready || { cat "$(logfile pipewire-pulse)" >&2; return 1; }
}

start_pulseaudio() {
    alive pulseaudio && return 0
    alive pipewire-pulse && die "pipewire-pulse owns pulse/native; stop it first"
    start_dbus
    local rt; rt=$(runtime_dir)
    # A minimal script instead of /etc/pulse/default.pa: no udev/alsa/bluetooth/
    # X11 modules that fail or hang on a headless box, just the native socket and
    # a null sink (whose .monitor doubles as a source).
    local pa=$SH_STATE/pulseaudio.pa
    install -d -m 0700 "$SH_STATE"
    cat >"$pa" <<'EOF'
.fail
load-module module-native-protocol-unix
load-module module-null-sink sink_name=sockhook_null sink_properties=device.description=sockhook-null
set-default-sink sockhook_null
set-default-source sockhook_null.monitor
EOF
    chmod 0644 "$pa"
    # The script must be readable by shtest; SH_STATE is 0700 root, so hand it
    # over via a copy in the runtime dir.
    install -m 0600 -o "$SH_USER" "$pa" "$rt/.sockhook-pulseaudio.pa"
    # -n: no default.pa; --exit-idle-time=-1: never exit while tests are idle;
    # --daemonize=no: so the pid we record is the daemon itself.
    spawn pulseaudio pulseaudio --daemonize=no --exit-idle-time=-1 --disallow-exit \
        --use-pid-file=no --system=no --log-target=stderr -n -F "$rt/.sockhook-pulseaudio.pa"
    wait_for "pulseaudio pulse/native + pactl info" pulse_ready || { cat "$(logfile pulseaudio)" >&2; return 1; }
}

# weston-simple-shm runs forever when all is well; a protocol error makes it exit
# 1 at once ("... failed" / "error in client communication").  So "still running
# after 2 s" (timeout's 124) means the compositor really serves shm clients.
wayland_client_ok() {
    local rc=0
    "$0" as-user timeout 2 weston-simple-shm >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 124 ]]
}

start_weston() {
    alive weston && return 0
    local rt; rt=$(runtime_dir)
    rm -f "$rt/wayland-0" "$rt/wayland-0.lock"
    # headless backend + pixman so shm buffers are actually read; kiosk-shell
    # implements xdg_wm_base (simple-shm needs it) without spawning helper
    # clients like desktop-shell does; --no-config ignores ~/.config/weston.ini;
    # --idle-time=0: never blank.
    spawn weston weston --backend=headless-backend.so --use-pixman --shell=kiosk-shell.so \
        --socket=wayland-0 --idle-time=0 --no-config
    wait_for "weston wayland-0 socket" test -S "$rt/wayland-0" || { cat "$(logfile weston)" >&2; return 1; }
    wayland_client_ok || { log "weston-simple-shm did not run"; cat "$(logfile weston)" >&2; return 1; }
}

# weston-seat: weston with a seat. The headless backend has none (no keyboard, no pointer):
# simple-shm does not mind, but QEMU's SDL display (SDL 2.26) crashes and GTK's gives up
# without one, and a real desktop always has one. So weston runs its x11 backend on an Xvfb
# of its own: Xvfb is only weston's output and input device, clients still talk Wayland to
# wayland-0. --debug lets the user's own weston-debug (scene-graph) and weston-screenshooter
# in; the config gives kiosk-shell a background colour of its own (WESTON_BACKGROUND).
start_weston_seat() {
    if alive weston; then
        alive xvfb && return 0
        die "weston runs on the headless backend (no seat); stop it first"
    fi
    command -v Xvfb >/dev/null || die "weston-seat needs Xvfb (package xvfb)"
    local rt; rt=$(runtime_dir)
    local size=${SH_WESTON_SIZE:-640x480}
    [[ $size =~ ^([0-9]+)x([0-9]+)$ ]] || die "SH_WESTON_SIZE '$size' is not WIDTHxHEIGHT"
    local width=${BASH_REMATCH[1]} height=${BASH_REMATCH[2]}
    # What systemd-tmpfiles (x11.conf) makes at boot; Xvfb as a user cannot make it right.
    [[ -d /tmp/.X11-unix ]] || install -d -m 1777 /tmp/.X11-unix
    if ! alive xvfb; then
        # -displayfd 1: Xvfb picks a free display and writes its number to the log once it
        # accepts clients; no TCP.
        spawn xvfb Xvfb -displayfd 1 -screen 0 "${size}x24" -nolisten tcp
        wait_for "Xvfb display number" grep -qx '[0-9]\+' "$(logfile xvfb)" || { cat "$(logfile xvfb)" >&2; return 1; }
    fi
    local display; display=$(grep -x '[0-9]\+' "$(logfile xvfb)" | head -1)
    printf '[core]\nidle-time=0\n[shell]\nbackground-color=%s\n' "$WESTON_BACKGROUND" |
        install -m 0600 -o "$SH_USER" /dev/stdin "$rt/.sockhook-weston.ini"
    rm -f "$rt/wayland-0" "$rt/wayland-0.lock"
    SH_EXTRA_ENV="DISPLAY=:$display" spawn weston weston --backend=x11-backend.so --use-pixman \
        --width="$width" --height="$height" --shell=kiosk-shell.so \
        --socket=wayland-0 --idle-time=0 --debug --config="$rt/.sockhook-weston.ini"
    wait_for "weston wayland-0 socket" test -S "$rt/wayland-0" || { cat "$(logfile weston)" >&2; return 1; }
    wayland_client_ok || { log "weston-simple-shm did not run"; cat "$(logfile weston)" >&2; return 1; }
}

cmd_start() {
    need_root; need_user
    (($#)) || die "start what? (dbus pipewire pipewire-pulse pulseaudio weston)"
    local n
    for n in "$@"; do
        case $n in
            dbus) start_dbus ;;
            pipewire | wireplumber) start_pipewire ;;
            pipewire-pulse) start_pipewire_pulse ;;
            pulseaudio) start_pulseaudio ;;
            weston) start_weston ;;
            weston-seat) start_weston_seat ;;
            *) die "unknown server '$n'" ;;
        esac
    done
}

cmd_stop() {
    need_root
    local -a names=("$@")
    ((${#names[@]})) || names=(all)
    local n
    for n in "${names[@]}"; do
        case $n in
            all) local s; for s in "${ALL_SERVERS[@]}"; do stop_one "$s"; done ;;
            # Stopping pipewire takes its session manager and pulse server along:
            # they are useless (and would spin reconnecting) without it.
            pipewire) stop_one pipewire-pulse; stop_one wireplumber; stop_one pipewire ;;
            dbus | wireplumber | pipewire-pulse | pulseaudio | weston) stop_one "$n" ;;
            weston-seat | xvfb) stop_one weston; stop_one xvfb ;;
            *) die "unknown server '$n'" ;;
        esac
    done
    if [[ " ${names[*]} " == *" all "* ]]; then
        # Anything else still running as the desktop user was started by us
        # (e.g. D-Bus-activated helpers): the user exists only for the tests.
        if user_exists "$SH_USER"; then
            pkill -KILL -u "$(uid_of "$SH_USER")" 2>/dev/null || true
        fi
    fi
}

cmd_status() {
    local n
    for n in "${ALL_SERVERS[@]}"; do
        if alive "$n"; then echo "$n running pid $(<"$(pidfile "$n")")"; else echo "$n stopped"; fi
    done
}

cmd_teardown() {
    need_root
    cmd_stop all
    if user_exists "$SH_USER"; then
        local rt; rt=$(runtime_dir)
        # Lazy unmount is *not* used: a busy runtime dir means we leaked
        # something, and the caller should hear about it.
        while mountpoint -q "$rt"; do umount "$rt"; done
        rmdir "$rt" 2>/dev/null || true
    fi
    if [[ ${1:-} == --users ]]; then
        local u
        for u in "$SH_USER" "$SH_OTHER"; do
            if user_exists "$u"; then userdel --remove "$u" 2>/dev/null || true; fi
        done
    fi
    rm -rf "$SH_STATE"
}

# make_wav FILE : 0.5 s of 48 kHz stereo S16LE noise, no sox needed.  Header
# numbers are little-endian: rate 48000 = 0xBB80, byte rate 192000 = 0x2EE00,
# data 96000 bytes = 0x17700, RIFF size 36 + 96000 = 0x17724.
cmd_make_wav() {
    local f=${1:?make-wav FILE}
    {
        printf 'RIFF\x24\x77\x01\x00WAVEfmt '
        printf '\x10\x00\x00\x00\x01\x00\x02\x00\x80\xbb\x00\x00\x00\xee\x02\x00\x04\x00\x10\x00'
        printf 'data\x00\x77\x01\x00'
        head -c 96000 /dev/urandom
    } >"$f"
    chmod 0644 "$f"
}

cmd_env() {
    need_user
    local rt; rt=$(runtime_dir)
    printf 'export SH_USER=%q\n' "$SH_USER"
    printf 'export SH_UID=%q\n' "$(uid_of "$SH_USER")"
    printf 'export SH_GID=%q\n' "$(gid_of "$SH_USER")"
    printf 'export SH_HOME=%q\n' "$(home_of "$SH_USER")"
    printf 'export SH_RUNTIME=%q\n' "$rt"
    printf 'export SH_BUS=%q\n' "$(bus_address)"
    printf 'export SH_PIPEWIRE_SOCKET=%q\n' "$rt/pipewire-0"
    printf 'export SH_PULSE_SOCKET=%q\n' "$rt/pulse/native"
    printf 'export SH_PULSE_COOKIE=%q\n' "$(home_of "$SH_USER")/.config/pulse/cookie"
    printf 'export SH_WAYLAND_SOCKET=%q\n' "$rt/wayland-0"
    printf 'export SH_WESTON_BACKGROUND=%q\n' "$WESTON_BACKGROUND"
    printf 'export SH_OTHER=%q\n' "$SH_OTHER"
    printf 'export SH_OTHER_UID=%q\n' "$(uid_of "$SH_OTHER")"
    printf 'export SH_STATE=%q\n' "$SH_STATE"
}

main() {
    local cmd=${1:-}; shift || true
    case $cmd in
        user) cmd_user "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        teardown) cmd_teardown "$@" ;;
        env) cmd_env ;;
        make-wav) cmd_make_wav "$@" ;;
        as-user) need_user; run_as "$SH_USER" "$@" ;;
        as-other) user_exists "$SH_OTHER" || die "run '$0 user' first"; run_as "$SH_OTHER" "$@" ;;
        __run_as) run_as "$@" ;;   # internal, used by spawn
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
