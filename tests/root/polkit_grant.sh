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
# - `sockhook status` as an owner (action org.sockhook.status, no password for anyone): shtest's
#   shows their running VM's lend, text and --json, and nothing of shother's; shother's (a user
#   outside libvirt, their own socket lent to the same VM) shows theirs and nothing of shtest's;
#   root's shows both. An administrator's rule saying no to shother's status gives one line.
# - every refusal by polkit is exactly one line, sockhook's (pkexec's own text replaced).
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

# statuses WHO : WHO's `sockhook status` and `status --json` (exit codes in $ST_RC, $SJ_RC).
statuses() {
    ST_RC=0 SJ_RC=0
    ST=$(as "$1" "$BIN" status) || ST_RC=$?
    SJ=$(as "$1" "$BIN" status --json) || SJ_RC=$?
    show "$ST"
}
# json_lends JSON : one line per lend, "domain uuid socket method owner" (fails on bad JSON).
json_lends() {
    python3 -c 'import json, sys
for l in json.loads(sys.argv[1]):
    print(l["domain"], l["uuid"], l["socket"], l["method"], l["owner"])' "$1"
}
# status_refused, status_allowed : whether polkitd refuses shother's status now (it reloads
# rules.d when a file there changes).
status_refused() {
    local out
    out=$(as "$SH_OTHER" "$BIN" status) || true  # (pipefail: not a pipe from a failing command)
    grep -q 'polkit did not authorise org.sockhook.status' <<<"$out"
}
status_allowed() { as "$SH_OTHER" "$BIN" status >/dev/null; }
LOCAL_RULE=/etc/polkit-1/rules.d/10-sockhook-test-status.rules
local_rule_down() { rm -f "$LOCAL_RULE"; }
[[ ! -e $LOCAL_RULE ]] || die "$LOCAL_RULE exists: an administrator's, which the suite would remove"

# ------------------------------------------------------------ shother's own socket
# shother, outside libvirt, lends a socket of their own to the same domain, so that each
# owner's status has something of theirs to show and something of the other's to leave out.
# A socket file of shother's in a runtime directory of shother's (a tmpfs, as logind mounts it,
# since sockhook resolves beneath it with RESOLVE_NO_XDEV); nothing listens on it: QEMU's JACK
# client finds no server there, as it would find none without it.
OTHER_UID=$(id -u "$SH_OTHER")
OTHER_RT=/run/user/$OTHER_UID
other_rt_down() {
    # The domain first: its bind mount holds the socket's inode (its hook unmounts it).
    [[ $(virsh_ domstate "$D" 2>/dev/null) != running ]] || stop "$D" || true
    if mountpoint -q "$OTHER_RT"; then umount "$OTHER_RT"; fi
    rmdir "$OTHER_RT" 2>/dev/null || true
    return 0
}
mountpoint -q "$OTHER_RT" && die "$OTHER_RT is mounted already: the suite would not know what to restore"
install -d -m 0755 /run/user
install -d -m 0700 -o "$SH_OTHER" -g "$(id -g "$SH_OTHER")" "$OTHER_RT"
on_exit other_rt_down
mount -t tmpfs -o "mode=0700,uid=$OTHER_UID,gid=$(id -g "$SH_OTHER"),size=1M,nosuid,nodev" \
    "tmpfs-$SH_OTHER" "$OTHER_RT"
as "$SH_OTHER" python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
    "$OTHER_RT/pipewire-0"
check "$SH_OTHER has a socket of their own: $OTHER_RT/pipewire-0" test -S "$OTHER_RT/pipewire-0"

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
one_line "$SH_OTHER's refused grant" "$out"
check "sockhook says that polkit did not authorise it, naming the domain and the plugin" \
    grep -q "^sockhook: error: $D: pulseaudio: polkit did not authorise org.sockhook.grant" <<<"$out"
unchanged "$SH_OTHER refused"
rc=0
out=$(as "$SH_OTHER" "$BIN" revoke "$D") || rc=$?
check "$SH_OTHER's revoke fails (exit $rc)" test "$rc" -ne 0
one_line "$SH_OTHER's refused revoke" "$out"
check "it says that polkit did not authorise it" \
    grep -q "^sockhook: error: $D: polkit did not authorise org.sockhook.grant" <<<"$out"
unchanged "$SH_OTHER's revoke refused"

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

