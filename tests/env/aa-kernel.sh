#!/usr/bin/env bash
# aa-kernel.sh - run a command under Debian 13's own kernel with AppArmor enforcing: the root
# of tests/env/trixie.sh (which carries linux-image-amd64) made into a disk image and booted
# under QEMU, with libvirt's own AppArmor profiles loaded, so that confinement is decided by
# a kernel, not by the parser.
#
# Usage (as root):
#   aa-kernel.sh image          make the disk image unless the cache has it; print its path
#   aa-kernel.sh run [--src DIR] [--out DIR] [--timeout S] [--accel auto|kvm|tcg] CMD...
#                               boot the image, run CMD as root inside it with the --src DIR
#                               (default: this repository) read-only at /src and the --out
#                               DIR (optional) writable at /out; stream CMD's output here;
#                               exit with CMD's status (124 if the VM ran out of time, 125
#                               if it ended without a result)
#   aa-kernel.sh clean          remove the cached images
#
# The image is /var/cache/sockhook-ci/aa-<hash>.img: ext4 made by `mkfs.ext4 -d` from the
# cached trixie root plus a five-line init, /usr/sbin/sockhook-aa-init (not /sbin, which is a
# symlink there that the overlay would shadow), keyed by the root, the init and its place.
# QEMU opens it with snapshot=on: a run's writes go to a temporary file that QEMU deletes, so
# the cache never changes and no run sees an earlier run's users or domains.
# Everything else travels over virtio-9p shares: this script itself (the guest half below,
# so that editing it needs no new image), the command, its exit status, /src and /out.
#
# Acceleration: auto tries KVM first (-cpu host) and falls back to TCG when the guest has not
# reached its init within 60 s or QEMU fails (on this kind of machine KVM guests crash:
# LIBVIRT-NOTES, "An enforcing AppArmor kernel"); the output says which one ran. The VM is
# always ended: by the guest's poweroff when CMD ends, else by the host when CMD's status
# appears, when --timeout (default 2400 s) runs out, or when this script is interrupted.
#
# The TCG CPU is `max` without AVX and AVX2. Under Debian 12's QEMU 7.2, whose TCG is the
# first to emulate AVX2, Mesa's llvmpipe (which QEMU's SDL window on Wayland loads to present
# its software-rendered frames) compiled AVX2 code that faulted in the guest on a vpgatherdd
# (`segfault ... Code: ... <c4> e2 3d 90 34 27`), with AppArmor enforcing, in complain mode
# and with libvirt's security driver off alike; on a real CPU the same code runs. Without AVX,
# LLVM and Mesa pick their SSE4 paths, which TCG has emulated for years.
#
# Overridable: SOCKHOOK_CI_CACHE (/var/cache/sockhook-ci), AA_KERNEL_MEM (4096, MiB),
# AA_KERNEL_TCG_CPU (max,avx=off,avx2=off; `max` shows the fault above).
set -euo pipefail

CACHE=${SOCKHOOK_CI_CACHE:-/var/cache/sockhook-ci}
QEMU_PID=
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
TRIXIE=$REPO/tests/env/trixie.sh

die() { echo "aa-kernel.sh: $*" >&2; exit 1; }
log() { echo "aa-kernel.sh: $*" >&2; }

# PID 1 of the VM, kept tiny (it is part of the image's key): mount the control share and hand
# over to the guest half of this script, which comes from the share.
init_script() {
    cat <<'EOF'
#!/bin/sh
mountpoint -q /proc || mount -t proc proc /proc; mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
modprobe -q 9pnet_virtio; modprobe -q 9p; mkdir -p /ctl
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ctl /ctl && exec /bin/bash /ctl/aa-kernel.sh __guest
echo "sockhook-aa-init: cannot mount the control share"; exec /bin/sh
EOF
}

image_path() {
    local root; root=$("$TRIXIE" path)
    local key; key=$({ echo "$root /usr/sbin/sockhook-aa-init"; init_script; } | sha256sum | cut -c1-16)
    echo "$CACHE/aa-$key.img"
}

