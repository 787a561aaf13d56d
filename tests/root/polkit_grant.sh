#!/usr/bin/env bash
# polkit_grant.sh - the owner says yes (SPEC §16, issue 21): `sockhook grant` and `revoke` run
# by the owner as themselves, authorised by a real polkitd on a real system D-Bus, both
# started here without systemd (or the ones already running used) and stopped at exit.
#
#   bash tests/root/polkit_grant.sh /abs/path/to/sockhook     (root; exit 77 otherwise)
#
# The shipped action (dist/polkit/org.sockhook.policy.in, naming a copy of the binary under
# test) and rule (dist/polkit/50-sockhook.rules) are put where polkitd reads them, and what
# was there comes back at exit. The desktop user shtest is put in the group libvirt for the
# suite (and taken out again, if it was not in it); shother stays outside it.
# - shother is refused in a non-interactive session, one line, policy and XML byte-identical;
# - shtest cannot grant to a domain that does not exist, a plugin that is not installed, a
#   socket of the same name that shother lends, or name another owner: one line each,
#   nothing changed;
# - shtest grants their own PulseAudio without a password: the domain XML and the policy
#   show it, the policy changed only in shtest's own entry; the VM starts and is a client of
#   shtest's PulseAudio; revoke takes out only shtest's socket (shother's stays), the policy
#   is byte-identical to before the grant, and the next start lends nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" e2e "$@"
need_tools pkexec dbus-daemon dbus-send gpasswd
POLKITD=/usr/lib/polkit-1/polkitd
[[ -x $POLKITD ]] || skip "polkitd is not installed (package polkitd)"
[[ -u /usr/bin/pkexec ]] || skip "/usr/bin/pkexec is not setuid root"

ACTION=/usr/share/polkit-1/actions/org.sockhook.policy
RULES=/usr/share/polkit-1/rules.d/50-sockhook.rules
D=${E2E_PREFIX}grant
POLICY=$ETC/policy.conf

