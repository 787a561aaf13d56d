#!/bin/bash
# Who receives the lend (issue 9 item 2). Whoever writes the domain XML must not choose it: a
# static DAC <seclabel> naming another real user (here shlend2) must not make the hook grant
# that user the owner's socket, the lend directory or the owner's PulseAudio cookie. QEMU's
# configured identity (qemu.conf, else the distribution default) receives lends; any other
# identity only once root allows it in the policy (`sockhook policy allow --qemu USER:GROUP`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

lend_setup 3d6b1f0e-2a4c-4e8d-9b7a-5c1d2e3f4a60 pipewire-0 pulse
# The XML a user who may define domains writes: a static label naming someone else.
xml=$(lend_domain ident-dom "$U" pipewire:bind pulseaudio:bind |
  sed "s|</domain>|<seclabel type='static' model='dac' relabel='yes'><label>$lend_user2:$lend_user2</label></seclabel></domain>|")

# 1. Not allowed: refused with one line naming domain, socket, identity and the fix.
host_snapshot >"$TMP/before"
t0=$(date +%s%N)
if lend_hook ident-dom prepare begin "$xml"; then
  not_ok "prepare with a static seclabel naming $lend_user2 succeeded"
else
  ok "prepare with a static seclabel naming $lend_user2 fails"
fi
# A figure for the report, not an assertion: the refusal is decided while planning.
say "the refused prepare took $((($(date +%s%N) - t0) / 1000000)) ms"
say "hook said: $(cat "$TMP/hook.err")"
grep -q "^sockhook: error: ident-dom: pipewire: .*$lend_user2:$lend_user2.*sockhook policy allow --domain $U --qemu $lend_user2:$lend_user2" "$TMP/hook.err" &&
  ok "the error line names domain, socket, the identity and the command that allows it" ||
  not_ok "unexpected error output: $(cat "$TMP/hook.err")"
[[ $(grep -c "pipewire:" "$TMP/hook.err") == 1 ]] && ok "one line for the pipewire socket" ||
  not_ok "not exactly one line for the pipewire socket"
if lend_ping "$lend_user2" "$runtime/pipewire-0" || lend_ping "$lend_user2" "$L/pipewire-0"; then
  not_ok "$lend_user2 reaches the owner's socket"
else
  ok "$lend_user2 cannot reach the owner's socket"
fi
same_host "$TMP/before" "refused identity"
# plan says the same, without root's hook.
"$SOCKHOOK" plan - --policy "$etc/policy.conf" --plugin-dir "$etc/plugins" <<<"$xml" >"$TMP/plan.out" 2>&1 &&
  not_ok "plan of the refused identity exits 0" || ok "plan of the refused identity exits 1"
grep -q "refused" "$TMP/plan.out" && ok "plan says the identity is refused" ||
  not_ok "plan does not say refused: $(cat "$TMP/plan.out")"

# 2. Root allows it, through the CLI: the lend goes to that identity, and back out at release.
"$SOCKHOOK" policy --policy-file "$etc/policy.conf" allow --domain "$U" --qemu "$lend_user2:$lend_user2" >"$TMP/allow.out" ||
  not_ok "policy allow --qemu: $(cat "$TMP/allow.out")"
grep -q "^qemu = $lend_user2:$lend_user2\$" "$etc/policy.conf" && ok "the policy has the qemu line" ||
  not_ok "policy file: $(cat "$etc/policy.conf")"
"$SOCKHOOK" plan - --policy "$etc/policy.conf" --plugin-dir "$etc/plugins" <<<"$xml" >"$TMP/plan.out" 2>&1 || true
grep -q "allowed by the policy" "$TMP/plan.out" && ok "plan says the identity is allowed by the policy" ||
  not_ok "plan: $(cat "$TMP/plan.out")"
host_snapshot >"$TMP/before2"
lend_hook ident-dom prepare begin "$xml" && ok "prepare with the allowed identity succeeds" ||
  not_ok "prepare (allowed): $(cat "$TMP/hook.err")"
lend_ping "$lend_user2" "$L/pipewire-0" && ok "$lend_user2 reaches the lent socket" ||
  not_ok "$lend_user2 cannot reach the lent socket"
[[ $(stat -c %u "$L/pulse-cookie" 2>/dev/null) == "$lend_uid2" ]] && ok "the cookie copy belongs to $lend_user2" ||
  not_ok "cookie copy owner: $(stat -c %u "$L/pulse-cookie" 2>&1)"
lend_hook ident-dom release end "$xml" || not_ok "release exit"
same_host "$TMP/before2" "allowed identity, release"

finish