cmd_image() {
    local root; root=$("$TRIXIE" build)
    local img; img=$(image_path)
    exec 7>"$CACHE/aa-image.lock"
    flock -w 1800 7 || die "another run holds $CACHE/aa-image.lock"
    if [[ -f $img.ok && -f $img ]]; then
        log "cached image $img"
    else
        ls "$root"/boot/vmlinuz-* >/dev/null 2>&1 || die "the root $root has no kernel (linux-image-amd64)"
        rm -f "$img" "$img.ok" "$img.tmp"
        local t0=$SECONDS stage
        stage=$(mktemp -d "$CACHE/aa-stage.XXXXXX")
        # shellcheck disable=SC2064 # expand now
        trap "rm -rf '$stage' '$img.tmp'" EXIT
        # The init goes in through an overlay in a private mount namespace: the cached root
        # stays as trixie.sh made it, and the overlay vanishes with the namespace.
        mkdir -p "$stage/upper/usr/sbin" "$stage/work" "$stage/merged"
        init_script >"$stage/upper/usr/sbin/sockhook-aa-init"
        chmod 0755 "$stage/upper/usr/sbin/sockhook-aa-init"
        local size_mb
        size_mb=$(($(du -sm "$root" | cut -f1) + 3072))  # room for logs, users, domains
        truncate -s "${size_mb}M" "$img.tmp"
        unshare --mount --propagation private -- sh -c '
            mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/merged" &&
            mkfs.ext4 -q -F -L sockhook-aa -d "$2/merged" "$3"' sh "$root" "$stage" "$img.tmp" ||
            { rm -rf "$stage" "$img.tmp"; die "mkfs.ext4 -d failed"; }
        rm -rf "$stage"
        mv "$img.tmp" "$img"
        trap - EXIT
        touch "$img.ok"
        log "made $img (${size_mb} MiB) in $((SECONDS - t0)) s"
        local old
        for old in "$CACHE"/aa-*.img; do
            [[ $old == "$img" ]] || { log "removing an older image: $old"; rm -f "$old" "$old.ok"; }
        done
    fi
    exec 7>&-
    echo "$img"
}

# boot ACCEL IMG CTL SRC OUT : start QEMU in the background, console to CTL/console.log; sets
# QEMU_PID. QEMU is this shell's own child and gets SIGKILL when this script dies, however it
# dies (setpriv --pdeathsig), so no VM outlives its run.
boot() {
    local accel=$1 img=$2 ctl=$3 src=$4 out=$5 root kernel initrd cpu
    root=$("$TRIXIE" path)
    kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
    initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
    [[ -f $initrd ]] || die "no initrd for $kernel"
    local -a a
    if [[ $accel == kvm ]]; then a=(-accel kvm -cpu host); else a=(-accel tcg,thread=multi -cpu "${AA_KERNEL_TCG_CPU:-max,avx=off,avx2=off}"); fi
    a+=(-m "${AA_KERNEL_MEM:-4096}" -smp 2 -kernel "$kernel" -initrd "$initrd"
        -append "console=ttyS0 root=/dev/vda rw init=/usr/sbin/sockhook-aa-init apparmor=1 security=apparmor quiet loglevel=4 log_buf_len=8M panic=-1"
        -drive "file=$img,format=raw,if=virtio,snapshot=on,cache=unsafe"
        -virtfs "local,path=$ctl,mount_tag=ctl,security_model=none"
        -virtfs "local,path=$src,mount_tag=src,security_model=none,readonly=on"
        -display none -monitor none -serial "file:$ctl/console.log" -no-reboot -nic none
        -name sockhook-aa-kernel -pidfile "$ctl/qemu.pid")
    [[ -n $out ]] && a+=(-virtfs "local,path=$out,mount_tag=out,security_model=none")
    setpriv --pdeathsig KILL -- qemu-system-x86_64 "${a[@]}" </dev/null >"$ctl/qemu.log" 2>&1 &
    QEMU_PID=$!
}

