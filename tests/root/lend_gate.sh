#!/bin/bash
# Issue 22 items 2-4: the policy gate comes first.
#   - XML alone: 20,000 unknown elements in the metadata of a domain the policy does not allow
#     make the hook log one line (they made one line each, at prepare and again at start); of
#     an allowed domain, at most 64 problems and one summary line;
#   - a domain the policy does not allow: the hook looks at nothing of the owner's (no path in
#     the owner's runtime directory is named in any system call), where it used to stat the
#     sockets through symlinks and list every directory on the way;
#   - of an allowed domain, the probe resolves beneath the runtime directory without following
#     a symlinked directory, and lists at most 256 entries of each directory;
#   - a refusal leaks nothing: a socket whose ACL names other users, lent with method bind to a
#     domain the policy does not allow (wholly, or only that socket), is refused by the policy,
#     and the line shows nobody's ACL entries.
# The hook's syslog goes to a listener of this suite: the hook runs in a mount namespace of its
# own whose /dev holds the listener's socket as /dev/log (and the host's null, zero, random).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
need_tools strace unshare setfacl

R=2d7c4e91-6a3b-4f08-b5d2-9e1f0a7c3b64  # never in the policy
P=7f3e9a15-0c2d-4b6e-8a41-d5c6b7e8f902  # the policy allows only pulseaudio
lend_setup 4c1b8e27-93fa-4d65-a0b3-6e2f1d7c8a59 pipewire-0
lend_uuids+=("$R" "$P")
printf '[%s]\n%s = pulseaudio\n' "$P" "$lend_user" >>"$etc/policy.conf"

# ---- a private syslog ------------------------------------------------------------------------
install -d -m 755 "$TMP/dev"
for n in null zero full random urandom; do : >"$TMP/dev/$n"; done
: >"$TMP/syslog"
"$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        m = s.recv(65536).decode(errors="replace")
        out.write(m.replace("\n", "\\n") + "\n")  # one line per message
        out.flush()
' "$TMP/dev/log" "$TMP/syslog" &
bg_pids+=("$!")
wait_until 5 test -S "$TMP/dev/log" || die "cannot listen on $TMP/dev/log"

# in_private_dev CMD...: CMD with $TMP/dev as /dev, in a mount namespace that ends with it.
in_private_dev() {
  unshare -m --propagation private bash -c '
    for n in null zero full random urandom; do mount --bind "/dev/$n" "$1/$n"; done
    mount --rbind "$1" /dev
    shift
    exec "$@"' _ "$TMP/dev" "$@"
}

# hook_logged NAME OP SUB XMLFILE: runs the hook; $rc its exit, $logged the lines it logged.
hook_logged() {
  local before mark
  before=$(wc -l <"$TMP/syslog")
  rc=0
  in_private_dev "$SOCKHOOK" hook --config-dir "$etc" "$1" "$2" "$3" - <"$4" 2>"$TMP/hook.err" || rc=$?
  # A mark after the hook's last line: everything before it has been received.
  mark="mark-$RANDOM$RANDOM"
  "$py" -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(sys.argv[2].encode(), sys.argv[1])' \
    "$TMP/dev/log" "$mark"
  wait_until 60 grep -q "$mark" "$TMP/syslog" || die "the syslog listener fell behind"
  logged=$(($(wc -l <"$TMP/syslog") - before - 1))
}

# many_unknown NAME UUID N SOCKET...: lend_domain's XML with N unknown elements in <sockets>.
many_unknown() {
  local name=$1 uuid=$2 n=$3 xml unknown
  shift 3
  xml=$(lend_domain "$name" "$uuid" "$@")
  unknown=$(printf '<sockhook:x/>%.0s' $(seq "$n"))
  printf '%s' "${xml/<\/sockhook:sockets>/$unknown</sockhook:sockets>}"
}

# ---- item 2: XML alone --------------------------------------------------------------------------
host_snapshot >"$TMP/before"
many_unknown refused-dom "$R" 20000 pipewire:bind >"$TMP/refused.xml"
for op in prepare start; do
  hook_logged refused-dom "$op" begin "$TMP/refused.xml"
  lend_one_line "unallowed, 20,000 unknown elements, $op" "$rc" \
    "refused-dom: pipewire: the policy does not allow $lend_user to lend 'pipewire'"
  say "$op of the unallowed domain logged $logged lines"
  ((logged <= 1)) && ok "unallowed, 20,000 unknown elements, $op: $logged line logged" ||
    not_ok "unallowed, 20,000 unknown elements, $op: $logged lines logged, want 1"
done
same_host "$TMP/before" "unallowed, 20,000 unknown elements"

# An allowed domain, in a dry run (the plan is logged, nothing is lent): the problems are
# bounded, and the rest is counted in one line.
echo "dry_run = true" >"$etc/sockhook.conf"
many_unknown allowed-dom "$U" 20000 pipewire:bind >"$TMP/allowed.xml"
hook_logged allowed-dom prepare begin "$TMP/allowed.xml"
rm -f "$etc/sockhook.conf"
say "prepare of the allowed domain (dry run) logged $logged lines"
[[ $rc == 0 ]] && ok "allowed, 20,000 unknown elements: dry run passes" ||
  not_ok "allowed, 20,000 unknown elements: exit $rc: $(head -c 300 "$TMP/hook.err")"
((logged <= 70)) && ok "allowed, 20,000 unknown elements: $logged lines logged (64 problems, their summary, the plan)" ||
  not_ok "allowed, 20,000 unknown elements: $logged lines logged, want at most 70"
grep -q "19936 more problems in the metadata are not shown (64 are)" "$TMP/syslog" &&
  ok "allowed, 20,000 unknown elements: one line counts the rest" || not_ok "no summary line in the log"