say "$SH_USER's status, while no VM runs: none of theirs"
statuses "$SH_USER"
check "it exits 0 (text $ST_RC, json $SJ_RC)" test "$ST_RC$SJ_RC" = 00
check "it says $SH_USER has no active lends" grep -q -x "no active lends of $SH_USER's" <<<"$ST"
check "and --json gives []" test "$(tr -d '[:space:]' <<<"$SJ")" = "[]"

say "the VM starts with the lend"
if started "$D" "granted by $SH_USER"; then
    check "QEMU is a client of $SH_USER's PulseAudio" wait_until "$E2E_TIMEOUT" has_pulse_clients

    say "each owner's status shows their own lends, and only theirs"
    statuses "$SH_USER"
    check "$SH_USER's status exits 0 (text $ST_RC, json $SJ_RC)" test "$ST_RC$SJ_RC" = 00
    check "$SH_USER's status shows their pulseaudio lend to $D" \
        grep -q -x "$D ($UD) pulseaudio: proxy, owner $SH_USER" <<<"$ST"
    check "$SH_USER's status shows nothing of $SH_OTHER's" not grep -q -e jack -e "$SH_OTHER" <<<"$ST"
    lends=$(json_lends "$SJ") || lends="bad JSON: $SJ"
    show "$lends"
    check "$SH_USER's status --json: their pulseaudio lend to $D and nothing else" \
        test "$lends" = "$D $UD pulseaudio proxy $SH_USER"
    statuses "$SH_OTHER"
    check "$SH_OTHER's status (outside libvirt) exits 0 (text $ST_RC, json $SJ_RC)" \
        test "$ST_RC$SJ_RC" = 00
    check "$SH_OTHER's status shows their own jack lend to $D" \
        grep -q -E "^$D \\($UD\\) jack: [a-z]+, owner $SH_OTHER\$" <<<"$ST"
    # (The domain's name holds "$SH_USER": their name is looked for as the owner.)
    check "$SH_OTHER's status shows nothing of $SH_USER's" \
        not grep -q -e pulseaudio -e "owner $SH_USER" -e "/run/user/$(id -u "$SH_USER")/" <<<"$ST"
    lends=$(json_lends "$SJ") || lends="bad JSON: $SJ"
    check "$SH_OTHER's status --json: their jack lend and nothing else" \
        grep -q -x -E "$D $UD jack [a-z]+ $SH_OTHER" <<<"$lends"
    check "$SH_OTHER's status --json: one lend" test "$(grep -c . <<<"$lends")" -eq 1
    root_st=$("$BIN" status 2>&1) || true
    show "$root_st"
    check "root's status shows $SH_USER's pulseaudio" \
        grep -q -x "$D ($UD) pulseaudio: proxy, owner $SH_USER" <<<"$root_st"
    check "root's status shows $SH_OTHER's jack" \
        grep -q -E "^$D \\($UD\\) jack: [a-z]+, owner $SH_OTHER\$" <<<"$root_st"

    say "an administrator's rule says no to $SH_OTHER's status: one line"
    on_exit local_rule_down
    cat >"$LOCAL_RULE" <<RULE
polkit.addRule(function(action, subject) {
    if (action.id == "org.sockhook.status" && subject.user == "$SH_OTHER") return polkit.Result.NO;
});
RULE
    if wait_until 10 status_refused; then
        rc=0
        out=$(as "$SH_OTHER" "$BIN" status) || rc=$?
        check "$SH_OTHER's status is refused (exit $rc)" test "$rc" -eq 1
        one_line "$SH_OTHER's refused status" "$out"
        check "it says polkit did not authorise org.sockhook.status" \
            grep -q "^sockhook: error: status: polkit did not authorise org.sockhook.status" <<<"$out"
        out=$(as "$SH_USER" "$BIN" status) || true
        check "$SH_USER's status is not refused by it" grep -q "owner $SH_USER\$" <<<"$out"
    else
        not_ok "polkitd refuses $SH_OTHER's status after the rule $LOCAL_RULE: $(as "$SH_OTHER" "$BIN" status | tr '\n' ' ')"
    fi
    rm -f "$LOCAL_RULE"
    check "without the rule, $SH_OTHER's status is allowed again" wait_until 10 status_allowed
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
    statuses "$SH_USER"
    check "$SH_USER's status says they lend nothing now" \
        grep -q -x "no active lends of $SH_USER's" <<<"$ST"
    stop "$D"
fi
finish
