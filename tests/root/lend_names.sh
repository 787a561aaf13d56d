#!/usr/bin/env bash
# lend_names.sh - the names people give their VMs, through every command that takes one, with
# a real libvirtd (issue 20, item 7).
#
# Domains named like `Windows 11`, `ü-test`, `a'b`, `acc see bind` and a 200-byte name with
# all of these in it (each behind the suites' shtest-e2e- prefix, so that a host's own
# `Windows 11` is never touched) go through: annotate (by name, through libvirt), plan
# --domain, doctor, policy revoke/allow --domain by name, the hook as libvirt calls it (argv
# carries the name) with status, refresh and cleanup by name, and bash completion with the real
# virsh listing them. The 200-byte name also starts a real VM (pulseaudio, bind) through
# libvirt: the hook's log lines name it, status shows it, and the host is byte-identical after
# it stops.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"

# SOCKHOOK_TEST_COMPLETION: another completion file (an installed one, or an old one to show
# the checks failing).
COMPLETION=${SOCKHOOK_TEST_COMPLETION:-$REPO/dist/sockhook.bash-completion}
"$DESKTOP" start pulseaudio >/dev/null
syslog_listen

# A name of exactly 200 bytes (not characters: ü is two) with a space, a quote and a non-ASCII
# letter in it.
long="${E2E_PREFIX}z Windows 11 ü a'b "
while (($(LC_ALL=C; printf '%s' "$long" | wc -c) < 200)); do long+=x; done
NAMES=("${E2E_PREFIX}Windows 11" "${E2E_PREFIX}ü-test" "${E2E_PREFIX}a'b"
    "${E2E_PREFIX}acc see bind" "$long")
say "the long name has $(printf '%s' "$long" | wc -c) bytes"

declare -A UUID
for n in "${NAMES[@]}"; do
    define_domain "$n" u
    UUID[$n]=$u
done
# (Only ours: another suite's domain may be defined beside them.)
# shellcheck disable=SC2016 # expanded by the inner bash
check "libvirt lists every name as it is" \
    bash -c 'listed=$(virsh -q -c "$1" list --all --name); shift
        for n; do grep -qxF -- "$n" <<<"$listed" || exit 1; done' _ "$URI" "${NAMES[@]}"

# typed FRAMEWORK LINE : the arguments `sockhook` gets when a person types LINE, presses TAB
# and Enter in an interactive bash (a real readline on a pseudo-terminal, the real virsh on
# PATH), as <ARG><ARG>...; FRAMEWORK yes loads bash-completion's framework first.
typed() {
    local fw=()
    [[ $1 == yes ]] && fw=(/usr/share/bash-completion/bash_completion)
    "$py" "$REPO/tests/readline_complete.py" "$COMPLETION" "$2" "${fw[@]}" 2>&1
}
# typed_as FRAMEWORK LINE EXPECTED : typed gives EXPECTED.
typed_as() {
    local got; got=$(typed "$1" "$2")
    if [[ $got == "$3" ]]; then ok "TAB after '$2' gives $3 (framework: $1)"
    else not_ok "TAB after '$2' gives $3 (framework: $1), got: $got"; fi
}

say "completion: TAB in a real interactive bash, virsh listing the domains"
need_tools "$py"
frameworks=(no)
[[ -r /usr/share/bash-completion/bash_completion ]] && frameworks+=(yes)
for fw in "${frameworks[@]}"; do
    typed_as "$fw" "sockhook refresh ${E2E_PREFIX}acc" "<refresh><${E2E_PREFIX}acc see bind>"
    typed_as "$fw" "sockhook policy allow --owner $SH_USER --domain ${E2E_PREFIX}Win" \
        "<policy><allow><--owner><$SH_USER><--domain><${E2E_PREFIX}Windows 11>"
    typed_as "$fw" "sockhook annotate ${E2E_PREFIX}ü" "<annotate><${E2E_PREFIX}ü-test>"
    typed_as "$fw" "sockhook doctor ${E2E_PREFIX}a\\'" "<doctor><${E2E_PREFIX}a'b>"
    typed_as "$fw" "sockhook cleanup ${E2E_PREFIX}z" "<cleanup><$long>"
