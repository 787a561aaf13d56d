#!/usr/bin/env bash
# e2e_own_vm.sh - a lend reaches only its own VM (S10, issue 18). Two real VMs, A and B, each
# with a proxy lend of the owner's real PulseAudio. Every VM's QEMU runs as one uid, so what
# tells A's QEMU from B's is the cgroup libvirt puts each in before QEMU execs. A's proxy
# serves a process with QEMU's uid in A's cgroup and refuses one in B's cgroup and one in no
# VM's cgroup, with one log line naming its pid, uid and cgroup. After A stops and B starts
# again under a new domain id, nothing of A's is reachable; the host is byte-identical after
# each stop. A's name has a space and a non-ASCII letter, which libvirt drops from the cgroup's
# name: only the domain id tells the two apart there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

A="${E2E_PREFIX}own ü a"
B=${E2E_PREFIX}own-b
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$A" UA
define_domain "$B" UB
syslog_listen

# pulse_via UUID CGROUP_PID : pactl as QEMU's user through domain UUID's lend, in the cgroup of
# process CGROUP_PID ("" for none: the cgroup it starts in, no VM's).
pulse_via() { pulse_as_qemu "$1" ${2:+in_cgroup_of "$2"}; }
refused() { pulse_refused "$1" ${2:+in_cgroup_of "$2"}; }
domain_id() { virsh_ domid "$1" | tr -d '[:space:]'; }
cgroup_line() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }

annotate "$A" --plugin pulseaudio --owner "$SH_USER" --method proxy >/dev/null
annotate "$B" --plugin pulseaudio --owner "$SH_USER" --method proxy >/dev/null
host_snapshot >"$BEFORE"

say "B runs; then A"
started "$B" "B, proxy lend" || die "B did not start"
MID=$TMP/b-running
host_snapshot >"$MID"
started "$A" "A, proxy lend" || die "A did not start"
check "both QEMUs are clients of the owner's PulseAudio, each through its own proxy" \
    wait_until "$E2E_TIMEOUT" has_pulse_clients 2
QA=$(qemu_pid "$A")
QB=$(qemu_pid "$B")
IDA=$(domain_id "$A")
IDB=$(domain_id "$B")
show "A: id $IDA, QEMU $QA in $(cgroup_line "$QA"); B: id $IDB, QEMU $QB in $(cgroup_line "$QB")"

# proxy_log : what the proxies logged (refusals name pid, uid and cgroup), when a check fails.
proxy_log() { [[ -s $TMP/syslog ]] && grep -a 'proxy for' "$TMP/syslog" | tail -5 | sed 's/^/#   /'; true; }
served() { pulse_via "$@" || { proxy_log; return 1; }; }

say "who A's proxy serves"
check "QEMU's uid in A's cgroup is served by A's proxy" served "$UA" "$QA"
check "QEMU's uid in B's cgroup is refused by A's proxy" refused "$UA" "$QB"
check "the refusal is logged once, naming the peer's uid and B's cgroup" \
    logged_once "uid $QEMU_UID cgroup $(cgroup_line "$QB"): not in this VM's cgroup"
check "QEMU's uid in no VM's cgroup is refused by A's proxy" refused "$UA" ""
check "QEMU's uid in A's cgroup is refused by B's proxy" refused "$UB" "$QA"
check "QEMU's uid in B's cgroup is served by B's proxy" served "$UB" "$QB"
check "A's QEMU is still a client through its lend" has_pulse_clients 2

say "A stops; B starts again under a new domain id"
stop "$A"
check "A's stop leaves the host as it was with B alone running" same_as_before "$MID"
stop "$B"
check "B's stop leaves the host byte-identical" same_as_before "$BEFORE"
started "$B" "B again" || die "B did not start again"
QB=$(qemu_pid "$B")
check "B has a new domain id ($IDB before, $(domain_id "$B") now)" test "$(domain_id "$B")" != "$IDB"
check "nothing of A's is reachable from B's new cgroup" refused "$UA" "$QB"
check "A's lend directory is gone" test ! -e "/run/sockhook/libvirt-$UA"
check "B's new QEMU is served by B's proxy" served "$UB" "$QB"
stop "$B"
check "B's stop leaves the host byte-identical" same_as_before "$BEFORE"
finish
