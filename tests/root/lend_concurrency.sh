#!/bin/bash
# R4: hooks of different domains run in parallel (no global lock): 8 domains are prepared at
# once, all succeed and all reach the socket, then all are released at once and the host is
# byte-identical. Hooks of one domain are serialised: two prepares of the same domain at the
# same time leave exactly one mount and one intact journal, and one release undoes it.
#
#   bash tests/root/lend_concurrency.sh /abs/path/to/sockhook
set -euo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"
n=8

uuids=()
for ((i = 0; i < n; i++)); do uuids+=("$(printf '6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c%02d' "$i")"); done
lend_allow "${uuids[@]}"
lend_warm
# Open to QEMU's user by its mode: each domain's lend is a bind mount and nothing else, so the
# domains share no inode state (see the notes on shared ACL entries in the report).
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0666
lend_snapshot "$tmp/before"

pids=()
for ((i = 0; i < n; i++)); do
  lend_domain "par$i" "${uuids[i]}" pipewire:bind >"$tmp/d$i.xml"
  "$bin" hook --config-dir "$etc" "par$i" prepare begin - <"$tmp/d$i.xml" 2>"$tmp/e$i" &
  pids+=($!)
done
okn=0
for ((i = 0; i < n; i++)); do
  if wait "${pids[i]}"; then okn=$((okn + 1)); else fail "par$i: prepare failed: $(cat "$tmp/e$i")"; fi
done
reach=0
for ((i = 0; i < n; i++)); do lend_ping qemu "/run/sockhook/libvirt-${uuids[i]}/pipewire-0" && reach=$((reach + 1)); done
echo "parallel: $okn of $n prepares succeeded at once, $reach targets reachable by QEMU's user"
((okn == n && reach == n)) && ok "parallel prepare of $n domains" || fail "parallel prepare"
pids=()
for ((i = 0; i < n; i++)); do
  "$bin" hook "par$i" release end - <"$tmp/d$i.xml" 2>/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "release exit"; done
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "parallel release of $n domains"

# Same domain, twice at once: the lock serialises them.
U=${uuids[0]}
for round in 1 2 3 4 5; do
  "$bin" hook --config-dir "$etc" par0 prepare begin - <"$tmp/d0.xml" 2>"$tmp/a" &
  a=$!
  "$bin" hook --config-dir "$etc" par0 prepare begin - <"$tmp/d0.xml" 2>"$tmp/b" &
  b=$!
  wait "$a" || fail "round $round: first prepare: $(cat "$tmp/a")"
  wait "$b" || fail "round $round: second prepare: $(cat "$tmp/b")"
  mounts=$(grep -c " /run/sockhook/libvirt-$U/pipewire-0 " /proc/self/mountinfo || true)
  [[ $mounts == 1 ]] || fail "round $round: $mounts mounts on the target (want 1)"
  grep -c '<entry kind="mount"' "/run/sockhook/state/$U.xml" | grep -qx 1 || fail "round $round: journal does not hold exactly one mount"
done
ok "same domain, 5 rounds of two concurrent prepares: one mount, one journal each time"
lend_hook par0 release end "$(cat "$tmp/d0.xml")"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "same-domain prepares, one release"
lend_finish
