#!/bin/bash
# Issue 9 item 4: every field that reaches the journal is bounded when the XML is parsed, the
# journal prepare writes always loads again, and cleanup says what it really did.
#   - a 4.5 MB <name> (the hook called with a short name in argv): refused in one line, nothing
#     changes (it used to make a journal too large to load, so release undid nothing);
#   - a name exactly at the limit: lent, reached, released byte-identical;
#   - a corrupt journal: cleanup says so, names what it could not undo and exits 1, the first
#     time and again later (it used to print "released" and exit 0); cleanup --stale says so
#     too (it once said "left alone: a hook of this domain runs now").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

lend_setup 6b5a4938-2716-4f05-9e4d-3c2b1a098701 pipewire-0
max_name=251  # the bound in hook/model/domain_xml.cpp (libvirt keeps NAME.xml: NAME_MAX - 4)

# ---- a 4.5 MB name --------------------------------------------------------------------------
host_snapshot >"$TMP/before"
huge=$(head -c 4500000 /dev/zero | tr '\0' a)
lend_domain "$huge" "$U" "pipewire:bind" >"$TMP/huge.xml"
rc=0
timeout 120 "$SOCKHOOK" hook --config-dir "$etc" short prepare begin - <"$TMP/huge.xml" \
  2>"$TMP/hook.err" || rc=$?
lend_one_line "4.5 MB name" "$rc" "the domain name is longer than $max_name bytes"
lend_hook short release end "$(lend_domain short "$U" "pipewire:bind")" || not_ok "4.5 MB name: release exit $?"
same_host "$TMP/before" "4.5 MB name"

# ---- one past the limit, and exactly at it ---------------------------------------------------
rc=0
lend_hook short prepare begin "$(lend_domain "$(head -c $((max_name + 1)) /dev/zero | tr '\0' n)" "$U" "pipewire:bind")" || rc=$?
lend_one_line "name of $((max_name + 1)) bytes" "$rc" "the domain name is longer than $max_name bytes"
same_host "$TMP/before" "name of $((max_name + 1)) bytes"

name=$(head -c "$max_name" /dev/zero | tr '\0' n)
xml=$(lend_domain "$name" "$U" "pipewire:bind")
if lend_hook "$name" prepare begin "$xml"; then
  ok "name of $max_name bytes: prepared"
  if lend_ping qemu "$L/pipewire-0"; then ok "name of $max_name bytes: QEMU's user reaches it"; else not_ok "name of $max_name bytes: QEMU's user cannot reach it"; fi
  if "$SOCKHOOK" status >"$TMP/status" 2>&1 && grep -q "$U" "$TMP/status"; then ok "name of $max_name bytes: status reads the journal"; else not_ok "name of $max_name bytes: status: $(head -c 300 "$TMP/status")"; fi
else
  not_ok "name of $max_name bytes: prepare failed: $(cat "$TMP/hook.err")"
fi
lend_hook "$name" release end "$xml" || not_ok "name of $max_name bytes: release exit $?"
[[ -s $TMP/hook.err ]] && not_ok "name of $max_name bytes: release wrote: $(cat "$TMP/hook.err")"
same_host "$TMP/before" "name of $max_name bytes"

# ---- a corrupt journal: cleanup must say so and fail ----------------------------------------
xml=$(lend_domain corrupt "$U" "pipewire:bind")
lend_hook corrupt prepare begin "$xml" || die "corrupt: prepare failed: $(cat "$TMP/hook.err")"
printf '<sockhook-journal version="1"><uuid>' >"/run/sockhook/state/$U.xml"  # cut short
for attempt in first second; do
  rc=0
  "$SOCKHOOK" cleanup "$U" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [[ $rc -eq 0 ]]; then not_ok "corrupt journal, $attempt cleanup: exit 0 ($(cat "$TMP/out" "$TMP/err"))"
  elif grep -q '^released' "$TMP/out"; then not_ok "corrupt journal, $attempt cleanup: claims '$(cat "$TMP/out")'"
  elif ! grep -q "corrupt" "$TMP/err"; then not_ok "corrupt journal, $attempt cleanup: does not say the journal is corrupt: $(cat "$TMP/err")"
  else ok "corrupt journal, $attempt cleanup: exit $rc: $(cat "$TMP/err")"; fi
done
# What the corrupt journal lent is left for a person (here: the suite's cleanup) to undo.
grep -o " $L/[^ ]*" /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
setfacl -b "$runtime/pipewire-0"
rm -rf "$L" "/run/sockhook/state/$U".*
same_host "$TMP/before" "corrupt journal, undone by hand"

# ---- a corrupt journal under cleanup --stale: said, and not taken for a running hook -------
# Taking the domain's lock moves an unreadable journal aside; cleanup --stale must say so (it
# once reported "left alone: a hook of this domain runs now" and dropped the message).
lend_hook corrupt prepare begin "$xml" || die "corrupt (stale): prepare failed: $(cat "$TMP/hook.err")"
printf '<sockhook-journal version="1"><uuid>' >"/run/sockhook/state/$U.xml"  # cut short
rc=0
"$SOCKHOOK" cleanup --stale >"$TMP/out" 2>"$TMP/err" || rc=$?
if grep -q 'left alone' "$TMP/out" "$TMP/err"; then not_ok "corrupt journal, cleanup --stale: left alone as if a hook ran: $(cat "$TMP/out" "$TMP/err")"
elif ! grep -q "corrupt" "$TMP/out" "$TMP/err"; then not_ok "corrupt journal, cleanup --stale: does not say the journal is corrupt: $(cat "$TMP/out" "$TMP/err")"
elif [[ $rc -eq 0 ]]; then not_ok "corrupt journal, cleanup --stale: exit 0 ($(cat "$TMP/out" "$TMP/err"))"
else ok "corrupt journal, cleanup --stale: exit $rc: $(cat "$TMP/out" "$TMP/err")"; fi
grep -o " $L/[^ ]*" /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
setfacl -b "$runtime/pipewire-0"
rm -rf "$L" "/run/sockhook/state/$U".*
same_host "$TMP/before" "corrupt journal under cleanup --stale, undone by hand"

finish
