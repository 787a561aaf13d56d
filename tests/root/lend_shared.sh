#!/bin/bash
# Two domains lend the same socket, whose mode (0755) denies QEMU's user, so each lend needs
# the u:QEMU:rw entry (and, for acl, u:QEMU:x on the runtime directory). The entry is shared:
# releasing one domain must not take access from the other, and releasing the last one must
# leave getfacl byte-identical to before the first prepare (S7). For bind, acl, one of each,
# and group (the socket's group and mode, shared the same way), in both release orders; then
# both domains prepared and released at the same time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

A=3c2b1a09-8f7e-4d6c-b5a4-938271605a01
B=3c2b1a09-8f7e-4d6c-b5a4-938271605a02
lend_allow "$A" "$B"
sock=$runtime/pipewire-0
lend_echo_server "$lend_user" "$sock" 0755

# facls FILE: getfacl (owner, group, mode, ACL) of the socket and of the runtime directory,
# which the lends share.
facls() { getfacl -p "$sock" "$runtime" >"$1" 2>&1; }

# target_of UUID METHOD: where QEMU reaches the socket.
target_of() { if [[ $2 == bind ]]; then echo "/run/sockhook/libvirt-$1/pipewire-0"; else echo "$sock"; fi; }

# reach WHAT TARGET: QEMU's user reaches TARGET.
reach() {
  if lend_ping qemu "$2"; then ok "$1: QEMU's user reaches $2"; else not_ok "$1: QEMU's user cannot reach $2"; fi
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
  host_snapshot >"$TMP/before"
  facls "$TMP/facl-before"
  # The test is only worth something if QEMU's user is refused without a lend.
  if lend_ping qemu "$sock"; then not_ok "$what: QEMU's user reaches $sock before any lend"; fi
  lend_hook shared-a prepare begin "$xa" || not_ok "$what: prepare A: $(cat "$TMP/hook.err")"
  lend_hook shared-b prepare begin "$xb" || not_ok "$what: prepare B: $(cat "$TMP/hook.err")"
  if [[ $ma == group ]]; then
    [[ $(stat -c %g "$sock") == "$qemu_gid" ]] || not_ok "$what: the socket's group is not QEMU's"
  else
    getfacl -cp "$sock" | grep -qx "user:$qemu_user:rw-" || not_ok "$what: no u:$qemu_user:rw- on the socket"
  fi
  reach "$what, both lent" "$ta"
  reach "$what, both lent" "$tb"
  local second xfirst xsecond tsecond
  if [[ $first == A ]]; then
    second=B xfirst=$xa xsecond=$xb tsecond=$tb
  else
    second=A xfirst=$xb xsecond=$xa tsecond=$ta
  fi
  lend_hook "shared-${first,}" release end "$xfirst" || not_ok "$what: release $first exit $?"
  reach "$what, $first released, $second still lent" "$tsecond"
  lend_hook "shared-${second,}" release end "$xsecond" || not_ok "$what: release $second exit $?"
  facls "$TMP/facl-after"
  if cmp -s "$TMP/facl-before" "$TMP/facl-after"; then
    ok "$what: getfacl of the socket and $runtime byte-identical"
  else
    not_ok "$what: getfacl differs:"
    diff -u "$TMP/facl-before" "$TMP/facl-after" >&2 || true
  fi
  same_host "$TMP/before" "$what"
  if lend_ping qemu "$sock"; then not_ok "$what: QEMU's user still reaches $sock"; fi
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
host_snapshot >"$TMP/before"
for round in 1 2 3 4 5 6 7 8; do
  lend_hook shared-a prepare begin "$xa" 2>/dev/null &
  a=$!
  printf '%s' "$xb" | "$SOCKHOOK" hook --config-dir "$etc" shared-b prepare begin - 2>"$TMP/b.err" &
  b=$!
  wait "$a" || not_ok "round $round: prepare A: $(cat "$TMP/hook.err")"
  wait "$b" || not_ok "round $round: prepare B: $(cat "$TMP/b.err")"
  lend_ping qemu "$sock" || not_ok "round $round: A's lend does not work"
  lend_ping qemu "/run/sockhook/libvirt-$B/pipewire-0" || not_ok "round $round: B's lend does not work"
  lend_hook shared-a release end "$xa" &
  a=$!
  printf '%s' "$xb" | "$SOCKHOOK" hook shared-b release end - 2>/dev/null &
  b=$!
  wait "$a" || not_ok "round $round: release A exit"
  wait "$b" || not_ok "round $round: release B exit"
  if ! same_as_before "$TMP/before"; then
    not_ok "round $round: concurrent prepare and release left the host changed"
    break
  fi
done
((FAIL == 0)) && ok "8 rounds of concurrent prepare and release of two domains sharing the entry"
for f in "$sock" "$runtime"; do
  lock=/run/sockhook/state/inode-$(stat -c '%d-%i' "$f").lock
  if [[ -e $lock ]]; then not_ok "$lock left behind"; fi
done
finish
