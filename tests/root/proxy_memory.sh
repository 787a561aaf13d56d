#!/usr/bin/env bash
# proxy_memory.sh - the proxy's memory is bounded and given back (issue 9, item 6). A real
# `sockhook proxy` (product defaults: no limit flags) relays for nobody to an echo server.
# 1024 clients of the peer uid connect: the first 512 (the default connection cap) are served,
# the others get EOF at once. First each one sends and reads back 16 KiB, then each one sends
# 512 KiB without reading, so that every queue in the proxy fills to its cap (64 KiB per
# direction by default). The proxy's RSS (VmRSS) must stay under a stated bound in both
# phases, and come back near idle when all clients are gone. Memory figures are asserted;
# timings are not.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools setpriv timeout
clients=1024
cap=512                           # ProxyLimits::max_connections, the product default
bound_echoed_kib=$((16 * 1024))   # 512 idle connections after one exchange each
bound_full_kib=$((80 * 1024))     # every queue full: 512 x 2 x 64 KiB = 64 MiB, and overhead
bound_after_kib=$((8 * 1024))     # above idle, once every client has gone

proxy_init
dir=$TMP
chmod 777 "$dir"
trap '' PIPE  # a client that died makes a write fail (and the suite say so), not kill the suite
nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

# The real server: a single-threaded echo that stops reading a client while its echo waits,
# so that a client that does not read backs the whole path up.
"${nobody[@]}" "$py" - "$dir/server" <<'EOF' &
import os, resource, selectors, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
srv.listen(4096)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
pending = {}
while True:
    for key, ev in sel.select():
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            c.setblocking(False)
            pending[c] = b""
            sel.register(c, selectors.EVENT_READ)
            continue
        try:
            if ev & selectors.EVENT_READ:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError
                pending[s] += d
            n = s.send(pending[s]) if pending[s] else 0
            pending[s] = pending[s][n:]
        except BlockingIOError:
            pass
        except OSError:
            sel.unregister(s); del pending[s]; s.close(); continue
        sel.modify(s, selectors.EVENT_WRITE if pending[s] else selectors.EVENT_READ)
EOF
bg_pids+=($!)

# The proxy, as nobody, serving only nobody, with the listening socket as fd 3.
proxy_as_nobody "$dir" 4096 test/memory
wait_until 10 test -S "$dir/proxy" -a -S "$dir/server" || die "the proxy or the server did not start"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$proxy/status"; }
# rss_check WHAT BOUND: the proxy's RSS now, said, and at most BOUND KiB above $idle.
rss_check() {
    local now; now=$(rss)
    say "$1: $now KiB"
    ((now - idle <= $2)) &&
        ok "$1: $((now - idle)) KiB above idle, bound $2" ||
        not_ok "$1: $((now - idle)) KiB above idle, bound $2"
}

# The clients, as nobody. They report on stdout and wait for a line on stdin between phases.
mkfifo "$dir/ctl" "$dir/out"
chmod 666 "$dir/ctl" "$dir/out"
cat >"$dir/clients.py" <<'EOF'
import os, resource, select, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
path, count = sys.argv[1], int(sys.argv[2])
ctl = open(0)
def say(*a):
    print(*a, flush=True)
conns = []
for i in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    conns.append(s)
block = os.urandom(16 * 1024)
served = refused = 0
live = []
for s in conns:
    s.settimeout(10)
    try:
        s.sendall(block)
        got = b""
        while len(got) < len(block):
            d = s.recv(len(block) - len(got))
            if not d:
                break
            got += d
        if got == block:
            served += 1
            live.append(s)
        elif not got:
            refused += 1  # EOF: beyond the cap
    except OSError:
        refused += 1
say("echoed", served, refused)
ctl.readline()
# Fill every queue: send without reading until nothing more goes in.
chunk = b"x" * 65536
for s in live:
    s.setblocking(False)
    sent = 0
    while sent < 512 * 1024:
        try:
            n = s.send(chunk)
        except (BlockingIOError, OSError):
            r, w, _ = select.select([], [s], [], 0.01)
            if not w:
                break
            continue
        sent += n
say("full")
ctl.readline()
for s in conns:
    s.close()
say("closed")
ctl.readline()
EOF
# stdin is the control fifo (not a here-document), so the phases wait for the suite.
as_nobody_in_domain "$lend_id" timeout -s KILL 300 "$py" "$dir/clients.py" "$dir/proxy" "$clients" \
    <"$dir/ctl" >"$dir/out" &
bg_pids+=($!)
exec {ctl}>"$dir/ctl" {out}<"$dir/out"
idle=$(rss)
idle_fds=$(ls "/proc/$proxy/fd" | wc -l)
say "proxy idle RSS: $idle KiB, $idle_fds descriptors"

read -r -t 120 word served refused <&"$out" || die "the clients did not finish their exchange"
[[ $word == echoed ]] || die "unexpected client output: $word $served $refused"
((served == cap && refused == clients - cap)) &&
    ok "of $clients clients of the peer uid, $served were served and $refused refused (cap $cap)" ||
    not_ok "of $clients clients, $served were served and $refused refused; the cap is $cap"
rss_check "RSS with $served open connections (one exchange each)" "$bound_echoed_kib"

echo >&"$ctl"
read -r -t 120 word <&"$out" || die "the clients did not fill the queues"
rss_check "RSS with every queue full" "$bound_full_kib"

echo >&"$ctl"
read -r -t 120 word <&"$out" || die "the clients did not close"
# The proxy notices the closes as it goes; wait (bounded) until it holds no client socket.
wait_until 60 bash -c "(( \$(ls /proc/$proxy/fd | wc -l) <= $idle_fds ))" ||
    say "the proxy still holds $(ls "/proc/$proxy/fd" | wc -l) descriptors, $idle_fds when idle: a pair whose client left keeps its server side until the server takes the bytes queued for it (this echo server stops reading while its echo waits)"
rss_check "RSS after every client closed" "$bound_after_kib"
echo >&"$ctl"
exec {ctl}>&- {out}<&-
kill -0 "$proxy" && ok "the proxy still runs" || not_ok "the proxy died"
finish
