#!/bin/bash
# R7: every malformed metadata case yields exit 1 and exactly one line on stderr that names the
# domain (and the socket, where one applies), through both `sockhook plan` and the hook, and
# changes nothing on the host.
#
#   bash tests/root/cli_bad_input.sh /abs/path/to/sockhook
set -u
bin=${1:?usage: cli_bad_input.sh /path/to/sockhook}
if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: needs root (creates a user and writes /etc/sockhook)"
  exit 77
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
uuid=5d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6
tmp=$(mktemp -d /tmp/sockhook-bad-input-XXXXXX)
chmod 755 "$tmp"  # the unprivileged plan below reads from here
fails=0
created_user=
etc=/etc/sockhook
etc_backup=

cleanup() {
  rm -rf "$etc"
  [[ -n $etc_backup ]] && mv "$etc_backup" "$etc"
  [[ -n $created_user ]] && userdel -r "$created_user" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}

# A regular user to own the sockets.
owner=shbad
if ! id "$owner" >/dev/null 2>&1; then
  useradd -m -K UID_MIN=1000 "$owner" || { echo "cannot create user $owner"; exit 1; }
  created_user=$owner
fi

# The hook reads the installed configuration: give it ours, and put the old one back at exit.
if [[ -e $etc ]]; then
  etc_backup=$tmp/etc-sockhook.orig
  cp -a "$etc" "$etc_backup"
fi
rm -rf "$etc"
install -d -m 755 "$etc" "$etc/plugins"
install -m 644 "$repo"/plugins/*.xml "$etc/plugins/"
policy=$tmp/policy.conf
printf '[%s]\n%s = *\nroot = *\ndaemon = *\n' "$uuid" "$owner" >"$policy"
install -m 644 "$policy" "$etc/policy.conf"
install -d -m 755 "$tmp/plugins"
install -m 644 "$repo"/plugins/*.xml "$tmp/plugins/"

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

snapshot() {
  find /run/sockhook "$etc" -printf '%p %m %u %s\n' 2>/dev/null | sort
  echo "mounts $(wc -l </proc/self/mountinfo)"
}

# check LABEL NAME EXPECT CMD...: runs CMD with stdin from $xml_file; EXPECT is text that the
# one error line must contain after "sockhook: error: NAME: ".
check() {
  local label=$1 name=$2 expect=$3
  shift 3
  local before after rc err out
  before=$(snapshot)
  "$@" <"$xml_file" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  after=$(snapshot)
  err=$(cat "$tmp/err")
  out=$(cat "$tmp/out")
  local lines
  lines=$(wc -l <"$tmp/err")
  if [[ $rc -ne 1 ]]; then
    fail "$label: exit $rc, want 1 (stderr: $err)"
  elif [[ $lines -ne 1 ]]; then
    fail "$label: $lines lines on stderr, want 1:"$'\n'"$err"
  elif [[ $err != "sockhook: error: $name: "* ]]; then
    fail "$label: stderr does not start with 'sockhook: error: $name: ': $err"
  elif [[ $err != *"$expect"* ]]; then
    fail "$label: stderr lacks '$expect': $err"
  else
    echo "ok: $label: $err"
  fi
  if [[ $before != "$after" ]]; then
    fail "$label: the host changed:"$'\n'"$(diff <(echo "$before") <(echo "$after"))"
  fi
  if [[ $label == hook* && -n $out ]]; then
    fail "$label: the hook wrote to stdout: $out"
  fi
}

# run_case LABEL NAME EXPECT XML [hook]: the case through plan, and through the hook unless
# the 5th argument is "plan-only".
run_case() {
  local label=$1 name=$2 expect=$3 xml=$4 mode=${5:-both}
  xml_file=$tmp/case.xml
  printf '%s\n' "$xml" >"$xml_file"
  check "plan $label" "$name" "$expect" \
    "$bin" plan "$xml_file" --plugin-dir "$tmp/plugins" --policy "$policy"
  if [[ $mode != plan-only ]]; then
    check "hook $label" "$name" "$expect" "$bin" hook "$name" prepare begin -
  fi
}

S() { sockets "$1"; }
run_case "unknown plugin" bad1 "nope: no plugin named 'nope' is installed" \
  "$(domain bad1 $uuid "$(S "<sockhook:socket plugin='nope' owner='$owner'/>")")"
run_case "root owner" bad2 "pipewire: owner 'root' is root" \
  "$(domain bad2 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='root'/>")")"
run_case "system owner" bad3 "pipewire: owner 'daemon' (uid 1) is a system user" \
  "$(domain bad3 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='daemon'/>")")"
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
# Not XML: plan cannot know the domain's name and names the file; the hook names the domain.
xml_file=$tmp/case.xml
echo "<domain><name>bad17</name><metadata><s:sockets xmlns:s='urn:sockhook:domain:1'>" >"$xml_file"
check "plan not XML" "$xml_file" "cannot parse domain XML" \
  "$bin" plan "$xml_file" --plugin-dir "$tmp/plugins" --policy "$policy"
check "hook not XML" bad17 "cannot parse domain XML" "$bin" hook bad17 prepare begin -

# A plugin file that others may write is refused, in a --plugin-dir and in /etc/sockhook.
xml_file=$tmp/case.xml
domain bad18 $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner'/>")" >"$xml_file"
install -d -m 755 "$tmp/evil"
install -m 646 "$repo/plugins/pipewire.xml" "$tmp/evil/pipewire.xml"
check "plan writable plugin" bad18 "pipewire: plugin file $tmp/evil/pipewire.xml is refused: it is writable by others" \
  "$bin" plan "$xml_file" --plugin-dir "$tmp/evil" --plugin-dir "$tmp/plugins" --policy "$policy"
chmod 646 "$etc/plugins/pipewire.xml"
check "hook writable plugin" bad18 "pipewire: plugin file $etc/plugins/pipewire.xml is refused: it is writable by others" \
  "$bin" hook bad18 prepare begin -
chmod 644 "$etc/plugins/pipewire.xml"

# The dry run needs no root, and changes nothing.
good=$tmp/good.xml
domain good $uuid "$(S "<sockhook:socket plugin='pipewire' owner='$owner' method='proxy'/>")" >"$good"
chmod 644 "$good" "$policy"
before=$(snapshot)
if setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$bin" plan "$good" --plugin-dir "$tmp/plugins" --policy "$policy" >"$tmp/out" 2>"$tmp/err"; then
  if grep -q "start a proxy as uid $(id -u $owner)" "$tmp/out"; then
    echo "ok: unprivileged plan"
  else
    fail "unprivileged plan: the plan lacks the proxy step:"$'\n'"$(cat "$tmp/out")"
  fi
else
  fail "unprivileged plan failed: $(cat "$tmp/err")"
fi
[[ $before == "$(snapshot)" ]] || fail "unprivileged plan changed the host"

# Bad usage exits 2.
"$bin" plan --no-such-option >/dev/null 2>&1
rc=$?
[[ $rc -eq 2 ]] && echo "ok: bad usage exits 2" || fail "bad usage: exit $rc, want 2"

if [[ $fails -ne 0 ]]; then
  echo "$fails failure(s)"
  exit 1
fi
echo "all bad-input cases passed"
