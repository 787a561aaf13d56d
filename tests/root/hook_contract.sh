#!/usr/bin/env bash
# libvirt's side of the hook contract (SPEC §5), attacked from outside:
# - the hook's process never loads libvirt (a call back would deadlock under the domain lock);
# - nothing is ever written to stdout, for any operation (libvirt reads migrate/restore
#   stdout as replacement XML);
# - a domain without our metadata, and every operation we do not handle, exit 0 and change
#   nothing; so does session mode (a non-root caller);
# - dry-run mode logs the plan and changes nothing;
# - a lend's hook exits with stdout and stderr closed even though it leaves a proxy running
#   (libvirt waits for EOF on both; an inherited pipe would hang virsh start).
set -uo pipefail
source "$(dirname "$0")/lib/lend_common.sh"
lend_init "$1"
lend_warm

# libvirt runs the hook as .../hooks/qemu.d/NAME: that argv[0] selects hook mode.
install -d "$tmp/hooks/qemu.d"
ln -s "$bin" "$tmp/hooks/qemu.d/sockhook"
hook=$tmp/hooks/qemu.d/sockhook

uuid=2b7e151c-28ae-4d2a-abf7-15882f3c4c01
lend_allow "$uuid"
lend_echo_server "$lend_user" "$runtime/wayland-0" 0600
plain="<domain type='kvm'><name>plain</name><uuid>0f9e8d7c-6b5a-4948-8372-615049382716</uuid></domain>"
lent=$(lend_domain contract "$uuid" wayland:bind)
proxied=$(lend_domain contract "$uuid" wayland:proxy)

# --- The hook never maps libvirt: not linked, and not opened at run time.
if ldd "$bin" | grep -q libvirt; then fail "sockhook is linked against libvirt"; else ok "not linked against libvirt"; fi
printf '%s' "$lent" | strace -f -qq -e trace=openat,open -o "$tmp/strace" \
  "$bin" hook --config-dir "$etc" contract prepare begin - 2>/dev/null
if grep -qE 'libvirt[^/]*\.so' "$tmp/strace"; then
  fail "the hook opened libvirt: $(grep -E 'libvirt[^/]*\.so' "$tmp/strace" | head -1)"
elif ! grep -q "$runtime" "$tmp/strace"; then
  fail "strace saw no lend (the prepare did not run?)"
else
  ok "a prepare that lends opens no libvirt file"
fi
printf '%s' "$lent" | "$bin" hook --config-dir "$etc" contract release end - 2>/dev/null

# --- No stdout, ever; exit codes per operation.
lend_snapshot "$tmp/before"
check_op() {  # XML EXPECTED-EXIT ARGS...
  local xml=$1 want=$2
  shift 2
  local out rc
  out=$(printf '%s' "$xml" | "$hook" "$@" 2>"$tmp/err")
  rc=$?
  [[ -z $out ]] || fail "'$*' wrote to stdout: $out"
  [[ $rc == "$want" ]] || fail "'$*' exited $rc, not $want: $(cat "$tmp/err")"
}
for op in "migrate begin -" "restore begin -" "started begin -" "stopped end -" \
  "prepare begin -" "start begin -" "release end -" "reconnect begin -" "attach begin -" \
  "frobnicate now -"; do
  # shellcheck disable=SC2086
  check_op "$plain" 0 plain $op
done
# migrate and restore with our metadata: still nothing on stdout, still nothing done.
check_op "$lent" 0 contract migrate begin -
check_op "$lent" 0 contract restore begin -
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "no-metadata domain and unhandled operations"
ok "no operation wrote to stdout"

# --- Session mode: the same hook as an ordinary user does nothing, even with metadata.
out=$(printf '%s' "$lent" | lend_as "$lend_user2" "$hook" contract prepare begin - 2>&1)
rc=$?
[[ $rc == 0 && -z $out ]] || fail "session mode: exit $rc, output '$out'"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "session mode"

# --- Dry run: the plan is logged, nothing changes.
printf '%s' "$lent" | SOCKHOOK_DRY_RUN=1 "$bin" hook --config-dir "$etc" contract prepare begin - \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc == 0 && ! -s $tmp/out ]] || fail "dry run: exit $rc, stdout '$(cat "$tmp/out")', stderr '$(cat "$tmp/err")'"
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "dry run"

# --- A proxy lend: the hook's stdout and stderr reach EOF when it exits, as libvirt needs,
# although the proxy it started keeps running.
start=$(date +%s%N)
printf '%s' "$proxied" | timeout 10 "$bin" hook --config-dir "$etc" contract prepare begin - 2>&1 | cat >"$tmp/out"
rc=${PIPESTATUS[1]}
elapsed=$((($(date +%s%N) - start) / 1000000))
if [[ $rc != 0 ]]; then
  fail "proxy prepare failed ($rc): $(cat "$tmp/out")"
elif ((elapsed > 5000)); then
  fail "the hook's output pipe stayed open for ${elapsed} ms after it exited (inherited by the proxy?)"
else
  ok "stdout/stderr closed when the hook exited (${elapsed} ms) with a proxy running"
fi
pgrep -u "$lend_uid" -f 'sockhook proxy' >/dev/null || fail "no proxy runs after the proxy prepare"
lend_ping qemu "/run/sockhook/libvirt-$uuid/wayland-0" || fail "the proxy does not serve QEMU's user"
printf '%s' "$proxied" | "$hook" contract release end - >/dev/null 2>&1
lend_snapshot "$tmp/after"
lend_same "$tmp/before" "$tmp/after" "proxy lend and release"

lend_finish
