#!/usr/bin/env bash
# proxy_relay.sh - `sockhook proxy` as a real process: it relays for the peer uid it was
# given in the domain's cgroup it was given, refuses every other uid (root included) and that
# uid in another VM's cgroup or in none (S10), stops on SIGTERM with exit 0, and its clients
# then get EOF. spawn_proxy's privilege drop is checked by the root-only case in
# tests/unit/proxy/proxy_test.cpp; here the proxy is started the way an administrator would debug it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools python3 socat setpriv timeout

proxy_init
dir=$TMP

# The real server: an echo that anyone may reach (the proxy runs as nobody).
socat "UNIX-LISTEN:$dir/server,fork,mode=777" EXEC:cat &
bg_pids+=($!)

# The proxy as nobody, serving only nobody, with the listening socket as fd 3.
proxy_as_nobody "$dir" 16 test/relay
wait_until 5 test -S "$dir/proxy" -a -S "$dir/server" || true
sleep 0.3
kill -0 "$proxy" 2>/dev/null || die "the proxy exited at once (is 'sockhook proxy' wired?)"
grep -q "test/relay" "/proc/$proxy/cmdline" || die "the label is not in the command line"
[[ $(awk '/^Uid:/ { print $2 }' "/proc/$proxy/status") == "$nobody_uid" ]] ||
    die "the proxy does not run as nobody"
ok "the proxy runs as nobody, labelled test/relay"

# ask CMD... : sends "hello" through the proxy with CMD and leaves the answer in $got; a client
# that could not even join its cgroup (exit 99) stops the suite rather than pass as refused.
ask() {
    local rc=0
    got=$(echo hello | "$@" 2>/dev/null) || rc=$?
    [[ $rc != 99 ]] || die "the client could not join its cgroup: $*"
}
ask as_nobody_in_domain "$lend_id" timeout 5 socat -t 1 - "UNIX-CONNECT:$dir/proxy"
[[ $got == hello ]] || die "nobody's client in domain $lend_id's cgroup got '$got' instead of the echo"
ok "relays for the peer uid in its domain's cgroup"

ask in_domain_cgroup "$lend_id" timeout 5 socat -t 1 - "UNIX-CONNECT:$dir/proxy"
[[ -z $got ]] || die "root's client was served: '$got'"
ok "refuses root, even in the domain's cgroup"

# Another VM: the same uid, in domain $((lend_id + 1))'s cgroup; and one with a longer id that
# starts with the same digits (4242 vs 42420).
for other in $((lend_id + 1)) "${lend_id}0"; do
    ask as_nobody_in_domain "$other" timeout 5 socat -t 1 - "UNIX-CONNECT:$dir/proxy"
    [[ -z $got ]] || die "QEMU's uid in domain $other's cgroup was served: '$got'"
    ok "refuses the peer uid in another VM's cgroup (domain $other)"
done
ask timeout 5 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    socat -t 1 - "UNIX-CONNECT:$dir/proxy"
[[ -z $got ]] || die "the peer uid outside any VM's cgroup was served: '$got'"
ok "refuses the peer uid outside any VM's cgroup"

exec {client}< <(as_nobody_in_domain "$lend_id" timeout 10 \
    socat -u "UNIX-CONNECT:$dir/proxy" - </dev/null; echo "client-done")
sleep 0.3
kill -TERM "$proxy"
rc=0
wait "$proxy" || rc=$?
[[ $rc == 0 ]] || die "the proxy exited with $rc after SIGTERM"
ok "stops on SIGTERM with exit 0"
read -r -t 5 line <&"$client" || die "the client did not get EOF"
[[ $line == client-done ]] || die "unexpected client output '$line'"
ok "its client then gets EOF"
finish