# follow CTL PID DEADLINE : copy the console here as it grows, until QEMU ends, the guest has
# written its status (then QEMU gets a few seconds to power off), or DEADLINE (epoch s).
follow() {
    local ctl=$1 pid=$2 deadline=$3 shown=0 size done_at=
    while kill -0 "$pid" 2>/dev/null; do
        size=$(stat -c %s "$ctl/console.log" 2>/dev/null || echo 0)
        if ((size > shown)); then
            tail -c +$((shown + 1)) "$ctl/console.log" | head -c $((size - shown))
            shown=$size
        fi
        if [[ -f $ctl/rc && -z $done_at ]]; then done_at=$(date +%s); fi
        if [[ -n $done_at ]] && (($(date +%s) - done_at > 10)); then break; fi
        if (($(date +%s) >= deadline)); then
            log "the VM ran out of time; ending it"
            touch "$ctl/timed-out"
            break
        fi
        sleep 1
    done
    size=$(stat -c %s "$ctl/console.log" 2>/dev/null || echo 0)
    ((size > shown)) && tail -c +$((shown + 1)) "$ctl/console.log"
    return 0
}

# end_qemu PID : end our own QEMU child (TERM, then KILL after 5 s) and reap it.
end_qemu() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# sweep : end the VMs of runs that died without ending them (with --pdeathsig there should be
# none) and remove their control directories. Those live in $CACHE/runs (root's, 0700), so no
# other user can plant one; a pid is read only if it is a number, and a process is ended only
# if its command line names that run's own pidfile.
sweep() {
    local d owner q
    for d in "$CACHE"/runs/aa-kernel.*; do
        [[ -d $d ]] || continue
        owner=$(cat "$d/owner" 2>/dev/null || true)
        [[ $owner =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null && continue
        q=$(cat "$d/qemu.pid" 2>/dev/null || true)
        if [[ $q =~ ^[0-9]+$ ]] && tr '\0' '\n' <"/proc/$q/cmdline" 2>/dev/null | grep -qxF "$d/qemu.pid"; then
            log "ending the VM of a run that did not finish: pid $q"
            kill -KILL "$q" 2>/dev/null || true
        fi
        rm -rf "$d"
    done
}

cmd_run() {
    local src=$REPO out= timeout=2400 accel=auto
    while (($#)); do
        case $1 in
            --src) src=$(readlink -f "${2:?--src DIR}"); shift 2 ;;
            --out) out=$(readlink -f "${2:?--out DIR}"); shift 2 ;;
            --timeout) timeout=${2:?--timeout S}; shift 2 ;;
            --accel) accel=${2:?--accel auto|kvm|tcg}; shift 2 ;;
            *) break ;;
        esac
    done
    (($#)) || die "run what?"
    [[ -d $src ]] || die "no directory $src"
    [[ -z $out || -d $out ]] || die "no directory $out"
    local img; img=$(cmd_image)
    install -d -m 0700 "$CACHE/runs"
    sweep
    local ctl; ctl=$(mktemp -d "$CACHE/runs/aa-kernel.XXXXXX")
    echo $$ >"$ctl/owner"
    # shellcheck disable=SC2064 # expand $ctl now; $QEMU_PID is read when the trap runs
    trap 'if [[ -n $QEMU_PID ]]; then end_qemu "$QEMU_PID"; fi; rm -rf "'"$ctl"'"' EXIT
    trap 'exit 130' INT TERM
    cp "$SELF" "$ctl/aa-kernel.sh"
    printf '%s\0' "$@" >"$ctl/cmd"
    [[ -n $out ]] && touch "$ctl/has-out"
    printf 'CI=%q\n' "${CI:-}" >"$ctl/env"
    local deadline=$(($(date +%s) + timeout)) t0=$SECONDS ran=
    if [[ $accel == auto || $accel == kvm ]] && [[ -w /dev/kvm ]]; then
        echo "kvm" >"$ctl/accel"
        boot kvm "$img" "$ctl" "$src" "$out"
        local i
        for ((i = 0; i < 60; i++)); do
            [[ -f $ctl/booted ]] && break
            kill -0 "$QEMU_PID" 2>/dev/null || break
            sleep 1
        done
        if [[ -f $ctl/booted ]]; then
            ran=kvm
        else
            log "KVM did not bring the guest up ($(grep -m1 -iE 'error|fail' "$ctl/qemu.log" "$ctl/console.log" 2>/dev/null | cut -d: -f2- || echo 'no init within 60 s')); falling back to TCG"
            end_qemu "$QEMU_PID"; QEMU_PID=
            [[ $accel == kvm ]] && die "--accel kvm: KVM does not work here"
            rm -f "$ctl/console.log"
        fi
    fi
    if [[ -z $ran ]]; then
        echo "tcg" >"$ctl/accel"
        boot tcg "$img" "$ctl" "$src" "$out"
        ran=tcg
    fi
    log "booting Debian 13's kernel under ${ran^^} (timeout ${timeout} s)"
    follow "$ctl" "$QEMU_PID" "$deadline"
    end_qemu "$QEMU_PID"; QEMU_PID=
    if [[ -f $ctl/timed-out ]]; then
        log "timed out after $((SECONDS - t0)) s"
        return 124
    fi
    if [[ ! -f $ctl/rc ]]; then
        log "the VM ended without a result after $((SECONDS - t0)) s; QEMU said:"
        tail -n 20 "$ctl/qemu.log" >&2
        return 125
    fi
    local rc; rc=$(<"$ctl/rc")
    log "the command ended with status $rc after $((SECONDS - t0)) s under ${ran^^}"
    return "$rc"
}

# ------------------------------------------------------------------------------ the guest
# PID 1 inside the VM (from the init in the image): the same set-up trixie.sh's views get,
# plus what a real boot does for AppArmor (securityfs; libvirt's profiles loaded), then CMD.
cmd_guest() {
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    : >/ctl/booted
    # The initramfs has moved /dev (with /dev/pts), /proc, /sys and /run into the root already;
    # a second mount on top would give libvirt two /dev/pts to move into QEMU's namespace, and
    # its second move fails ("Unable to move /dev/pts mount ...: Invalid argument").
    mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security
    mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mkdir -p /dev/pts /dev/shm
    mountpoint -q /dev/pts || mount -t devpts -o ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
    mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    mountpoint -q /run || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
    mountpoint -q /tmp || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
    # As systemd leaves it: mounts propagate (libvirt makes QEMU's namespace a slave of it).
    mount --make-rshared /
    mkdir -p /src /out
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro src /src
    [[ -f /ctl/has-out ]] && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out
    hostname aa-kernel
    # Every AppArmor denial reaches the kernel log (the tests read it): without auditd, the
    # audit records go through printk, whose rate limit would drop some.
    sysctl -qw kernel.printk_ratelimit=0
    ip link set lo up 2>/dev/null || true
    # The profiles that matter here: libvirtd's (the hook runs inside it) and
    # virt-aa-helper's (which writes each VM's); libvirt loads each VM's own at its start.
    local p
    for p in usr.sbin.libvirtd usr.lib.libvirt.virt-aa-helper; do
        apparmor_parser -r "/etc/apparmor.d/$p" || echo "aa-kernel: cannot load $p"
    done
    echo "aa-kernel: kernel $(uname -r), accel $(cat /ctl/accel), lsm $(cat /sys/kernel/security/lsm)," \
        "apparmor enabled $(cat /sys/module/apparmor/parameters/enabled)"
    local -a cmd
    mapfile -d '' -t cmd </ctl/cmd
    local rc=0
    # shellcheck source=/dev/null
    . /ctl/env
    (cd / && env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        AA_KERNEL_ACCEL="$(cat /ctl/accel)" DEBIAN_FRONTEND=noninteractive "${cmd[@]}") </dev/null || rc=$?
    sync
    echo "$rc" >/ctl/rc.tmp && mv /ctl/rc.tmp /ctl/rc
    sync
    # Power off at once; the host ends QEMU anyway a few seconds after the status appears.
    python3 -c 'import ctypes; ctypes.CDLL(None).reboot(0x4321fedc)' 2>/dev/null
    poweroff -f 2>/dev/null
    sleep infinity
}

cmd_clean() { rm -f "$CACHE"/aa-*.img "$CACHE"/aa-*.img.ok "$CACHE"/aa-image.lock; }

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local cmd=${1:-}; shift || true
    case $cmd in
        image) cmd_image ;;
        run) cmd_run "$@" ;;
        clean) cmd_clean ;;
        __guest) cmd_guest "$@" ;;
        *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
