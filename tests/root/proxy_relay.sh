#!/usr/bin/env bash
# proxy_relay.sh - `sockhook proxy` as a real process: it relays for the peer uid it was
# given, refuses every other uid (root included), stops on SIGTERM with exit 0, and its
# clients then get EOF. spawn_proxy's privilege drop is checked by the root-only case in
# tests/proxy_test.cpp; here the proxy is started the way an administrator would debug it.
#
#   bash tests/root/proxy_relay.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
set -euo pipefail
SOCKHOOK=${1:?usage: proxy_relay.sh /path/to/sockhook}
if [[ $(id -u) != 0 ]]; then
    echo "proxy_relay: skipped: needs root (runs the proxy as nobody)"
    exit 77
fi
for tool in python3 socat setpriv timeout; do
    command -v "$tool" >/dev/null || { echo "proxy_relay: skipped: $tool missing"; exit 77; }
done

dir=$(mktemp -d /tmp/proxy-relay-XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "proxy_relay: FAIL: $*" >&2; exit 1; }
nobody_uid=$(id -u nobody)

# The real server: an echo that anyone may reach (the proxy runs as nobody).
socat "UNIX-LISTEN:$dir/server,fork,mode=777" EXEC:cat &
pids+=($!)

# The proxy as nobody, serving only nobody, with the listening socket as fd 3.
python3 - "$dir" "$SOCKHOOK" "$nobody_uid" <<'EOF' &
import os, socket, sys
d, exe, peer = sys.argv[1:4]
listener = socket.socket(socket.AF_UNIX)
listener.bind(d + "/proxy")
os.chmod(d + "/proxy", 0o777)
listener.listen(16)
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.execvp("setpriv", ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "--no-new-privs", exe, "proxy", "--listen-fd", "3", "--connect",
                      d + "/server", "--peer-uid", peer, "--label", "test/relay"])
EOF
proxy=$!
pids+=("$proxy")
for _ in $(seq 50); do [[ -S $dir/proxy && -S $dir/server ]] && break; sleep 0.1; done
sleep 0.3
kill -0 "$proxy" 2>/dev/null || fail "the proxy exited at once (is 'sockhook proxy' wired?)"
grep -q "test/relay" "/proc/$proxy/cmdline" || fail "the label is not in the command line"
[[ $(awk '/^Uid:/ { print $2 }' "/proc/$proxy/status") == "$nobody_uid" ]] ||
    fail "the proxy does not run as nobody"

echo "relays for the peer uid"
got=$(echo hello | timeout 5 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    socat -t 1 - "UNIX-CONNECT:$dir/proxy")
[[ $got == hello ]] || fail "nobody's client got '$got' instead of the echo"

echo "refuses root"
got=$(echo hello | timeout 5 socat -t 1 - "UNIX-CONNECT:$dir/proxy" 2>/dev/null || true)
[[ -z $got ]] || fail "root's client was served: '$got'"

echo "stops on SIGTERM, and its client gets EOF"
exec {client}< <(timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups \
    socat -u "UNIX-CONNECT:$dir/proxy" - </dev/null; echo "client-done")
sleep 0.3
kill -TERM "$proxy"
rc=0
wait "$proxy" || rc=$?
[[ $rc == 0 ]] || fail "the proxy exited with $rc after SIGTERM"
read -r -t 5 line <&"$client" || fail "the client did not get EOF"
[[ $line == client-done ]] || fail "unexpected client output '$line'"
echo "proxy_relay: ok"
