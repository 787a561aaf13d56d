#!/usr/bin/env bash
# trixie.sh - a Debian 13 (trixie) root for CI's second leg, made with Debian's mmdebstrap,
# cached on this machine, and run in private namespaces that leave nothing behind.
#
# Usage (as root):
#   trixie.sh build                 make the root unless the cache has it; print its path
#   trixie.sh run [--src DIR] [--out DIR] CMD...
#                                   run CMD as root in a fresh view of the root, with the
#                                   --src DIR (default: this repository) read-only at /src
#                                   and the --out DIR (optional) writable at /out; exits
#                                   with CMD's status
#   trixie.sh packages              the package list (what the cache key is made of)
#   trixie.sh path                  where the root for the current list is (or would be)
#   trixie.sh sweep                 end processes left in views of a killed run, remove views
#   trixie.sh clean                 sweep, then remove the whole cache
#
# The cache is /var/cache/sockhook-ci/trixie-<hash>/, a plain directory (nothing to unpack
# per run); <hash> covers the package list, suite and mirror, so a changed list builds a new
# root and the old one is removed. A run never writes to it: each run mounts an overlay
# (cache below, an empty directory above) inside its own mount namespace, so no run sees an
# earlier run's users, domains or build, and the overlay vanishes with the namespace.
#
# Each run gets new mount, PID, network and IPC namespaces: the root's libvirtd, QEMU and
# desktop servers cannot touch the host's network or SysV IPC, and when CMD ends the kernel
# ends every process of the PID namespace. After that, the host side checks /proc/*/root (a
# process started in the root points into the view) and kills anything found, so no process
# and no mount survive on any path, even if this script is killed with SIGKILL (the next
# run's sweep finds the leftovers). The root gets its own /dev (a tmpfs with the host's
# null/zero/full/random/urandom/tty nodes and a private devpts), not the host's: the root's
# libvirt.sh would otherwise chgrp the host's /dev/kvm to the root's kvm gid. Domains are
# TCG, so no /dev/kvm is needed. /sys is the host's (recursive bind), as libvirt needs it.
#
# Overridable: SOCKHOOK_CI_CACHE (/var/cache/sockhook-ci), TRIXIE_MIRROR
# (http://deb.debian.org/debian).
set -euo pipefail

CACHE=${SOCKHOOK_CI_CACHE:-/var/cache/sockhook-ci}
MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)

die() { echo "trixie.sh: $*" >&2; exit 1; }
log() { echo "trixie.sh: $*" >&2; }

# Everything the build, tests/deps.sh and the root suites need on Debian 13. jack_lsp is in
# jack-example-tools there (Debian 12's jackd2 still ships it); apparmor brings
# apparmor_parser for the AppArmor test, libvirt-daemon-system its virt-aa-helper. The kernel
# (linux-image-amd64) and sway are for tests/env/aa-kernel.sh, which boots this root as a
# disk image under Debian 13's own kernel with AppArmor enforcing; sway is the compositor
# that listens on wayland-1 and offers a security context. libwayland-dev and
# wayland-protocols build sockhook-wayland-holder (wp_security_context_v1, wayland-protocols
# 1.32 or newer); wayland-utils brings wayland-info, which lists what a client sees.
packages() {
    cat <<'EOF'
build-essential
cmake
pkg-config
libvirt-dev
libpugixml-dev
libcli11-dev
doctest-dev
libacl1-dev
nlohmann-json3-dev
libpipewire-0.3-dev
scdoc
man-db
bash-completion
clang-format
acl
socat
python3
util-linux
mount
procps
psmisc
strace
stress-ng
bc
iproute2
libvirt-daemon-system
libvirt-daemon-driver-qemu
libvirt-clients
qemu-system-x86
qemu-system-gui
qemu-utils
pipewire
pipewire-bin
pipewire-pulse
pipewire-jack
wireplumber
jackd2
jack-example-tools
pulseaudio
pulseaudio-utils
weston
xvfb
dbus
polkitd
pkexec
apparmor
linux-image-amd64
kmod
sway
libwayland-dev
wayland-protocols
wayland-utils
EOF
}

cache_key() {
    { echo "suite $SUITE mirror $MIRROR variant apt norecommends"; packages; } |
        sha256sum | cut -c1-16
}
root_path() { echo "$CACHE/$SUITE-$(cache_key)"; }

cmd_build() {
    install -d -m 0700 "$CACHE"
    local root; root=$(root_path)
    # Two CI runs on one machine build one root, not two half roots.
    exec 8>"$CACHE/$SUITE.lock"
    flock -w 1800 8 || die "another run holds $CACHE/$SUITE.lock"
    if [[ -f $root.ok && -d $root ]]; then
        log "cached root $root"
    else
        command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
        rm -rf "$root" "$root.tmp" "$root.ok"
        log "making $root with mmdebstrap ($SUITE from $MIRROR)"
        local t0=$SECONDS
        # mmdebstrap installs no Recommends by default, like our --no-install-recommends. In a
        # private mount namespace, so that the proc/sys/dev mounts it makes in the new root
        # die with it even if it is killed.
        unshare --mount --propagation private -- mmdebstrap --quiet --variant=apt --include="$(packages | paste -sd,)" \
            "$SUITE" "$root.tmp" "$MIRROR" >&2
        mv "$root.tmp" "$root"
        touch "$root.ok"
        log "made $root in $((SECONDS - t0)) s"
        # Roots of older package lists are of no further use.
        local old
        for old in "$CACHE/$SUITE"-*; do
            [[ $old == "$root" || $old == "$root.ok" || $old == *.lock ]] && continue
            [[ -e $old ]] || continue
            log "removing the root of an older package list: $old"
            rm -rf "$old"
        done
    fi
    exec 8>&-
    echo "$root"
}