same_host "$TMP/before" "allowed, 20,000 unknown elements (dry run)"

# ---- item 3: nothing of the owner's before the policy ------------------------------------------
# pipewire with acl (lists each directory on the way), pulseaudio auto through a symlinked
# directory (stat through the symlink): the owner's runtime directory must not be named at all.
ln -s /root "$runtime/pulse"
chown -h "$lend_user:" "$runtime/pulse"
host_snapshot >"$TMP/before"
lend_domain untouched-dom "$R" pipewire:acl pulseaudio:auto >"$TMP/untouched.xml"
rc=0
strace -f -qq -o "$TMP/strace" -e trace=%file,getdents64 \
  "$SOCKHOOK" hook --config-dir "$etc" untouched-dom prepare begin - <"$TMP/untouched.xml" \
  2>"$TMP/hook.err" || rc=$?
lend_one_line "unallowed acl and auto" "$rc" "the policy does not allow $lend_user to lend 'pipewire' to this domain (nor its other socket)"
touched=$(grep -c "$runtime" "$TMP/strace" || true)
say "system calls naming $runtime: $touched"
if ((touched == 0)); then
  ok "unallowed acl and auto: no system call names the owner's runtime directory"
else
  not_ok "unallowed acl and auto: $touched system calls name $runtime: $(grep "$runtime" "$TMP/strace" | head -3 | tr '\n' ' ')"
fi
grep -q getdents64 "$TMP/strace" && say "(directories the hook listed: $(grep -c getdents64 "$TMP/strace") getdents64 calls)"
same_host "$TMP/before" "unallowed acl and auto"
rm "$runtime/pulse"

# ---- item 3, allowed: the probe stays beneath the runtime directory, and is bounded ------------
# $runtime/pulse points at a root-only directory that holds a socket: the probe must not say
# (here: auto's choice) whether it is there. 300 entries beside pipewire-0: the listing for
# acl stops at 256 and says so. A dry run logs the plan and lends nothing.
install -d -m 0700 "$TMP/secret"
"$py" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$TMP/secret/native"
ln -s "$TMP/secret" "$runtime/pulse"
chown -h "$lend_user:" "$runtime/pulse"
for i in $(seq 300); do : >"$runtime/e$i"; done
chown "$lend_user:" "$runtime"/e*
host_snapshot >"$TMP/before"
echo "dry_run = true" >"$etc/sockhook.conf"
lend_domain probed-dom "$U" pulseaudio:auto pipewire:acl >"$TMP/probed.xml"
hook_logged probed-dom prepare begin "$TMP/probed.xml"
rm -f "$etc/sockhook.conf"
[[ $rc == 0 ]] && ok "allowed, probed: dry run passes" || not_ok "allowed, probed: exit $rc: $(cat "$TMP/hook.err")"
plan_line=$(grep "dry run, prepare would do" "$TMP/syslog" | tail -1)
# auto's note says what the probe saw (whichever method it then picks on this host).
if [[ $plan_line == *"auto: the socket exists"* || $plan_line == *"the socket exists now"* ]]; then
  not_ok "allowed, probed: the probe followed pulse -> $TMP/secret and found the socket there"
elif [[ $plan_line == *"could not look now"* || $plan_line == *"could not look at the socket now"* ]]; then
  ok "allowed, probed: the probe did not follow the symlinked directory (auto could not look)"
else
  not_ok "allowed, probed: no plan in the log: ${plan_line:0:300}"
fi
[[ $plan_line == *"$runtime holds more entries than are listed here"* ]] &&
  ok "allowed, probed: the listing of 302 entries is bounded, and the plan says so" ||
  not_ok "allowed, probed: the plan does not say the listing was bounded"
same_host "$TMP/before" "allowed, probed (dry run)"
rm -f "$runtime/pulse" "$runtime"/e*

# ---- item 4: a refusal leaks nothing -----------------------------------------------------------
# Named entries held back by the mask: QEMU's u:rw would widen it and give them rw.
setfacl -m u:4321:rw,g:4322:rw,m::--- "$runtime/pipewire-0"
host_snapshot >"$TMP/before"
for d in "$R:the policy allows nothing for the domain" "$P:the policy allows the domain only pulseaudio"; do
  uuid=${d%%:*} what=${d#*:}
  rc=0
  lend_hook leak-dom prepare begin "$(lend_domain leak-dom "$uuid" pipewire:bind)" || rc=$?
  lend_one_line "$what, bind on a socket with others' ACL entries" "$rc" \
    "leak-dom: pipewire: the policy does not allow $lend_user to lend 'pipewire' to this domain"
  grep -q -e 4321 -e 4322 "$TMP/hook.err" &&
    not_ok "$what: the refusal shows the socket's ACL: $(cat "$TMP/hook.err")" ||
    ok "$what: the refusal shows nobody's ACL entries"
done
# plan, the review, still says what the ACL would refuse once allowed; its error is the policy's.
rc=0
"$SOCKHOOK" plan - --policy "$etc/policy.conf" --plugin-dir "$etc/plugins" \
  <<<"$(lend_domain leak-dom "$R" pipewire:bind)" >"$TMP/plan.out" 2>"$TMP/plan.err" || rc=$?
[[ $rc == 1 ]] && grep -q "the policy does not allow" "$TMP/plan.err" && ! grep -q 4321 "$TMP/plan.err" &&
  ok "plan's error is the policy's" || not_ok "plan: exit $rc: $(cat "$TMP/plan.err")"
grep -q "once allowed: cannot add ACL entry" "$TMP/plan.out" &&
  ok "plan's review says what the ACL would refuse once allowed" || not_ok "plan: $(cat "$TMP/plan.out")"
same_host "$TMP/before" "refusals"
setfacl -b "$runtime/pipewire-0"

finish
