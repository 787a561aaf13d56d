#!/bin/bash
# S4 under an owner's own ACL: granting QEMU's user an entry must never widen what anyone
# else gets. The owner's socket carries u:shlend2:rw with mask::r-- (shlend2 is held to r--,
# which cannot connect). Widening the mask for QEMU's entry would make shlend2's rw effective
# for the length of the lend. So: bind and acl are refused with one line and the host stays
# byte-identical; auto lends by proxy and leaves the ACL alone; the same for the runtime
# directory's x (acl, group). Where the widening gives nobody anything (u:shlend2:r with
# mask::r--), bind still works and is undone exactly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools setfacl getfacl

U=3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c01
lend_allow "$U"
L=/run/sockhook/libvirt-$U
sock=$runtime/pipewire-0
lend_echo_server "$lend_user" "$sock" 0600

# effective USER PATH: what USER's named entry on PATH really grants (its perms under the mask).
# (A connect by USER cannot show it: USER cannot traverse the owner's 0700 runtime directory.)
effective() {
  getfacl -p "$2" 2>/dev/null | awk -v u="user:$1:" 'index($1, u) == 1 {
    e = substr($1, length(u) + 1); if ($2 ~ /^#effective:/) e = substr($2, 12); print e }'
}

# refused WHAT METHOD EXPECT: prepare exits 1 with one line containing EXPECT, nothing changes.
refused() {
  local what=$1 method=$2 expect=$3 xml rc=0
  host_snapshot >"$TMP/before"
  xml=$(lend_domain mask "$U" "pipewire:$method")
  lend_hook mask prepare begin "$xml" || rc=$?
  local lines; lines=$(wc -l <"$TMP/hook.err")
  if [[ $rc -ne 1 ]]; then
    not_ok "$what: prepare exit $rc, want 1 ($(cat "$TMP/hook.err"))"
  elif [[ $lines -ne 1 ]]; then
    not_ok "$what: $lines lines on stderr, want 1: $(cat "$TMP/hook.err")"
  elif ! grep -qF -- "$expect" "$TMP/hook.err"; then
    not_ok "$what: stderr lacks '$expect': $(cat "$TMP/hook.err")"
  else
    ok "$what: $(cat "$TMP/hook.err")"
  fi
  lend_hook mask release end "$xml" || not_ok "$what: release exit $?"
  same_host "$TMP/before" "$what"
}

# ---- u:shlend2:rw masked to r-- on the socket ------------------------------------------------
setfacl -m "u:$lend_user2:rw,m::r--" "$sock"
[[ $(effective "$lend_user2" "$sock") == r-- ]] || not_ok "setup: $lend_user2 gets $(effective "$lend_user2" "$sock")"
gain="would widen the ACL mask and so also give user:$lend_uid2:rw-"
refused "bind, masked u:$lend_user2:rw" bind "$gain"
refused "acl, masked u:$lend_user2:rw" acl "$gain"

# plan says so before anything runs.
lend_domain mask "$U" "pipewire:bind" >"$TMP/plan.xml"
if "$SOCKHOOK" plan "$TMP/plan.xml" --plugin-dir "$etc/plugins" --policy "$etc/policy.conf" \
  >"$TMP/plan.out" 2>&1; then
  not_ok "plan bind: exit 0, want the refusal: $(cat "$TMP/plan.out")"
elif grep -qF -- "$gain" "$TMP/plan.out"; then ok "plan bind: says the mask would widen"
else not_ok "plan bind: $(cat "$TMP/plan.out")"; fi

# auto: by proxy, the socket's ACL untouched while lent, shlend2 still held to r--.
host_snapshot >"$TMP/before"
acl_before=$(getfacl -cp "$sock")
xml=$(lend_domain mask "$U" "pipewire:auto")
if lend_hook mask prepare begin "$xml"; then
  if lend_ping qemu "$L/pipewire-0"; then ok "auto: QEMU's user reaches the lent socket"; else not_ok "auto: QEMU's user cannot reach $L/pipewire-0"; fi
  if [[ $(getfacl -cp "$sock") == "$acl_before" ]]; then ok "auto: the socket's ACL is untouched while lent"
  else not_ok "auto: the socket's ACL changed: $(getfacl -cp "$sock" | tr '\n' ' ')"; fi
  e=$(effective "$lend_user2" "$sock")
  if [[ $e == r-- ]]; then ok "auto: $lend_user2 still gets only r-- during the lend"; else not_ok "auto: $lend_user2 gets $e during the lend"; fi
  if grep -q " $L/pipewire-0 " /proc/self/mountinfo; then not_ok "auto: bind-mounted instead of proxied"
  else ok "auto: not a bind mount (proxy)"; fi
else
  not_ok "auto: prepare failed: $(cat "$TMP/hook.err")"
fi
lend_hook mask release end "$xml" || not_ok "auto: release exit $?"
same_host "$TMP/before" "auto, masked u:$lend_user2:rw"

# ---- the widening gives nobody anything: u:shlend2:r with mask::r-- --------------------------
setfacl -m "u:$lend_user2:r,m::r--" "$sock"
host_snapshot >"$TMP/before"
xml=$(lend_domain mask "$U" "pipewire:bind")
if lend_hook mask prepare begin "$xml"; then
  if lend_ping qemu "$L/pipewire-0"; then ok "bind, u:$lend_user2:r: QEMU's user reaches it"; else not_ok "bind, u:$lend_user2:r: QEMU's user cannot reach it"; fi
  e=$(effective "$lend_user2" "$sock")
  if [[ $e == r-- ]]; then ok "bind, u:$lend_user2:r: $lend_user2 still gets only r--"; else not_ok "bind, u:$lend_user2:r: $lend_user2 gets $e"; fi
else
  not_ok "bind, u:$lend_user2:r: prepare failed: $(cat "$TMP/hook.err")"
fi
lend_hook mask release end "$xml" || not_ok "bind, u:$lend_user2:r: release exit $?"
same_host "$TMP/before" "bind, u:$lend_user2:r (nobody gains)"
setfacl -b "$sock"

# ---- the directory: u:shlend2:r-x masked to --- on the runtime directory ---------------------
setfacl -m "u:$lend_user2:rx,m::---" "$runtime"
chmod 0666 "$sock"  # the socket needs no grant: only the directory's x is at stake
dgain="would widen the ACL mask and so also give user:$lend_uid2:r-x"
refused "acl, masked u:$lend_user2:rx on $runtime" acl "$dgain"
refused "group, masked u:$lend_user2:rx on $runtime" group "$dgain"
chmod 0600 "$sock"
setfacl -b "$runtime"
chmod 0700 "$runtime"

finish
