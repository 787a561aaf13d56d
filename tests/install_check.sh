#!/usr/bin/env bash
# install_check.sh - install.sh on a machine without libvirt says what is missing and how to
# get it, in the words of the distribution's package manager (issue 20, item 9).
#
#   bash tests/install_check.sh path/to/install.sh
#
# `install.sh --check-libvirt` runs the same check that an installation runs first and last.
# libvirt's presence is faked both ways without touching the host: SOCKHOOK_INSTALL_SBIN
# points the check at an empty directory (or one with a stub virtqemud), and PATH holds only a
# stub package manager. tests/root/doctor_no_libvirt.sh hides the real libvirt instead.
set -euo pipefail
script=$(readlink -f "${1:?usage: $0 path/to/install.sh}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() {  # check WHAT CMD...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   - $what"; else fail=$((fail + 1)); echo "FAIL - $what"; fi
}

mkdir -p "$tmp/empty" "$tmp/sbin" "$tmp/apt" "$tmp/dnf" "$tmp/none"
for pm in apt/apt-get dnf/dnf sbin/virtqemud; do
  printf '#!/bin/sh\nexit 0\n' >"$tmp/$pm"
  chmod +x "$tmp/$pm"
done
# run SBIN PATH : install.sh --check-libvirt, its output in $out and its status in $rc.
run() {
  rc=0
  out=$(SOCKHOOK_INSTALL_SBIN=$1 PATH=$2 "$BASH" "$script" --check-libvirt 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/#   /'
}
has() { grep -qF -- "$1" <<<"$out"; }

run "$tmp/empty" "$tmp/apt"
check "without libvirt (apt): exit 1" test "$rc" -eq 1
check "without libvirt (apt): says libvirt is not installed" has "libvirt is not installed"
check "without libvirt (apt): says how to get it" \
  has "apt-get install libvirt-daemon-system qemu-system-x86"
run "$tmp/empty" "$tmp/dnf"
check "without libvirt (dnf): says how to get it with dnf" has "dnf install libvirt-daemon-kvm"
run "$tmp/empty" "$tmp/none"
check "without libvirt or a known package manager: still names what to install" \
  has "your distribution's libvirt daemon and QEMU packages"
run "$tmp/sbin" "$tmp/apt"
check "with virtqemud: exit 0" test "$rc" -eq 0
check "with virtqemud: says libvirt is installed" has "libvirt is installed"

echo "# $pass passed, $fail failed"
((fail == 0))