# pids_in VIEW : processes whose root directory is inside VIEW (seen from here).
pids_in() {
    local view=$1 p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $r == "$view" || $r == "$view"/* ]] && echo "${p#/proc/}"
    done
    return 0
}

# end_view VIEW : kill what still runs in VIEW (bounded), then remove VIEW's directories.
end_view() {
    local view=$1 pids i
    pids=$(pids_in "$view/root")
    if [[ -n $pids ]]; then
        log "ending processes left in $view: ${pids//$'\n'/ }"
        # shellcheck disable=SC2086 # a list of pids
        kill -KILL $pids 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [[ -z $(pids_in "$view/root") ]] && break
            sleep 0.1
        done
        [[ -z $(pids_in "$view/root") ]] || die "processes still run in $view: $(pids_in "$view/root")"
    fi
    # The overlay existed only in the dead namespace; if a mount still shows here, something
    # leaked into the host's namespace: say so rather than deleting through it.
    if grep -q " ${view}[/ ]" /proc/self/mountinfo; then
        die "a mount below $view is visible on the host; not removing it"
    fi
    rm -rf "$view"
}

cmd_sweep() {
    local v
    for v in "$CACHE"/run.*; do
        [[ -d $v ]] || continue
        # A view whose run is still alive belongs to that run.
        if [[ -f $v/pid ]] && kill -0 "$(<"$v/pid")" 2>/dev/null; then continue; fi
        log "removing the view of a run that did not finish: $v"
        end_view "$v"
    done
}

cmd_run() {
    local src=$REPO out=
    while (($#)); do
        case $1 in
            --src) src=$(readlink -f "${2:?--src DIR}"); shift 2 ;;
            --out) out=$(readlink -f "${2:?--out DIR}"); shift 2 ;;
            *) break ;;
        esac
    done
    [[ -d $src ]] || die "no directory $src"
    [[ -z $out || -d $out ]] || die "no directory $out"
    (($#)) || die "run what?"
    local root; root=$(cmd_build)
    cmd_sweep
    local view; view=$(mktemp -d "$CACHE/run.XXXXXX")
    echo $$ >"$view/pid"
    mkdir "$view/upper" "$view/work" "$view/root"
    # shellcheck disable=SC2064 # expand now
    trap "end_view '$view'" EXIT
    trap 'exit 130' INT TERM
    local rc=0
    # --kill-child: if this script dies, the namespace's first process gets SIGKILL, and with
    # it every process of the PID namespace.
    unshare --mount --propagation private --pid --fork --kill-child --net --ipc -- \
        "$SELF" __inside "$root" "$view" "$src" "$out" "$@" || rc=$?
    return "$rc"
}

# Runs as PID 1 of the new PID namespace, in the private mount namespace.
cmd_inside() {
    local root=$1 view=$2 src=$3 out=$4; shift 4
    local r=$view/root
    # The overlay is a mount point of its own, which libvirt needs of the root (without one,
    # QEMU's start fails: "Failed disable mount propagation out of the root filesystem").
    mount -t overlay overlay -o "lowerdir=$root,upperdir=$view/upper,workdir=$view/work" "$r"
    mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
    mount --rbind /sys "$r/sys"
    mount -t tmpfs -o mode=0755,nosuid,size=64M tmpfs "$r/dev"
    local n
    for n in null zero full random urandom tty; do
        touch "$r/dev/$n"
        mount --bind "/dev/$n" "$r/dev/$n"
    done
    mkdir -m 0755 "$r/dev/pts"
    mkdir -m 1777 "$r/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
    ln -s pts/ptmx "$r/dev/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
    ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin"
    ln -s /proc/self/fd/1 "$r/dev/stdout"
    ln -s /proc/self/fd/2 "$r/dev/stderr"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
    mkdir -p "$r/src"
    mount --bind "$src" "$r/src"
    mount -o remount,bind,ro "$r/src"
    if [[ -n $out ]]; then
        mkdir -p "$r/out"
        mount --bind "$out" "$r/out"
    fi
    chroot "$r" ip link set lo up
    # PID 1 stays a shell that waits, so that orphans (daemons, QEMU) are reaped.
    local rc=0
    chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
        DEBIAN_FRONTEND=noninteractive "$@" &
    wait $! || rc=$?
    exit "$rc"
}

cmd_clean() {
    cmd_sweep
    rm -rf "$CACHE/$SUITE"-* "$CACHE/$SUITE.lock"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local cmd=${1:-}; shift || true
    case $cmd in
        build) cmd_build ;;
        run) cmd_run "$@" ;;
        packages) packages ;;
        path) root_path ;;
        sweep) cmd_sweep ;;
        clean) cmd_clean ;;
        __inside) cmd_inside "$@" ;;
        *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
