#!/bin/bash
# The proxy's spawn and identity against a hostile owner (issue 9, items 1 and 3).
#
# 1. The stall: the proxy's child drops to the owner before it execs, so the owner may SIGSTOP
#    it in that window. An attacker running as the owner stops every new process of the owner
#    that has not exec'd the proxy yet (it learns new pids from ns_last_pid). The hook must
#    still return (within a generous outer limit; the bound itself is a constant in the code)
#    with one line naming the domain, the socket and the problem, and release must then leave
#    the host byte-identical.
# 2. The aimed kill: the proxy's listening socket, taken out of the proxy (pidfd_getfd) and
#    handed (SCM_RIGHTS) to a process of ANOTHER user. The owner cannot take it from a running
#    proxy (it is not dumpable); one who stops it between exec and that prctl could, so root
#    plays that owner here. With the journal
#    holding no proxy pid (the state a hook killed between the spawn and the journal update
#    used to leave; here written directly, for determinism: lend_crash kills for real),
#    release must not kill that process.
#
#   bash tests/root/proxy_identity.sh /abs/path/to/sockhook [ATTEMPTS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools timeout
attempts=${2:-200}
outer=120  # seconds: far above the code's own bound, so only a hook with no bound hits it

lend_setup 6a1c0e2d-3b4f-4a5e-9c6d-7e8f9a0b1c21 pipewire-0
xml=$(lend_domain stally "$U" pipewire:proxy)
J=/run/sockhook/state/$U.xml
host_snapshot >"$TMP/before"

# ------------------------------------------------------------------ 1. the stall
# The attacker, as the owner: SIGSTOP whatever the owner's newest processes are; keep stopped
# the one that is still the proxy's child before exec (the hook's command line, and the
# leader of its own session, seen once it is stopped), let every other one go on. It writes
# "landed PID" to its output once it holds one, and lets it go when it exits or after 150 s.
cat >"$TMP/stopper.py" <<'EOF'
import os, signal, sys, time
out = sys.argv[1]
me = os.getpid()
last = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
def session(pid):
    # The proxy's child leads its own session (setsid) before it drops to the owner; the
    # hook's other children (companion-file readers) do not.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return 0
held = None
while held is None:
    top = int(os.pread(last, 16, 0))
    for pid in range(top, top - 6, -1):
        if pid == me or pid <= 1:
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            continue  # not the owner's (EPERM) or gone
        # A stop that arrives during execve takes effect only after it (in the proxy):
        # judge the process once it is stopped.
        for _ in range(500):
            if state(pid) in ("T", ""):
                break
            time.sleep(0.0001)
        if state(pid) == "T" and b"\0hook\0" in cmdline(pid) and session(pid) == pid:
            held = pid
            break
        os.kill(pid, signal.SIGCONT)
with open(out, "w") as f:
    f.write(f"landed {held}\n")
deadline = time.monotonic() + 150
while time.monotonic() < deadline:
    try:
        os.kill(held, 0)
    except OSError:
        break
    time.sleep(0.1)
try:
    os.kill(held, signal.SIGCONT)
except OSError:
    pass
EOF
: >"$TMP/landed"
chown "$lend_user" "$TMP/landed"
lend_spawn "$lend_user" "$py" "$TMP/stopper.py" "$TMP/landed"
stopper=$spawned

landed=no tries=0
for ((i = 0; i < attempts; i++)); do
    tries=$((i + 1))
    rc=0
    start=$SECONDS
    printf '%s' "$xml" | timeout -s KILL "$outer" \
        "$SOCKHOOK" hook --config-dir "$etc" stally prepare begin - 2>"$TMP/hook.err" || rc=$?
    took=$((SECONDS - start))
    if [[ -s $TMP/landed ]]; then
        landed=yes
        say "the owner stopped the proxy's child before exec at attempt $tries: $(cat "$TMP/landed"); the hook took ${took} s, exit $rc"
        if ((rc == 137)); then
            not_ok "stall: the hook did not return within $outer s while the owner kept the proxy's child stopped"
        else
            check "stall: the hook fails the required socket (exit 1, got $rc)" test "$rc" = 1
            err=$(cat "$TMP/hook.err")
            [[ $(wc -l <"$TMP/hook.err") == 1 && $err == *"stally"* && $err == *"pipewire"* &&
                $err == *"did not start"* ]] &&
                ok "stall: one line names domain, socket and problem: $err" ||
                not_ok "stall: the error is not one line naming domain, socket and problem: $err"
        fi
        lend_hook stally release end "$xml" || not_ok "stall: release failed: $(cat "$TMP/hook.err")"
        break
    fi
    ((rc == 0)) || { not_ok "attempt $tries: prepare failed with no attack: $(cat "$TMP/hook.err")"; break; }
    lend_hook stally release end "$xml" || { not_ok "attempt $tries: release failed"; break; }
