#!/bin/bash
# What release can take back is a property of the method (issue 22, item 6). QEMU's user, as
# libvirt runs QEMU, keeps two things across a release: an O_PATH descriptor of the socket it
# was lent, and a connection it made before. After bind and acl it still connects through
# /proc/self/fd/N and still talks over the old connection: the owner's socket inode was given,
# and nothing can take a descriptor back. After proxy it does neither: release stops the
# proxy, which held every connection and served the socket. The socket is 0777 in a 0700
# runtime directory, as PipeWire's is. `sockhook plan` must say so for each lend, and after
# each release the host is byte-identical once the keeper is gone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools setpriv timeout

lend_setup 3b2f7c1e-8a4d-4e6b-b0c9-5d1e2f3a4b61 pipewire-0:0777
keep=$TMP/keep
install -d -m 777 "$keep"

# none_ok TEXT: no result in the keeper's TEXT is "ok".
none_ok() { [[ " $1" != *" ok "* ]]; }

# revoke_case METHOD TARGET REVOCABLE: plan says REVOCABLE (yes|no); a keeper as QEMU holds
# an O_PATH descriptor of TARGET and a connection across release; with "no" both must still
# reach the owner's server afterwards, with "yes" neither may.
revoke_case() {
  local method=$1 target=$2 revocable=$3 xml out
  xml=$(lend_domain "revoke-$method" "$U" "pipewire:$method")
  printf '%s' "$xml" >"$TMP/$method.xml"
  "$SOCKHOOK" plan "$TMP/$method.xml" --plugin-dir "$etc/plugins" --policy "$etc/policy.conf" \
    >"$TMP/plan.out" 2>&1 || true
  if grep -q "^  revocable: $revocable " "$TMP/plan.out"; then
    ok "$method: plan says $(grep '^  revocable:' "$TMP/plan.out")"
  else
    not_ok "$method: plan does not say 'revocable: $revocable': $(grep -A2 '^socket' "$TMP/plan.out" | tr '\n' ' ')"
  fi

  host_snapshot >"$TMP/before"
  rm -f "$keep"/*
  lend_hook "revoke-$method" prepare begin "$xml" || { not_ok "$method: prepare: $(cat "$TMP/hook.err")"; return; }
  lend_as_qemu timeout 60 "$py" - "$target" "$keep" >"$TMP/keeper.out" 2>&1 <<'EOF' &
import os, socket, sys, time
target, keep = sys.argv[1], sys.argv[2]
def ping(s):
    s.sendall(b"ping")
    return s.recv(16) == b"ping"
kept = os.open(target, os.O_PATH | os.O_CLOEXEC)
conn = socket.socket(socket.AF_UNIX)
conn.settimeout(5)
conn.connect(target)
assert ping(conn), "no echo before release"
open(keep + "/ready", "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(keep + "/released"):
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.05)
try:
    print("connection", "ok" if ping(conn) else "closed")
except OSError as e:
    print("connection", type(e).__name__)
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(f"/proc/self/fd/{kept}")
    print("o_path", "ok" if ping(s) else "closed")
except OSError as e:
    print("o_path", type(e).__name__)
EOF
  local keeper=$!
  bg_pids+=("$keeper")
  wait_until 10 test -e "$keep/ready" || { not_ok "$method: the keeper did not connect: $(cat "$TMP/keeper.out")"; return; }
  lend_hook "revoke-$method" release end "$xml" || not_ok "$method: release: $(cat "$TMP/hook.err")"
  touch "$keep/released"
  wait "$keeper" || not_ok "$method: the keeper failed: $(cat "$TMP/keeper.out")"
  out=$(tr '\n' ' ' <"$TMP/keeper.out")
  if [[ $revocable == no ]]; then
    check "$method: after release QEMU's kept O_PATH descriptor and connection still reach the owner's server ($out)" \
      test "$out" = "connection ok o_path ok "
  else
    check "$method: after release QEMU's kept O_PATH descriptor and connection reach nothing ($out)" \
      none_ok "$out"
  fi
  same_host "$TMP/before" "$method"
}

L=/run/sockhook/libvirt-$U
revoke_case bind "$L/pipewire-0" no
revoke_case acl "$runtime/pipewire-0" no
revoke_case proxy "$L/pipewire-0" yes
finish
