#!/usr/bin/env bash
# libvirt.sh - run the system libvirt daemons without systemd, and tiny test domains.
#
# CI machines have no systemd, so nothing socket-activates libvirtd: we start the
# monolithic daemon and its log daemon by hand and track them by their own pid
# files.  Test domains are named shtest-* so `down` knows what is ours.
#
# Usage (as root):
#   libvirt.sh up                     start virtlogd + libvirtd if needed, wait for virsh
#   libvirt.sh down                   destroy+undefine shtest-* domains, stop both daemons
#   libvirt.sh reload                 SIGHUP libvirtd (re-reads hooks), wait until it answers
#   libvirt.sh restart                stop + start libvirtd only (virtlogd keeps running)
#   libvirt.sh status
#   libvirt.sh xml NAME [DEVICES_XML [TOPLEVEL_XML]]     print a test domain's XML
#   libvirt.sh define NAME [DEVICES_XML [TOPLEVEL_XML]]  define it (NAME must start shtest-)
#       DEVICES_XML: file spliced into <devices> (e.g. an <audio> element); without
#         it the domain gets <audio id='1' type='none'/>.  "-" means none.
#       TOPLEVEL_XML: file spliced into <domain> (e.g. <qemu:commandline>); the
#         qemu: namespace is always declared.
#   libvirt.sh undefine NAME          destroy (if running) and undefine
#
# Overridable: LV_TIMEOUT (seconds per bounded wait, default 60: the very first
# libvirtd start probes QEMU capabilities, which took 12 s here).
set -euo pipefail

LV_TIMEOUT=${LV_TIMEOUT:-60}
URI=qemu:///system
LIBVIRTD_PID=/run/libvirtd.pid    # written by `libvirtd -d` itself
VIRTLOGD_PID=/run/virtlogd.pid    # written by `virtlogd -d` itself
PREFIX=shtest-

ENV_NAME=libvirt.sh
WAIT_TIMEOUT=$LV_TIMEOUT
# shellcheck source=SCRIPTDIR/common.bash
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
virsh_() { virsh -q -c "$URI" "$@"; }

start_virtlogd() {
    pid_alive "$VIRTLOGD_PID" >/dev/null && return 0
    # QEMU's stdout/stderr go through virtlogd; without it every start fails.
    virtlogd -d
    wait_for "virtlogd socket" test -S /run/libvirt/virtlogd-sock
}

start_libvirtd() {
    pid_alive "$LIBVIRTD_PID" >/dev/null && return 0
    # -d daemonizes after the sockets exist, but the QEMU driver finishes its
    # capability probing later, hence the wait for a real answer below.
    libvirtd -d
    wait_for "virsh version" virsh_ version
}

# Without udev, /dev/kvm stays root:root 0600.  libvirt probes QEMU as root (KVM
# works), then on every domain start finds that the QEMU user cannot open
# /dev/kvm, declares its capability cache stale and re-probes: ~4 s per
# `virsh start` instead of ~0.3 s.  Give it the owner/mode Debian's udev rule
# (50-udev-default.rules: GROUP="kvm", MODE="0660") would.  devtmpfs forgets this
# at reboot.  Our domains are type='qemu' (TCG) either way.
fix_kvm_node() {
    [[ -c /dev/kvm ]] || return 0
    getent group kvm >/dev/null || return 0
    if [[ $(stat -c '%G %a' /dev/kvm) != "kvm 660" ]]; then
        log "NOTE: setting /dev/kvm to root:kvm 0660 (what udev would do)"
        chgrp kvm /dev/kvm
        chmod 0660 /dev/kvm
    fi
}

cmd_up() { fix_kvm_node; start_virtlogd; start_libvirtd; }

our_domains() {
    pid_alive "$LIBVIRTD_PID" >/dev/null || return 0
    virsh_ list --all --name | grep "^$PREFIX" || true
}

cmd_undefine() {
    local name=${1:?undefine NAME}
    if [[ $(virsh_ domstate "$name" 2>/dev/null || true) == running ]]; then
        virsh_ destroy "$name" >/dev/null
    fi
    virsh_ undefine "$name" >/dev/null 2>&1 || true
}

cmd_down() {
    local d
    # One name a line: a name may hold spaces (tests/root/lend_names.sh).
    while IFS= read -r d; do cmd_undefine "$d"; done < <(our_domains)
    stop_pidfile libvirtd "$LIBVIRTD_PID"
    stop_pidfile virtlogd "$VIRTLOGD_PID"
}

cmd_reload() {
    local pid; pid=$(pid_alive "$LIBVIRTD_PID") || die "libvirtd is not running"
    # libvirt looks hook scripts up at start-up and on SIGHUP only.
    kill -HUP "$pid"
    wait_for "virsh version after SIGHUP" virsh_ version
}

cmd_restart() {
    stop_pidfile libvirtd "$LIBVIRTD_PID"
    fix_kvm_node
    start_virtlogd
    start_libvirtd
}

cmd_status() {
    local p
    if p=$(pid_alive "$VIRTLOGD_PID"); then echo "virtlogd running pid $p"; else echo "virtlogd stopped"; fi
    if p=$(pid_alive "$LIBVIRTD_PID"); then echo "libvirtd running pid $p"; else echo "libvirtd stopped"; fi
    local d
    while IFS= read -r d; do echo "domain $d $(virsh_ domstate "$d")"; done < <(our_domains)
}

# A guest that boots nothing: SeaBIOS spins without a disk, which is all the
# audio backend needs.  type='qemu' = TCG, so no /dev/kvm is required; 64 MiB,
# no disk, no NIC, no display; an ich9 HDA codec connected to audio id 1.
cmd_xml() {
    local name=${1:?xml NAME [DEVICES_XML [TOPLEVEL_XML]]}
    local devices=${2:--} toplevel=${3:--}
    [[ $name == "$PREFIX"* ]] || die "domain names must start with $PREFIX (so 'down' can clean up)"
    cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <video><model type='none'/></video>
    <memballoon model='none'/>
    <sound model='ich9'/>
EOF
    if [[ $devices != - ]]; then
        sed 's/^/    /' "$devices"
    else
        echo "    <audio id='1' type='none'/>"
    fi
    echo "  </devices>"
    [[ $toplevel == - ]] || sed 's/^/  /' "$toplevel"
    echo "</domain>"
}

cmd_define() {
    local tmp; tmp=$(mktemp)
    # shellcheck disable=SC2064 # expand now: $tmp is local
    trap "rm -f '$tmp'" RETURN
    cmd_xml "$@" >"$tmp"
    virsh_ define "$tmp" >/dev/null
    echo "defined $1"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local cmd=${1:-}; shift || true
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        reload) cmd_reload ;;
        restart) cmd_restart ;;
        status) cmd_status ;;
        xml) cmd_xml "$@" ;;
        define) cmd_define "$@" ;;
        undefine) cmd_undefine "$@" ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
