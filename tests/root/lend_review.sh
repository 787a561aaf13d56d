#!/bin/bash
# Review before you grant (issue 11 part 3): `sockhook plan` of a domain the policy does not
# allow yet shows every step and variable the grant would bring, marked blocked, with the
# command that grants it (text and --json), and exits as before (1). The real hook still
# refuses the same XML and changes nothing on the host.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

U=8e2a4b6c-1d3f-4a5b-9c7d-0e1f2a3b4c5d
lend_uuids+=("$U")  # not allowed: the policy stays empty for it
lend_echo_server "$lend_user" "$runtime/pipewire-0" 0600
L=/run/sockhook/libvirt-$U
xml=$(lend_domain review-dom "$U" pipewire:bind)
grant="sockhook policy allow --domain $U --owner $lend_user --plugin pipewire"

rc=0
"$SOCKHOOK" plan - --policy "$etc/policy.conf" --plugin-dir "$etc/plugins" <<<"$xml" >"$TMP/plan.out" 2>"$TMP/plan.err" || rc=$?
say "plan said:"; sed 's/^/#   /' "$TMP/plan.out"
[[ $rc == 1 ]] && ok "plan of an unallowed domain exits 1, as before" || not_ok "plan exit $rc"
grep -q "bind-mount the verified inode of $runtime/pipewire-0" "$TMP/plan.out" && ok "plan shows the bind mount the grant would bring" ||
  not_ok "plan does not show the bind mount"
grep -q "PIPEWIRE_RUNTIME_DIR=$L" "$TMP/plan.out" && ok "plan shows the environment the grant would bring" ||
  not_ok "plan does not show PIPEWIRE_RUNTIME_DIR"
grep -qi "blocked" "$TMP/plan.out" && ok "plan marks the steps blocked" || not_ok "plan says nothing is blocked"
grep -qF "$grant" "$TMP/plan.out" && ok "plan gives the command that grants it" || not_ok "no grant command in the plan"
"$SOCKHOOK" plan - --json --policy "$etc/policy.conf" --plugin-dir "$etc/plugins" <<<"$xml" >"$TMP/plan.json" 2>/dev/null || true
"$py" -c '
import json, sys
s = json.load(open(sys.argv[1]))["sockets"][0]
ok = s["blocked"] and s["blocked_by"][0]["grant"] == sys.argv[2] and s["steps"] and all(t["blocked"] for t in s["steps"])
sys.exit(0 if ok else 1)' "$TMP/plan.json" "$grant" 2>/dev/null &&
  ok "plan --json: the socket and each of its steps are blocked, with the grant" ||
  not_ok "plan --json: $(cat "$TMP/plan.json")"

host_snapshot >"$TMP/before"
if lend_hook review-dom prepare begin "$xml"; then
  not_ok "the hook lent to an unallowed domain"
else
  ok "the hook still refuses: $(cat "$TMP/hook.err")"
fi
grep -q "^sockhook: error: review-dom: pipewire: the policy does not allow" "$TMP/hook.err" &&
  ok "the hook's line names domain, socket and the policy" || not_ok "hook said: $(cat "$TMP/hook.err")"
[[ ! -e $L ]] && ok "no lend directory" || not_ok "$L exists"
same_host "$TMP/before" "refused by policy"

finish