# ------------------------------------------------------------ polkit's files, the binary
# pkexec runs what the action names, as the test users: a copy they can reach.
install -D -m 0755 -o root -g root "$SOCKHOOK" "$TMP/bin/sockhook"
BIN=$TMP/bin/sockhook
install -d -m 0755 "$TMP/polkit-backup"
polkit_restore() {
    local f
    for f in "$ACTION" "$RULES"; do
        rm -f "$f"
        [[ -e $TMP/polkit-backup/${f##*/} ]] && cp -a "$TMP/polkit-backup/${f##*/}" "$f"
    done
    return 0
}
for f in "$ACTION" "$RULES"; do [[ -e $f ]] && cp -a "$f" "$TMP/polkit-backup/"; done
on_exit polkit_restore
sed "s|@SOCKHOOK@|$BIN|" "$REPO/dist/polkit/org.sockhook.policy.in" |
    install -D -m 0644 -o root -g root /dev/stdin "$ACTION"
install -D -m 0644 -o root -g root "$REPO/dist/polkit/50-sockhook.rules" "$RULES"

# ------------------------------------------------------------ the group
in_libvirt() { id -nG "$1" | tr ' ' '\n' | grep -qx libvirt; }
in_libvirt "$SH_OTHER" && die "$SH_OTHER is in the group libvirt: the refusal cannot be shown"
ADDED_TO_GROUP=no
group_restore() { [[ $ADDED_TO_GROUP == yes ]] && gpasswd -d "$SH_USER" libvirt >/dev/null; return 0; }
on_exit group_restore
if ! in_libvirt "$SH_USER"; then
    gpasswd -a "$SH_USER" libvirt >/dev/null
    ADDED_TO_GROUP=yes
fi

# ------------------------------------------------------------ the system bus and polkitd
bus_up() {
    timeout 5 dbus-send --system --print-reply --reply-timeout=2000 --dest=org.freedesktop.DBus \
        / org.freedesktop.DBus.GetId >/dev/null 2>&1
}
polkit_up() {
    timeout 5 dbus-send --system --print-reply --reply-timeout=2000 --dest=org.freedesktop.DBus \
        / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.PolicyKit1 2>/dev/null |
        grep -q 'boolean true'
}
DBUS_PID= POLKITD_PID=
bus_down() {
    if [[ -n $POLKITD_PID ]]; then kill "$POLKITD_PID" 2>/dev/null; wait "$POLKITD_PID" 2>/dev/null; fi
    if [[ -n $DBUS_PID ]]; then
        kill "$DBUS_PID" 2>/dev/null
        local i
        for ((i = 0; i < 50; i++)); do [[ -e /proc/$DBUS_PID ]] || break; sleep 0.1; done
        rm -f /run/dbus/pid /run/dbus/system_bus_socket
    fi
    return 0
}
on_exit bus_down
if bus_up; then
    say "using the system bus that runs already"
else
    install -d -m 0755 /run/dbus
    # A pid file of a bus that is gone stops dbus-daemon from starting.
    if [[ -f /run/dbus/pid ]] && ! kill -0 "$(cat /run/dbus/pid)" 2>/dev/null; then
        rm -f /run/dbus/pid /run/dbus/system_bus_socket
    fi
    DBUS_PID=$(dbus-daemon --system --fork --print-pid) || die "dbus-daemon --system does not start"
    check "a system bus of our own answers (dbus-daemon $DBUS_PID)" wait_until 10 bus_up
fi
if polkit_up; then
    say "using the polkitd that runs already (it reloads actions and rules when they change)"
else
    "$POLKITD" --no-debug >"$TMP/polkitd.log" 2>&1 &
    POLKITD_PID=$!
    wait_until 10 polkit_up || { cat "$TMP/polkitd.log" >&2; die "polkitd does not come up"; }
    ok "polkitd ($POLKITD_PID) owns org.freedesktop.PolicyKit1"
fi

# ------------------------------------------------------------ helpers
# as USER CMD... : CMD as USER (its groups from /etc/group), no terminal, a clean
# environment, and a shell in between so that pkexec's parent is USER's process, as a
# desktop's would be; stdout and stderr together.
as() {
    local u=$1
    shift
    (cd / && setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --init-groups \
        env -i PATH=/usr/bin:/bin HOME=/ LANG=C.UTF-8 bash -c '"$@"; exit $?' _ "$@") </dev/null 2>&1
}
xml_now() { virsh_ dumpxml --inactive "$D"; }
# unchanged WHAT : the policy and the domain's definition are as in $P0 and $X0.
unchanged() {
    check "$1: policy.conf is byte-identical" cmp -s "$P0" "$POLICY"
    check "$1: the domain's definition is unchanged" diff -q <(echo "$X0") <(xml_now)
}
# one_line WHAT OUT : OUT is one line, sockhook's error (shown).
one_line() {
    show "$2"
    check "$1: one line" test "$(grep -c . <<<"$2")" -eq 1
    check "$1: it is sockhook's error" grep -q '^sockhook: error: ' <<<"$2"
}
# refused WHAT PATTERN CMD... : CMD (as shtest, through sockhook) fails, says PATTERN in
# one line, and nothing changes.
refused() {
    local what=$1 pattern=$2 out rc=0
    shift 2
    out=$(as "$SH_USER" "$BIN" "$@") || rc=$?
    check "$what: refused (exit $rc)" test "$rc" -ne 0
    one_line "$what" "$out"
    check "$what: it says why" grep -q -E "$pattern" <<<"$out"
    unchanged "$what"
}

# ------------------------------------------------------------ a domain with shother's socket
"$DESKTOP" start pulseaudio >/dev/null
define_domain "$D" UD
# Another owner's socket on the same domain (not required: shother runs no server here). JACK's,
# because QEMU starts without it: with a PipeWire audiodev (libvirt 11 writes one for the
# pipewire plugin) QEMU 10 waits for a server that never comes, and virsh start with it.
annotate "$D" --plugin jack --owner "$SH_OTHER" --required no --wait 0 >/dev/null
P0=$TMP/policy.before
cp -a "$POLICY" "$P0"
X0=$(xml_now)
check "the policy allows $SH_OTHER's jack before" grep -q "^$SH_OTHER = jack" "$POLICY"

say "a user outside libvirt, non-interactive: polkit says no"
rc=0
out=$(as "$SH_OTHER" "$BIN" grant "$D" --plugin pulseaudio) || rc=$?
show "$out"
check "$SH_OTHER's grant fails (exit $rc)" test "$rc" -ne 0
check "sockhook says that polkit did not authorise it, in one line" \
    test "$(grep -c '^sockhook: error: .*polkit did not authorise org.sockhook.grant' <<<"$out")" -eq 1
unchanged "$SH_OTHER refused"

say "what $SH_USER cannot grant"
refused "a domain that does not exist" "${E2E_PREFIX}no-such-domain" \
    grant "${E2E_PREFIX}no-such-domain" --plugin pulseaudio
refused "a plugin that is not installed" "nosuch" grant "$D" --plugin nosuch
refused "the socket of the same name that $SH_OTHER lends" "$SH_OTHER's, not $SH_USER's" \
    grant "$D" --plugin jack
# There is no --owner: the command line parser refuses it (its usage message, exit 2).
rc=0
out=$(as "$SH_USER" "$BIN" grant "$D" --plugin pulseaudio --owner "$SH_OTHER") || rc=$?
show "$out"
check "another owner named on the command line: a usage error (exit $rc)" test "$rc" -eq 2
unchanged "another owner named on the command line"
refused "revoking what $SH_USER does not lend" "no socket of $SH_USER's" revoke "$D"
rc=0
out=$("$BIN" grant "$D" --plugin pulseaudio 2>&1) || rc=$?
one_line "root's grant (root uses annotate)" "$out"
unchanged "root's grant"

say "$SH_USER, in libvirt, grants their own PulseAudio without a password"
rc=0
out=$(as "$SH_USER" "$BIN" grant "$D" --plugin pulseaudio --method proxy) || rc=$?
show "$out"
check "grant exits 0" test "$rc" -eq 0
check "grant prints the plan of the next start" grep -q "provided by" <<<"$out"
X1=$(xml_now)
# (libvirt prints the metadata with double quotes, sockhook writes single ones: either.)
q="[\"']"
check "the domain has $SH_USER's pulseaudio socket" \
    grep -q -E "<sockhook:socket plugin=${q}pulseaudio$q owner=$q$SH_USER$q method=${q}proxy$q" <<<"$X1"
check "and still $SH_OTHER's jack socket" \
    grep -q -E "<sockhook:socket plugin=${q}jack$q owner=$q$SH_OTHER$q" <<<"$X1"
check "the policy allows $SH_USER's pulseaudio to $UD" \
    bash -c "sed -n '/^\\[$UD\\]/,/^\\[/p' '$POLICY' | grep -qx '$SH_USER = pulseaudio'"
check "the policy changed only in $SH_USER's own entry" \
    diff <(grep -v "^$SH_USER = " "$P0") <(grep -v "^$SH_USER = " "$POLICY")
check "the file $SH_USER's grant wrote is root's, mode 0644" \
    test "$(stat -c '%U %a' "$POLICY")" = "root 644"
mine=$(as "$SH_USER" "$BIN" policy --policy-file "$POLICY" list 2>&1) || true
show "$mine"
check "$SH_USER's policy list shows their pulseaudio for $UD" grep -q -x "$UD  pulseaudio" <<<"$mine"
check "$SH_USER's policy list shows nothing of $SH_OTHER's" not grep -q jack <<<"$mine"
theirs=$(as "$SH_OTHER" "$BIN" policy --policy-file "$POLICY" list 2>&1) || true
check "$SH_OTHER's policy list shows their own jack, not $SH_USER's pulseaudio" \
    bash -c 'grep -q -x "$1  jack" <<<"$2" && ! grep -q pulseaudio <<<"$2"' _ "$UD" "$theirs"

say "the VM starts with the lend"
if started "$D" "granted by $SH_USER"; then
    check "QEMU is a client of $SH_USER's PulseAudio" wait_until "$E2E_TIMEOUT" has_pulse_clients
    stop "$D"
fi

say "$SH_USER revokes: only their own socket goes"
rc=0
out=$(as "$SH_USER" "$BIN" revoke "$D") || rc=$?
show "$out"
check "revoke exits 0" test "$rc" -eq 0
X2=$(xml_now)
check "$SH_USER's socket is gone" not grep -q -E "owner=$q$SH_USER$q" <<<"$X2"
check "$SH_OTHER's socket stays" grep -q -E "owner=$q$SH_OTHER$q" <<<"$X2"
check "the definition is as before the grant (shother's socket stays)" diff <(echo "$X0") <(echo "$X2")
check "policy.conf is byte-identical to before the grant" cmp "$P0" "$POLICY"

say "the next start lends nothing of $SH_USER's"
if started "$D" "after revoke"; then
    check "QEMU is no client of $SH_USER's PulseAudio (counted)" test "$(pulse_client_count)" -eq 0
    check "no lend of $SH_USER's is recorded for $UD" \
        bash -c "! grep -q pulseaudio /run/sockhook/state/$UD.xml 2>/dev/null"
    stop "$D"
fi
finish
