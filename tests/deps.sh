#!/usr/bin/env bash
# Installs what the test suite runs for real: libvirtd and QEMU, PipeWire, PulseAudio,
# weston, JACK tools, socat (the alternative we compare against), clang-format, and
# apparmor (its parser compiles the VM profiles in root/apparmor_rules; virt-aa-helper comes
# with libvirt-daemon-system), polkitd and pkexec (root/polkit_grant: `sockhook grant`), and
# libwayland-dev, wayland-protocols (sockhook-wayland-holder, where they have
# wp_security_context_v1) and wayland-utils (wayland-info, root/lend_wayland_context).
# Quick when everything is there already. Debian/Ubuntu only (apt-get).
#
#   tests/deps.sh            the test packages
#   tests/deps.sh --fuzz     and clang with its libFuzzer runtime (tests/fuzz/)
set -euo pipefail

fuzz=no
[[ ${1:-} == --fuzz ]] && fuzz=yes

pkgs=(
  build-essential cmake pkg-config libvirt-dev libpugixml-dev libcli11-dev doctest-dev
  libacl1-dev nlohmann-json3-dev libpipewire-0.3-dev libwayland-dev wayland-protocols
  scdoc man-db bash-completion
  acl socat python3 util-linux procps psmisc strace stress-ng bc
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
  qemu-system-gui qemu-utils apparmor
  pipewire pipewire-bin pipewire-pulse pipewire-jack wireplumber jackd2
  pulseaudio pulseaudio-utils weston wayland-utils xvfb dbus polkitd pkexec
  clang-format
)

if ! command -v apt-get >/dev/null; then
  echo "tests/deps.sh: no apt-get; install the equivalents of: ${pkgs[*]} (and clang for --fuzz)" >&2
  exit 0
fi

# Names that differ between releases, asked of apt (it knows installed packages even
# without package lists). Since Debian 13, jack_lsp is in jack-example-tools, not jackd2.
apt-cache show jack-example-tools >/dev/null 2>&1 && pkgs+=(jack-example-tools)
if [[ $fuzz == yes ]]; then
  # libFuzzer's runtime is versioned like the clang that the release's "clang" depends on
  # (14 on Debian 12, 19 on Debian 13).
  clang_ver=$(apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1)
  [[ -n $clang_ver ]] || { echo "tests/deps.sh: cannot tell which clang this release has" >&2; exit 1; }
  pkgs+=(clang "libclang-rt-$clang_ver-dev")
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
