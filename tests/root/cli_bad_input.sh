#!/bin/bash
# R7: every malformed metadata case yields exit 1 and exactly one line on stderr that names the
# domain (and the socket, where one applies), through both `sockhook plan` and the hook, and
# changes nothing on the host.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
uuid=5d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6
created_user=
etc=/etc/sockhook
etc_backup=

cleanup() {
  rm -rf "$etc"
  [[ -n $etc_backup ]] && mv "$etc_backup" "$etc"
  [[ -n $created_user ]] && userdel -r "$created_user" 2>/dev/null
}
on_exit cleanup

# A regular user to own the sockets.
owner=shbad
if ! id "$owner" >/dev/null 2>&1; then
  useradd -m -K UID_MIN=1000 "$owner" || die "cannot create user $owner"
  created_user=$owner
fi

# The hook reads the installed configuration: give it ours, and put the old one back at exit.
if [[ -e $etc ]]; then
  etc_backup=$TMP/etc-sockhook.orig
  cp -a "$etc" "$etc_backup"
fi
rm -rf "$etc"
install -d -m 755 "$etc" "$etc/plugins"
install -m 644 "$REPO"/plugins/*.xml "$etc/plugins/"
policy=$TMP/policy.conf
printf '[%s]\n%s = *\nroot = *\ndaemon = *\nnobody = *\n' "$uuid" "$owner" >"$policy"
install -m 644 "$policy" "$etc/policy.conf"
install -d -m 755 "$TMP/plugins"
install -m 644 "$REPO"/plugins/*.xml "$TMP/plugins/"

# A domain named $1 (raw text), with <uuid> $2 ("" for none) and metadata $3.
domain() {
  local uuid_el=""
  [[ -n $2 ]] && uuid_el="<uuid>$2</uuid>"
  cat <<XML
<domain type='kvm'>
  <name>$1</name>
  $uuid_el
  <metadata>
    $3
  </metadata>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64'>hvm</type></os>
</domain>
XML
}
ns="xmlns:sockhook='urn:sockhook:domain:1'"
sockets() { echo "<sockhook:sockets $ns>$1</sockhook:sockets>"; }

# expect_error LABEL NAME EXPECT CMD...: runs CMD with stdin from $xml_file; EXPECT is text that the
# one error line must contain after "sockhook: error: NAME: ".
expect_error() {
  local label=$1 name=$2 expect=$3
  shift 3
  local before after rc err out
  before=$(host_snapshot)
  "$@" <"$xml_file" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  after=$(host_snapshot)
  err=$(cat "$TMP/err")
  out=$(cat "$TMP/out")
  local lines
  lines=$(wc -l <"$TMP/err")
  if [[ $rc -ne 1 ]]; then
    not_ok "$label: exit $rc, want 1 (stderr: $err)"
  elif [[ $lines -ne 1 ]]; then
    not_ok "$label: $lines lines on stderr, want 1:"$'\n'"$err"
  elif [[ $err != "sockhook: error: $name: "* ]]; then
    not_ok "$label: stderr does not start with 'sockhook: error: $name: ': $err"
  elif [[ $err != *"$expect"* ]]; then
    not_ok "$label: stderr lacks '$expect': $err"
  else
    ok "$label: $err"
  fi
  if [[ $before != "$after" ]]; then
    not_ok "$label: the host changed:"$'\n'"$(diff <(echo "$before") <(echo "$after"))"
  fi
  if [[ $label == hook* && -n $out ]]; then
    not_ok "$label: the hook wrote to stdout: $out"
  fi
}

# run_case LABEL NAME EXPECT XML [hook]: the case through plan, and through the hook unless
# the 5th argument is "plan-only".
run_case() {
  local label=$1 name=$2 expect=$3 xml=$4 mode=${5:-both}
  xml_file=$TMP/case.xml
  printf '%s\n' "$xml" >"$xml_file"
  expect_error "plan $label" "$name" "$expect" \
    "$SOCKHOOK" plan "$xml_file" --plugin-dir "$TMP/plugins" --policy "$policy"
  if [[ $mode != plan-only ]]; then
    expect_error "hook $label" "$name" "$expect" "$SOCKHOOK" hook "$name" prepare begin -
  fi
}

S() { sockets "$1"; }
run_case "unknown plugin" bad1 "nope: no plugin named 'nope' is installed" \
  "$(domain bad1 $uuid "$(S "<sockhook:socket plugin='nope' owner='$owner'/>")")"
run_case "root owner" bad2 "pipewire: owner 'root' is root" \
  "$(domain bad2 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='root'/>")")"
run_case "system owner" bad3 "pipewire: owner 'daemon' (uid 1) is a system user" \
  "$(domain bad3 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='daemon'/>")")"
# Above the login range (UID_MAX of login.defs): nobody is no regular user either.
run_case "owner above the login range" bad3b "pipewire: owner 'nobody' (uid $(id -u nobody)) is a system user" \
  "$(domain bad3b $uuid "$(S "<sockhook:socket plugin='pipewire' owner='nobody'/>")")"
run_case "unknown user" bad4 "pipewire: owner 'no-such-user-sh' is not a user on this host" \
  "$(domain bad4 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='no-such-user-sh'/>")")"
run_case "bad method" bad5 "pipewire: method='socat' is not one of" \
  "$(domain bad5 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' method='socat'/>")")"
run_case "bad required" bad6 "pipewire: required='maybe' must be 'yes' or 'no'" \
  "$(domain bad6 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' required='maybe'/>")")"
run_case "bad wait" bad7 "pipewire: wait='5s' must be a whole number" \
  "$(domain bad7 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' wait='5s'/>")")"
run_case "negative wait" bad7b "pipewire: wait='-1' must be a whole number" \
  "$(domain bad7b $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' wait='-1'/>")")"
run_case "duplicate names" bad8 "a: name 'a' is used by another socket" \
  "$(domain bad8 $uuid "$(S "<sockhook:socket name='a' plugin='pipewire' owner='$owner'/><sockhook:socket name='a' plugin='wayland' owner='$owner'/>")")"
run_case "other namespace version" bad9 "uses namespace 'urn:sockhook:domain:2'" \
  "$(domain bad9 $uuid "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:2'><sockhook:socket plugin='pipewire' owner='$owner'/></sockhook:sockets>")"
# The hook's fast path looks for our URN before parsing, so a foreign URI under our usual
# prefix is metadata of someone else for it: only plan reports it.
run_case "our prefix on a foreign URI" bad10 "uses namespace 'urn:example:x'" \
  "$(domain bad10 $uuid "<sockhook:sockets xmlns:sockhook='urn:example:x'><sockhook:socket plugin='pipewire' owner='$owner'/></sockhook:sockets>")" \
  plan-only
run_case "domain named .." .. "the domain name '..' is not allowed" \
  "$(domain .. $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")")"
run_case "missing UUID" bad12 "the domain has no <uuid>" \
  "$(domain bad12 "" "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")")"
run_case "malformed UUID" bad13 "the domain UUID '../../etc' is malformed" \
  "$(domain bad13 "../../etc" "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")")"
run_case "plugin path" bad14 "plugin='../pipewire' is not a plugin name" \
  "$(domain bad14 $uuid "$(S "<sockhook:socket plugin='../pipewire' owner='$owner'/>")")"
run_case "owner path" bad15 "pipewire: owner='../x' is not a user name or uid" \
  "$(domain bad15 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='../x'/>")")"
run_case "two sockets elements" bad16 "more than one <sockets> element" \
  "$(domain bad16 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")$(S "<sockhook:socket plugin='wayland' owner='$owner'/>")")"
# Every field one past its bound (issue 9): one short line, nothing changes.
p65=$(head -c 65 /dev/zero | tr '\0' p)
run_case "socket name of 65 bytes" bad19 "name='${p65:0:64}... (65 bytes)' is longer than 64 bytes" \
  "$(domain bad19 $uuid "$(S "<sockhook:socket name='$p65' plugin='pipewire' owner='$owner'/>")")"
run_case "plugin name of 65 bytes" bad20 "plugin='${p65:0:64}... (65 bytes)' is longer than 64 bytes" \
  "$(domain bad20 $uuid "$(S "<sockhook:socket plugin='$p65' owner='$owner'/>")")"
run_case "owner of 33 bytes" bad21 "owner='${p65:0:33}' is longer than 32 bytes" \
  "$(domain bad21 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='${p65:0:33}'/>")")"
# plan names the domain by (the start of) its name, the hook by its argv.
n252=$(head -c 252 /dev/zero | tr '\0' n)
xml_file=$TMP/case.xml
domain "$n252" $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")" >"$xml_file"
expect_error "plan domain name of 252 bytes" "${n252:0:64}... (252 bytes)" "the domain name is longer than 251 bytes (252)" \
  "$SOCKHOOK" plan "$xml_file" --plugin-dir "$TMP/plugins" --policy "$policy"
expect_error "hook domain name of 252 bytes" bad22 "the domain name is longer than 251 bytes (252)" \
  "$SOCKHOOK" hook bad22 prepare begin -
run_case "qemu:env of 4097 bytes" bad23 "<qemu:env name='PULSE_SERVER'> is longer than 4096 bytes" \
  "$(domain bad23 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")" | sed "s|<memory|<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:env name='PULSE_SERVER' value='$(head -c 4085 /dev/zero | tr '\0' v)'/></qemu:commandline><memory|")"

# Not XML: plan cannot know the domain's name and names the file; the hook names the domain.
xml_file=$TMP/case.xml
echo "<domain><name>bad17</name><metadata><s:sockets xmlns:s='urn:sockhook:domain:1'>" >"$xml_file"
expect_error "plan not XML" "$xml_file" "cannot parse domain XML" \
  "$SOCKHOOK" plan "$xml_file" --plugin-dir "$TMP/plugins" --policy "$policy"
expect_error "hook not XML" bad17 "cannot parse domain XML" "$SOCKHOOK" hook bad17 prepare begin -

# A plugin file that others may write is refused, in a --plugin-dir and in /etc/sockhook.
xml_file=$TMP/case.xml
domain bad18 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")" >"$xml_file"
install -d -m 755 "$TMP/evil"
install -m 646 "$REPO/plugins/pipewire.xml" "$TMP/evil/pipewire.xml"
expect_error "plan writable plugin" bad18 "pipewire: plugin file $TMP/evil/pipewire.xml is refused: it is writable by others" \
  "$SOCKHOOK" plan "$xml_file" --plugin-dir "$TMP/evil" --plugin-dir "$TMP/plugins" --policy "$policy"
chmod 646 "$etc/plugins/pipewire.xml"
expect_error "hook writable plugin" bad18 "pipewire: plugin file $etc/plugins/pipewire.xml is refused: it is writable by others" \
  "$SOCKHOOK" hook bad18 prepare begin -
chmod 644 "$etc/plugins/pipewire.xml"

# The dry run needs no root, and changes nothing.
good=$TMP/good.xml
domain good $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' method='proxy'/>")" >"$good"
chmod 644 "$good" "$policy"
before=$(host_snapshot)
if setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$SOCKHOOK" plan "$good" --plugin-dir "$TMP/plugins" --policy "$policy" >"$TMP/out" 2>"$TMP/err"; then
  if grep -q "start a proxy as uid $(id -u $owner)" "$TMP/out"; then
    ok "unprivileged plan"
  else
    not_ok "unprivileged plan: the plan lacks the proxy step:"$'\n'"$(cat "$TMP/out")"
  fi
else
  not_ok "unprivileged plan failed: $(cat "$TMP/err")"
fi
[[ $before == "$(host_snapshot)" ]] || not_ok "unprivileged plan changed the host"

# Bad usage exits 2.
"$SOCKHOOK" plan --no-such-option >/dev/null 2>&1
rc=$?
[[ $rc -eq 2 ]] && ok "bad usage exits 2" || not_ok "bad usage: exit $rc, want 2"

finish
