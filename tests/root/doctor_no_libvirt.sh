#!/usr/bin/env bash
# doctor_no_libvirt.sh - on a machine without libvirt, doctor and install.sh say "install
# libvirt" (issue 20, item 9), shown with the real binary and the real install.sh.
#
# libvirt is hidden, not uninstalled: in a private mount namespace its daemons are covered by
# /dev/null (not executable), qemu.conf is empty, /run/libvirt is an empty tmpfs, and passwd and
# group lose QEMU's users (libvirt-qemu, qemu), as on a host where no libvirt package ever
# created them. Nothing outside that namespace changes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools unshare

unshare -m --propagation private bash -s "$SOCKHOOK" "$REPO/install.sh" "$TMP" <<'INNER'
set -eu
sockhook=$1 install=$2 tmp=$3
for d in /usr/sbin /usr/local/sbin /sbin /usr/bin; do
    for f in libvirtd virtqemud; do
        if [[ -e $d/$f && ! -L $d/$f ]]; then mount --bind /dev/null "$d/$f"; fi
    done
done
grep -v -E '^(libvirt-qemu|qemu):' /etc/passwd >"$tmp/passwd"
grep -v -E '^(libvirt-qemu|qemu):' /etc/group >"$tmp/group"
mount --bind "$tmp/passwd" /etc/passwd
mount --bind "$tmp/group" /etc/group
if [[ -e /etc/libvirt/qemu.conf ]]; then mount --bind /dev/null /etc/libvirt/qemu.conf; fi
if [[ -d /run/libvirt ]]; then mount -t tmpfs tmpfs /run/libvirt; fi
if [[ -d /var/run/nscd ]]; then mount -t tmpfs tmpfs /var/run/nscd; fi  # no cached passwd
"$sockhook" doctor >"$tmp/doctor.out" 2>&1 || true
bash "$install" --check-libvirt >"$tmp/install.out" 2>&1 || true
INNER

show "$(cat "$TMP/doctor.out")"
check "doctor says libvirt is not installed" grep -q "FAIL  libvirt is not installed" "$TMP/doctor.out"
check "doctor's advice for QEMU's user is 'install libvirt'" \
    grep -q "^      install libvirt (its package creates QEMU's user)" "$TMP/doctor.out"
check "doctor no longer says to set user and group in qemu.conf" \
    bash -c "! grep -q 'set user and group in /etc/libvirt/qemu.conf' '$TMP/doctor.out'"
show "$(cat "$TMP/install.out")"
check "install.sh says libvirt is not installed, and how to get it" \
    grep -q "libvirt is not installed.*" "$TMP/install.out"
check "install.sh names the package" grep -q "Install it with: apt-get install libvirt-daemon-system" \
    "$TMP/install.out"
finish
