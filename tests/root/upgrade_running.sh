#!/usr/bin/env bash
# upgrade_running.sh - an upgrade while a VM runs (issue 17, item 8): the previous release
# lends, the new one takes over the same journal and releases exactly.
#
# For a bind and a proxy lend of the real PulseAudio, in turn:
#   the previous release (the commit in tests/root/lib/upgrade-from) is the hook and starts
#   the VM: it writes the journal and the lends;
#   the package is upgraded: the new binary replaces the hook file (a new inode, as dpkg's
#   rename does) while QEMU and the old release's proxy run on;
#   the new binary's `status` reads the old journal and says ok;
#   libvirtd restarts: the new hook's `reconnect` keeps the lend (the same proxy);
#   the VM stops: the new hook's `release` undoes what the old one did, and the host is
#   byte-identical to before the start (with the old hook file put back for the comparison:
#   /etc is compared by content).
#
# The previous release's binary: SOCKHOOK_UPGRADE_FROM=BINARY, or else it is built here from
# the repository's history (git archive of that commit; cached, by commit, in
# ${SOCKHOOK_TEST_CACHE:-/var/cache/sockhook-tests}). Without git history or a compiler the
# suite skips and says so. When the journal format changes, this suite is where the new
# release proves it still reads (or quarantines and cleans up) the old one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

[[ $E2E_INSTALLED == 1 ]] && skip "installed mode: the upgrade replaces the hook, which is the package's here"

# old_release : OLD is the path of the previous release's binary, built when needed.
old_release() {
    if [[ -n ${SOCKHOOK_UPGRADE_FROM:-} ]]; then
        [[ -x $SOCKHOOK_UPGRADE_FROM ]] || die "SOCKHOOK_UPGRADE_FROM=$SOCKHOOK_UPGRADE_FROM is not an executable"
        OLD=$SOCKHOOK_UPGRADE_FROM
        return
    fi
    local from cache src log
    from=$(sed -n 's/^commit \([0-9a-f]\{40\}\)$/\1/p' "$REPO/tests/root/lib/upgrade-from")
    [[ -n $from ]] || die "tests/root/lib/upgrade-from names no commit"
    cache=${SOCKHOOK_TEST_CACHE:-/var/cache/sockhook-tests}/upgrade-from-$from
    if [[ ! -x $cache/sockhook ]]; then
        command -v git >/dev/null && git -C "$REPO" cat-file -e "$from^{commit}" 2>/dev/null ||
            skip "the previous release ($from) is not in a git history here; SOCKHOOK_UPGRADE_FROM=BINARY names its binary"
        command -v cmake >/dev/null && command -v c++ >/dev/null || skip "no cmake or C++ compiler to build the previous release"
        src=$TMP/old-src log=$TMP/old-build.log
        mkdir -p "$src"
        git -C "$REPO" archive "$from" | tar -x -C "$src"
        say "building the previous release $from (the binary only, unoptimised: it only has to run; log $log)"
        local launcher=()
        command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
        { cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE= -DSOCKHOOK_TESTS=OFF \
            -DSOCKHOOK_MAN=OFF "${launcher[@]}" &&
            cmake --build "$src/build" -j2 --target sockhook; } >"$log" 2>&1 ||
            { show "$(tail -20 "$log")"; die "the previous release $from does not build"; }
        install -D -m 0755 "$src/build/sockhook" "$cache/sockhook"
    fi
    OLD=$cache/sockhook
}
old_release
OLD_HOOK=$TMP/old-hook
cp "$OLD" "$OLD_HOOK"
say "previous release: $OLD ($("$OLD" --version 2>/dev/null || echo 'no --version'))"
say "new release: $SOCKHOOK"

D=${E2E_PREFIX}upgrade
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$D" U

proxy_pids() { ps -u "$SH_UID" -o pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "sockhook" { print $1 }' | sort; }
# status_ok_by BINARY : BINARY's `status --json` lists the domain's lends, every one ok.
status_ok_by() {
    "$1" status --json | python3 -c '
import json, sys
lends = [l for l in json.load(sys.stdin) if l["uuid"] == sys.argv[1]]
sys.exit(0 if lends and all(l["health"] == "ok" for l in lends) else 1)' "$U"
}
# lent_to_qemu WHEN : the running QEMU is PulseAudio's client through the lend, and a new
# client as QEMU's user in QEMU's namespace and cgroup gets through.
lent_to_qemu() {
    check "$1: QEMU is a PulseAudio client" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    check "$1: a new client as QEMU's user gets through the lend" pulse_as_qemu "$U" in_qemu_ns "$D"
}
# hook_is BINARY : the hook libvirt runs is BINARY's copy, on a new inode (dpkg renames over it).
hook_is() { install -m 0755 -o root -g root "$1" "$HOOK.new" && mv -f "$HOOK.new" "$HOOK"; }

for method in bind proxy; do
    say "method $method"
    hook_is "$OLD_HOOK"
    # The previous release annotates, as a user of it did.
    "$OLD" annotate "$D" --plugin pulseaudio --owner "$SH_USER" --method "$method" >/dev/null
    host_snapshot >"$BEFORE"
    started "$D" "by the previous release ($method)" || continue
    lent_to_qemu "the previous release's lend"
    check "the previous release wrote the journal" test -f "/run/sockhook/state/$U.xml"
    proxies=$(proxy_pids)
    if [[ $method == proxy ]]; then
        check "the previous release's proxy runs" test "$(wc -w <<<"$proxies")" -eq 1
    fi

    say "$method: the upgrade, while the VM runs"
    hook_is "$SOCKHOOK"
    check "the new release's status reads the old journal: ok" status_ok_by "$SOCKHOOK"
    lent_to_qemu "after the upgrade"

    say "$method: libvirtd restarts (the new hook's reconnect)"
    if "$LIBVIRT" restart >"$TMP/restart.out" 2>&1; then
        check "after the restart the domain runs" wait_until "$E2E_TIMEOUT" is_running "$D"
        check "reconnect kept the same proxies (the old release's, for a proxy lend)" \
            test "$(proxy_pids)" == "$proxies"
        check "the new release's status still says ok" status_ok_by "$SOCKHOOK"
        lent_to_qemu "after reconnect by the new release"
    else
        not_ok "libvirtd restart: $(tr '\n' ' ' <"$TMP/restart.out")"
    fi

    say "$method: the VM stops (the new hook's release)"
    check "virsh destroy" stop "$D"
    check "the new release ended the journal" test ! -e "/run/sockhook/state/$U.xml"
    check "no proxy is left" test -z "$(proxy_pids)"
    # The hook file is the one difference an upgrade makes on purpose.
    hook_is "$OLD_HOOK"
    same_host "$BEFORE" "$method: prepared by the previous release, released by the new one"
done
hook_is "$SOCKHOOK"
finish
