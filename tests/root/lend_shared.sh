#!/bin/bash
# Two domains lend the same socket, whose mode (0755) denies QEMU's user, so each lend needs
# the u:QEMU:rw entry (and, for acl, u:QEMU:x on the runtime directory). The entry is shared:
# releasing one domain must not take access from the other, and releasing the last one must
# leave getfacl byte-identical to before the first prepare (S7). For bind, acl, one of each,
# and group (the socket's group and mode, shared the same way), in both release orders; then
# both domains prepared and released at the same time.
#
#   bash tests/root/lend_shared.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"

A=3c2b1a09-8f7e-4d6c-b5a4-938271605a01
B=3c2b1a09-8f7e-4d6c-b5a4-938271605a02
lend_allow "$A" "$B"
lend_warm
sock=$runtime/pipewire-0
lend_echo_server "$lend_user" "$sock" 0755

# facls FILE: getfacl (owner, group, mode, ACL) of the socket and of the runtime directory,
# which the lends share.
facls() { getfacl -p "$sock" "$runtime" >"$1" 2>&1; }

# target_of UUID METHOD: where QEMU reaches the socket.
target_of() { if [[ $2 == bind ]]; then echo "/run/sockhook/libvirt-$1/pipewire-0"; else echo "$sock"; fi; }

# reach WHAT TARGET: QEMU's user reaches TARGET.
reach() {
  if lend_ping qemu "$2"; then ok "$1: QEMU's user reaches $2"; else fail "$1: QEMU's user cannot reach $2"; fi
}

# check_shared MA MB FIRST: A lends with method MA and B with MB (prepared in that order), then
# FIRST (A or B) is released, then the other.
check_shared() {
  local ma=$1 mb=$2 first=$3 what="$1+$2, release $3 first"
  local xa xb ta tb
  xa=$(lend_domain shared-a "$A" "pipewire:$ma")
  xb=$(lend_domain shared-b "$B" "pipewire:$mb")
  ta=$(target_of "$A" "$ma")
  tb=$(target_of "$B" "$mb")
  lend_snapshot "$tmp/before"
  facls "$tmp/facl-before"
  # The test is only worth something if QEMU's user is refused without a lend.
  if lend_ping qemu "$sock"; then fail "$what: QEMU's user reaches $sock before any lend"; fi
  lend_hook shared-a prepare begin "$xa" || fail "$what: prepare A: $(cat "$tmp/hook.err")"
  lend_hook shared-b prepare begin "$xb" || fail "$what: prepare B: $(cat "$tmp/hook.err")"
  if [[ $ma == group ]]; then
    [[ $(stat -c %g "$sock") == "$qemu_gid" ]] || fail "$what: the socket's group is not QEMU's"
  else
    getfacl -cp "$sock" | grep -qx "user:$qemu_user:rw-" || fail "$what: no u:$qemu_user:rw- on the socket"
  fi
  reach "$what, both lent" "$ta"
  reach "$what, both lent" "$tb"
  local second xfirst xsecond tsecond
  if [[ $first == A ]]; then
    second=B xfirst=$xa xsecond=$xb tsecond=$tb
  else
    second=A xfirst=$xb xsecond=$xa tsecond=$ta
  fi
  lend_hook "shared-${first,}" release end "$xfirst" || fail "$what: release $first exit $?"
  reach "$what, $first released, $second still lent" "$tsecond"
  lend_hook "shared-${second,}" release end "$xsecond" || fail "$what: release $second exit $?"
  facls "$tmp/facl-after"
  if cmp -s "$tmp/facl-before" "$tmp/facl-after"; then
    ok "$what: getfacl of the socket and $runtime byte-identical"
  else
    fail "$what: getfacl differs:"
    diff -u "$tmp/facl-before" "$tmp/facl-after" >&2 || true
  fi
  lend_snapshot "$tmp/after"
  lend_same "$tmp/before" "$tmp/after" "$what"
  if lend_ping qemu "$sock"; then fail "$what: QEMU's user still reaches $sock"; fi
}

for order in A B; do
  check_shared bind bind "$order"
  check_shared acl acl "$order"
  check_shared bind acl "$order"
  check_shared group group "$order"
done

# Both domains at once: the inode lock must serialise the decisions. If two releases could
# each see the other's grant still journaled, both would leave the entry behind.
xa=$(lend_domain shared-a "$A" pipewire:acl)
xb=$(lend_domain shared-b "$B" pipewire:bind)
lend_snapshot "$tmp/before"
for round in 1 2 3 4 5 6 7 8; do
  lend_hook shared-a prepare begin "$xa" 2>/dev/null &
  a=$!
  printf '%s' "$xb" | "$bin" hook --config-dir "$etc" shared-b prepare begin - 2>"$tmp/b.err" &
  b=$!
  wait "$a" || fail "round $round: prepare A: $(cat "$tmp/hook.err")"
  wait "$b" || fail "round $round: prepare B: $(cat "$tmp/b.err")"
  lend_ping qemu "$sock" || fail "round $round: A's lend does not work"
  lend_ping qemu "/run/sockhook/libvirt-$B/pipewire-0" || fail "round $round: B's lend does not work"
  lend_hook shared-a release end "$xa" &
  a=$!
  printf '%s' "$xb" | "$bin" hook shared-b release end - 2>/dev/null &
  b=$!
  wait "$a" || fail "round $round: release A exit"
  wait "$b" || fail "round $round: release B exit"
  lend_snapshot "$tmp/after"
  if ! diff -q "$tmp/before" "$tmp/after" >/dev/null; then
    fail "round $round: concurrent prepare and release left the host changed"
    diff -u "$tmp/before" "$tmp/after" >&2 || true
    break
  fi
done
((fails == 0)) && ok "8 rounds of concurrent prepare and release of two domains sharing the entry"
for f in "$sock" "$runtime"; do
  lock=/run/sockhook/state/inode-$(stat -c '%d-%i' "$f").lock
  if [[ -e $lock ]]; then fail "$lock left behind"; fi
done
lend_finish