done
kill "$stopper" 2>/dev/null || true
wait "$stopper" 2>/dev/null || true
# The window between the drop and exec is microseconds wide: the race lands in some runs only
# (attempt 154 of 200 in one run against the old code). tests/unit/proxy/proxy_test.cpp ("a child stopped
# before it execs is abandoned within the bound") holds the child there every time.
[[ $landed == yes ]] || say "stall: the owner's SIGSTOP did not land before exec in $tries attempts (race not won this run)"
same_host "$TMP/before" "stall, then release"

# ------------------------------------------------------------------ 2. the aimed kill
lend_hook stally prepare begin "$xml" || die "prepare failed: $(cat "$TMP/hook.err")"
proxy=$(grep -o 'pid="[0-9]*"' "$J" | grep -o '[0-9]\+' | head -1)
[[ -n $proxy && $proxy != 0 ]] || die "no proxy pid in the journal"

# Another user's process, waiting to be handed a descriptor on a socket in $TMP/hand.
install -d -m 0777 "$TMP/hand"
cat >"$TMP/holder.py" <<'EOF'
import array, os, socket, sys, time
path, ready = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(1)
c, _ = s.accept()
fds = array.array("i")
msg, anc, flags, addr = c.recvmsg(1, socket.CMSG_SPACE(4))
for level, kind, data in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(data[: len(data) - len(data) % 4])
with open(ready, "w") as f:
    f.write(f"holding {len(fds)}\n")
time.sleep(600)
EOF
: >"$TMP/holding"
chown "$lend_user2" "$TMP/holding"
lend_spawn "$lend_user2" "$py" "$TMP/holder.py" "$TMP/hand/sock" "$TMP/holding"
holder=$spawned
wait_until 5 test -S "$TMP/hand/sock" || die "the other user's holder did not start"

# fd 3 of the proxy (the listening socket), taken out of it and passed on to the holder.
cat >"$TMP/take.py" <<'EOF'
import ctypes, os, socket, sys
pid, path = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
fd = libc.syscall(438, pidfd, 3, 0)  # pidfd_getfd
if fd < 0:
    sys.exit("pidfd_getfd: " + os.strerror(ctypes.get_errno()))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
EOF
# The owner cannot: the proxy made itself undumpable, so ptrace access (which pidfd_getfd
# needs) is root's only, though the proxy runs as the owner.
lend_as "$lend_user" "$py" - "$proxy" "$TMP/hand/sock" <"$TMP/take.py" 2>"$TMP/take.err" || true
check "the owner cannot take the proxy's listening socket out of it ($(cat "$TMP/take.err"))" \
    grep -q 'pidfd_getfd: Operation not permitted' "$TMP/take.err"
# The moment from exec to that prctl is the owner's, though (a stopped child, as in part 1):
# root does here what an owner who won that race could.
"$py" "$TMP/take.py" "$proxy" "$TMP/hand/sock" || not_ok "root could not pass the proxy's listening socket on"
wait_until 5 grep -q 'holding 1' "$TMP/holding" || die "the other user's process did not get the descriptor"
ok "another user's process (pid $holder) holds the proxy's listening socket"

# The journal without the proxy's pid, as a hook killed between spawn and journal used to leave.
sed -i -E 's/ pid="[0-9]+"/ pid="0"/; s/ starttime="[0-9]+"/ starttime="0"/' "$J"
lend_hook stally release end "$xml" || not_ok "aimed kill: release failed: $(cat "$TMP/hook.err")"
if kill -0 "$holder" 2>/dev/null; then
    ok "aimed kill: release left the other user's process alone"
else
    not_ok "aimed kill: release killed the other user's process (pid $holder)"
fi
# The state was forged for this test: the proxy it started is ours to stop.
kill "$proxy" 2>/dev/null || true
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
same_host "$TMP/before" "aimed kill, then release"
finish
