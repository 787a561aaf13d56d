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

lend_setup 3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c01 pipewire-0
sock=$runtime/pipewire-0

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
  lend_one_line "$what" "$rc" "$expect"
  lend_hook mask release end "$xml" || not_ok "$what: release exit $?"
  same_host "$TMP/before" "$what"
}

# lent WHAT METHOD [CHECK]: prepare lends the socket by METHOD; while it is lent, QEMU's user
# reaches it, $lend_user2 still gets only r-- on it, and the function CHECK (given WHAT) checks
# the rest; release leaves the host byte-identical.
lent() {
  local what=$1 method=$2 check=${3:-} xml e
  host_snapshot >"$TMP/before"
  xml=$(lend_domain mask "$U" "pipewire:$method")
  if lend_hook mask prepare begin "$xml"; then
    if lend_ping qemu "$L/pipewire-0"; then ok "$what: QEMU's user reaches the lent socket"; else not_ok "$what: QEMU's user cannot reach $L/pipewire-0"; fi
    e=$(effective "$lend_user2" "$sock")
    if [[ $e == r-- ]]; then ok "$what: $lend_user2 still gets only r-- during the lend"; else not_ok "$what: $lend_user2 gets $e during the lend"; fi
    [[ -z $check ]] || "$check" "$what"
  else
    not_ok "$what: prepare failed: $(cat "$TMP/hook.err")"
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
# proxied WHAT: the lend is no bind mount, and the socket's ACL is still $acl_before.
proxied() {
  if [[ $(getfacl -cp "$sock") == "$acl_before" ]]; then ok "$1: the socket's ACL is untouched while lent"
  else not_ok "$1: the socket's ACL changed: $(getfacl -cp "$sock" | tr '\n' ' ')"; fi
  if grep -q " $L/pipewire-0 " /proc/self/mountinfo; then not_ok "$1: bind-mounted instead of proxied"
  else ok "$1: not a bind mount (proxy)"; fi
}
acl_before=$(getfacl -cp "$sock")
lent "auto, masked u:$lend_user2:rw" auto proxied

# ---- the widening gives nobody anything: u:shlend2:r with mask::r-- --------------------------
setfacl -m "u:$lend_user2:r,m::r--" "$sock"
lent "bind, u:$lend_user2:r (nobody gains)" bind
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