done

for n in "${NAMES[@]}"; do
    u=${UUID[$n]}
    say "name: $n ($u)"
    # bind: the method does not depend on the host's LSM, and status names it.
    annotate_ok "$n" --plugin pulseaudio --owner "$SH_USER" --method bind
    check "annotate by name: the metadata is in the definition" grep -q 'urn:sockhook:domain:1' <<<"$XML"
    check "annotate by name: the allowance is recorded under the UUID" policy_has "$u"
    plan_ok "$n"
    out=$("$SOCKHOOK" plan --domain "$n" 2>&1) || true
    check "plan --domain names the domain as it is" grep -qF -- "$n" <<<"$out"
    doctor_ok "$n"
    out=$("$SOCKHOOK" policy revoke --domain "$n" --owner "$SH_USER" 2>&1) || true
    check "policy revoke --domain by name takes the allowance back ($out)" \
        bash -c "! grep -q -i '$u' '$ETC/policy.conf'"
    out=$("$SOCKHOOK" policy allow --domain "$n" --owner "$SH_USER" --plugin pulseaudio 2>&1) || true
    check "policy allow --domain by name records it under the UUID ($out)" policy_has "$u"

    # The hook as libvirt runs it: the name in argv, the live XML on stdin.
    host_snapshot >"$TMP/names.before"
    virsh_ dumpxml --inactive "$n" >"$TMP/dom.xml"
    if "$HOOK" "$n" prepare begin - <"$TMP/dom.xml" 2>"$TMP/hook.err"; then
        ok "the hook lends to '$n' at prepare"
        st=$("$SOCKHOOK" status --json)
        check "status --json names the domain as it is" \
            "$py" -c 'import json, sys; l = json.loads(sys.argv[1]); sys.exit(0 if any(x["domain"] == sys.argv[2] and x["uuid"] == sys.argv[3] for x in l) else 1)' \
            "$st" "$n" "$u"
        check "status names the domain as it is" grep -qF -- "$n ($u) pulseaudio: bind" <(
            "$SOCKHOOK" status)
        out=$("$SOCKHOOK" refresh "$n" 2>&1) || true
        check "refresh by name finds the lends ($out)" test "$out" == "nothing stale"
        out=$("$SOCKHOOK" cleanup "$n" 2>&1) || true
        check "cleanup by name releases them ($out)" test "$out" == "released $u"
        "$HOOK" "$n" release end - <"$TMP/dom.xml" 2>>"$TMP/hook.err" || true
    else
        not_ok "the hook lends to '$n' at prepare: $(cat "$TMP/hook.err")"
    fi
    same_host "$TMP/names.before" "prepare, cleanup by name and release of '$n'"
done

say "a real start of the 200-byte name through libvirt"
log_from=$(($(stat -c %s "$TMP/syslog" 2>/dev/null || echo 0) + 1))
host_snapshot >"$BEFORE"
if started "$long"; then
    check "pactl lists qemu-system-x86_64 as a client" wait_until "$E2E_TIMEOUT" has_pulse_clients 1
    lent_in_ns "$long" "${UUID[$long]}" pulse-native "the lent socket is inside QEMU's mount namespace"
    check "status shows the running domain by its name" grep -qF -- "$long (${UUID[$long]}) pulseaudio" \
        <("$SOCKHOOK" status)
    stop "$long"
fi
check "virsh destroy leaves the host byte-identical" same_as_before "$BEFORE"
if [[ -n $SYSLOG_PID ]]; then
    check "the hook's log names the domain as it is" \
        grep -qF -- "$long: prepare done" <(tail -c "+$log_from" "$TMP/syslog")
    tail -c "+$log_from" "$TMP/syslog" | sed 's/^/# syslog: /' | head -5
else
    say "a syslog daemon runs: the log lines are not checked"
fi

for n in "${NAMES[@]}"; do virsh_ undefine "$n" >/dev/null; done
finish
