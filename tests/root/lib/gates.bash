# shellcheck shell=bash
# gates.bash - what a suite needs of the host before the library starts anything. A suite that
# may not run everywhere sources it before suite.bash, naming its gates (need_GATE each):
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/gates.bash" [GATE...]
# A gate that fails skips (exit 77) with one line saying why; nothing is set up yet, so nothing
# needs cleaning up (suite.bash's skip, defined later, ends a suite that has begun).

skip() { echo "SKIP: $*"; exit 77; }

# version_number "X.Y.Z" -> X*1000000 + Y*1000 + Z, libvirt's own encoding.
version_number() { awk -F. '{ printf "%d\n", $1 * 1000000 + $2 * 1000 + $3 }' <<<"$1"; }

# need_pipewire_audio : QEMU's own PipeWire audio backend under libvirt: libvirt >= 9.10 (it has
# <audio type='pipewire'>), QEMU >= 8.1 and its module audio-pipewire.so. Sets $lv and $qv,
# the versions of libvirt and QEMU.
need_pipewire_audio() {
    command -v libvirtd >/dev/null && command -v qemu-system-x86_64 >/dev/null ||
        skip "libvirtd or qemu-system-x86_64 is not installed"
    lv=$(libvirtd --version | grep -o '[0-9][0-9.]*$')
    qv=$(qemu-system-x86_64 --version | sed -n '1s/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p')
    (($(version_number "$lv") >= 9010000)) ||
        skip "libvirt $lv has no <audio type='pipewire'> (needs libvirt >= 9.10)"
    (($(version_number "$qv") >= 8001000)) ||
        skip "QEMU $qv has no PipeWire audio backend (needs QEMU >= 8.1)"
    compgen -G "/usr/lib/*/qemu/audio-pipewire.so" >/dev/null ||
        skip "QEMU's PipeWire module audio-pipewire.so is missing (package qemu-system-gui)"
}

# need_wayland_context : sway, and wayland-protocols >= 1.32 (security-context-v1.xml), without
# which no sockhook-wayland-holder is built (Debian 12 has 1.31).
need_wayland_context() {
    local xml=/usr/share/wayland-protocols/staging/security-context/security-context-v1.xml
    [[ -f $xml ]] || skip "no $xml (wayland-protocols < 1.32): no sockhook-wayland-holder can be built here"
    command -v sway >/dev/null || skip "sway is not installed"
}

# The gates the suite names when it sources this file.
for gate in "$@"; do "need_$gate"; done
unset gate
