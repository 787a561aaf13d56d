#!/usr/bin/env bash
# Installs what the test suite runs for real: libvirtd and QEMU, PipeWire, PulseAudio,
# weston, JACK tools, socat (the alternative we compare against), clang for the fuzzers, and
# apparmor (its parser compiles the VM profiles in root/apparmor_rules; virt-aa-helper comes
# with libvirt-daemon-system).
# Quick when everything is there already. Debian/Ubuntu only (apt-get).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config libvirt-dev libpugixml-dev libcli11-dev doctest-dev
  libacl1-dev nlohmann-json3-dev scdoc man-db bash-completion
  acl socat python3 util-linux procps psmisc strace stress-ng
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
  qemu-system-gui apparmor
  pipewire pipewire-bin pipewire-pulse pipewire-jack wireplumber jackd2
  pulseaudio pulseaudio-utils weston xvfb dbus
  clang libclang-rt-14-dev clang-format
)

if ! command -v apt-get >/dev/null; then
  echo "tests/deps.sh: no apt-get; install the equivalents of: ${pkgs[*]}" >&2
  exit 0
fi
missing=$(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${pkgs[@]}" 2>&1 |
  grep -v '^installed ' || true)
[[ -z $missing ]] && exit 0
if ((EUID != 0)); then
  echo "tests/deps.sh: missing packages, and not root to install them:" >&2
  echo "$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
