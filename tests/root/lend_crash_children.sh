#!/bin/bash
# R4 and R3 after a SIGKILL: the domain's lock must not outlive a killed hook in its children.
# The lock is an flock, which lasts as long as any copy of its open file description; a child
# the hook forked (a proxy's child before exec, a run-as-owner child, the owner-directory
# opener) inherits a copy. lend_crash.sh found `cleanup --stale`, started right after the kill,
# sometimes saying "left alone: a hook of this domain runs now" for a hook that was dead.
#
# Here the child is held deterministically: the hook runs under strace, which stops the proxy's
# child (SIGSTOP) as it enters setsid(), a call only that child makes, between fork and exec.
# Once the child sits there, the hook is SIGKILLed. Then:
#   - the child is gone (it dies with the hook: it had not dropped to the owner yet);
#   - `cleanup --stale` takes the domain's lock (within its own bound) and undoes the lend;
#   - the host is byte-identical to before the prepare.
# The child keeps no descriptor of the hook's but what it needs, so even a child that cannot die
# (one stuck in an owner's FUSE request) holds no lock.
#
#   bash tests/root/lend_crash_children.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools strace cpp timeout

lend_setup 5b0c9d8e-7f6a-4b5c-8d7e-6f5a4b3c2d15 pipewire-0
xml=$(lend_domain kidlock "$U" pipewire:proxy)
printf '%s' "$xml" >"$TMP/domain.xml"
host_snapshot >"$TMP/before"
setsid_nr=$(printf '#include <sys/syscall.h>\nSYS_setsid\n' | cpp -P | tail -1)
[[ $setsid_nr =~ ^[0-9]+$ ]] || die "cannot tell setsid's number: $setsid_nr"

# held_child HOOK : prints the pid of HOOK's child that strace holds stopped at setsid's entry.
held_child() {
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        [[ $(awk '{print $1}' /proc/"$c"/syscall 2>/dev/null) == "$setsid_nr" ]] &&
            [[ $(awk '{print $3}' /proc/"$c"/stat 2>/dev/null) == t ]] && { echo "$c"; return 0; }
    done
    return 1
}

strace -f -qq -o /dev/null -e trace=setsid -e inject=setsid:signal=SIGSTOP \
    "$SOCKHOOK" hook --config-dir "$etc" kidlock prepare begin - <"$TMP/domain.xml" \
    2>"$TMP/hook.err" &
tracer=$!
bg_pids+=("$tracer")
hook=
wait_until 10 bash -c "cat /proc/$tracer/task/*/children | grep -q ." || die "strace did not start the hook"
hook=$(awk '{ print $1; exit }' /proc/"$tracer"/task/*/children)
child=
for _ in $(seq 100); do child=$(held_child "$hook") && break; sleep 0.1; done
[[ -n $child ]] || die "the proxy's child was never held at setsid (hook $hook: $(cat "$TMP/hook.err"); its children: $(ps -o pid=,stat=,comm= --ppid "$hook" 2>&1 | tr '\n' ' '))"
say "the hook $hook has forked the proxy's child $child, held before exec; SIGKILL to the hook"
kill -9 "$hook"
wait_until 10 test ! -e /proc/"$hook" || die "the killed hook $hook did not go"

check "the hook's child $child died with it" wait_until 5 test ! -e /proc/"$child"
rc=0
"$SOCKHOOK" cleanup --stale >"$TMP/cleanup.out" 2>"$TMP/cleanup.err" || rc=$?
sed 's/^/#   cleanup --stale: /' "$TMP/cleanup.out" "$TMP/cleanup.err"
check "cleanup --stale right after the kill exits 0 (got $rc)" test "$rc" = 0
check "cleanup --stale takes the domain's lock (no 'left alone')" \
    not grep -q "^$U: left alone" "$TMP/cleanup.out"
check "cleanup --stale undoes the lend (no journal left)" test ! -e /run/sockhook/state/"$U".xml
same_host "$TMP/before" "a SIGKILL while a child was held, then cleanup --stale"

# Whatever the old code left (the child still held with the lock): let it go, clean up, and
# leave the host as it was for the next suite.
# strace ends once its last tracee has gone.
kill -9 "$child" 2>/dev/null || true
wait_until 5 test ! -e /proc/"$child" || true
kill "$tracer" 2>/dev/null || true
wait "$tracer" 2>/dev/null || true
"$SOCKHOOK" cleanup --stale >/dev/null 2>&1 || true
finish
