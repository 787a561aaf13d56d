#!/usr/bin/env bash
# libvirt's side of the hook contract (SPEC §5), attacked from outside:
# - the hook's process never loads libvirt (a call back would deadlock under the domain lock);
# - nothing is ever written to stdout, for any operation (libvirt reads migrate/restore
#   stdout as replacement XML);
# - a domain without our metadata, and every operation we do not handle, exit 0 and change
#   nothing; so does session mode (a non-root caller);
# - migrate begin (on the target) plans only, and refuses in one line what the target's
#   policy would not lend;
# - dry-run mode logs the plan and changes nothing;
# - a lend's hook exits with stdout and stderr closed even though it leaves a proxy running
#   (libvirt waits for EOF on both; an inherited pipe would hang virsh start).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"

# libvirt runs the hook as .../hooks/qemu.d/NAME: that argv[0] selects hook mode.
install -d "$TMP/hooks/qemu.d"
ln -s "$SOCKHOOK" "$TMP/hooks/qemu.d/sockhook"
hook=$TMP/hooks/qemu.d/sockhook

uuid=2b7e151c-28ae-4d2a-abf7-15882f3c4c01
lend_allow "$uuid"
lend_echo_server "$lend_user" "$runtime/wayland-0" 0600
plain="<domain type='kvm'><name>plain</name><uuid>0f9e8d7c-6b5a-4948-8372-615049382716</uuid></domain>"
lent=$(lend_domain contract "$uuid" wayland:bind)
proxied=$(lend_domain contract "$uuid" wayland:proxy)

# --- The hook never maps libvirt: not linked, and not opened at run time.
if ldd "$SOCKHOOK" | grep -q libvirt; then not_ok "sockhook is linked against libvirt"; else ok "not linked against libvirt"; fi
printf '%s' "$lent" | strace -f -qq -e trace=openat,open,openat2 -o "$TMP/strace" \
  "$SOCKHOOK" hook --config-dir "$etc" contract prepare begin - 2>/dev/null
if grep -qE 'libvirt[^/]*\.so' "$TMP/strace"; then
  not_ok "the hook opened libvirt: $(grep -E 'libvirt[^/]*\.so' "$TMP/strace" | head -1)"
elif ! grep -q "$runtime" "$TMP/strace"; then
  not_ok "strace saw no lend (the prepare did not run?)"
else
  ok "a prepare that lends opens no libvirt file"
fi
printf '%s' "$lent" | "$SOCKHOOK" hook --config-dir "$etc" contract release end - 2>/dev/null

# --- No stdout, ever; exit codes per operation.
host_snapshot >"$TMP/before"
check_op() {  # XML EXPECTED-EXIT ARGS...
  local xml=$1 want=$2
  shift 2
  local out rc
  out=$(printf '%s' "$xml" | "$hook" "$@" 2>"$TMP/err")
  rc=$?
  [[ -z $out ]] || not_ok "'$*' wrote to stdout: $out"
  [[ $rc == "$want" ]] || not_ok "'$*' exited $rc, not $want: $(cat "$TMP/err")"
}
for op in "migrate begin -" "restore begin -" "started begin -" "stopped end -" \
  "prepare begin -" "start begin -" "release end -" "reconnect begin -" "attach begin -" \
  "frobnicate now -"; do
  # shellcheck disable=SC2086
  check_op "$plain" 0 plain $op
done
# migrate and restore with our metadata: still nothing on stdout, still nothing done. migrate
# begin runs on the target: the lends this host's policy allows are only planned (prepare makes
# them for the incoming QEMU); one this host would refuse stops the migration in one line.
# (The suite's own configuration: $hook would read the host's /etc/sockhook.)
config_op() {  # XML EXPECTED-EXIT ARGS...
  local xml=$1 want=$2 out rc
  shift 2
  out=$(printf '%s' "$xml" | "$SOCKHOOK" hook --config-dir "$etc" "$@" 2>"$TMP/err")
  rc=$?
  [[ -z $out ]] || not_ok "'$*' wrote to stdout: $out"
  [[ $rc == "$want" ]] || not_ok "'$*' exited $rc, not $want: $(cat "$TMP/err")"
}
config_op "$lent" 0 contract migrate begin -
config_op "$lent" 0 contract restore begin -
foreign=$(lend_domain contract 7c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5 wayland:bind)
config_op "$foreign" 1 contract migrate begin -
if [[ $(wc -l <"$TMP/err") == 1 ]] && grep -q "^sockhook: error: contract: .*policy" "$TMP/err"; then
  ok "migrate to a host whose policy does not allow the lend: one line ($(cat "$TMP/err"))"
else
  not_ok "migrate refusal: want one line naming the policy, got: $(cat "$TMP/err")"
fi
same_host "$TMP/before" "no-metadata domain, unhandled operations and migrate"
ok "no operation wrote to stdout"

# --- Session mode: the same hook as an ordinary user does nothing, even with metadata.
out=$(printf '%s' "$lent" | lend_as "$lend_user2" "$hook" contract prepare begin - 2>&1)
rc=$?
[[ $rc == 0 && -z $out ]] || not_ok "session mode: exit $rc, output '$out'"
same_host "$TMP/before" "session mode"

# --- Dry run: the plan is logged, nothing changes.
printf '%s' "$lent" | SOCKHOOK_DRY_RUN=1 "$SOCKHOOK" hook --config-dir "$etc" contract prepare begin - \
  >"$TMP/out" 2>"$TMP/err"
rc=$?
[[ $rc == 0 && ! -s $TMP/out ]] || not_ok "dry run: exit $rc, stdout '$(cat "$TMP/out")', stderr '$(cat "$TMP/err")'"
same_host "$TMP/before" "dry run"

# --- A proxy lend: the hook's stdout and stderr reach EOF when it exits, as libvirt needs,
# although the proxy it started keeps running.
start=$(date +%s%N)
printf '%s' "$proxied" | timeout 10 "$SOCKHOOK" hook --config-dir "$etc" contract prepare begin - 2>&1 | cat >"$TMP/out"
rc=${PIPESTATUS[1]}
elapsed=$((($(date +%s%N) - start) / 1000000))
if [[ $rc != 0 ]]; then
  not_ok "proxy prepare failed ($rc): $(cat "$TMP/out")"
elif ((elapsed > 5000)); then
  not_ok "the hook's output pipe stayed open for ${elapsed} ms after it exited (inherited by the proxy?)"
else
  ok "stdout/stderr closed when the hook exited (${elapsed} ms) with a proxy running"
fi
pgrep -u "$lend_uid" -f 'sockhook proxy' >/dev/null || not_ok "no proxy runs after the proxy prepare"
lend_ping qemu "/run/sockhook/libvirt-$uuid/wayland-0" || not_ok "the proxy does not serve QEMU's user"
printf '%s' "$proxied" | "$hook" contract release end - >/dev/null 2>&1
same_host "$TMP/before" "proxy lend and release"

finish
