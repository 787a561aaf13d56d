#!/usr/bin/env bash
# Each VM's AppArmor profile lets its QEMU use its own lend directory and nothing of another
# VM's (SPEC §12), on the host's own libvirt and AppArmor release (Debian 12 and 13 alike).
#
# This kernel enforces no AppArmor, so nothing here is enforced by a kernel. Instead the test
# builds the profiles that libvirt would build for two VMs A and B: the real
# `virt-aa-helper --dryrun --create` output for each domain XML and the installed
# TEMPLATE.qemu, in a scratch copy of /etc/apparmor.d into which
# dist/apparmor/sockhook-apparmor has installed sockhook's rules exactly as it does on a
# host. It compiles each profile with this release's `apparmor_parser -Q -T -D rule-exprs`
# and decides from the expanded rules whether the profile allows a path (deny rules win).
# It asserts that A may reach its lent sockets (read and write: connect needs write) and its
# companion files, all as `sockhook plan --json` gives them for A's XML; that A may reach
# none of B's, and nothing under /run/user; and the same for B. It also checks that the
# installer is idempotent and that remove leaves the scratch tree byte-identical.
# Root only for a private mount namespace (the owner of the lent sockets exists only in its
# /etc/passwd); nothing outside a temporary directory changes, so it needs no host lock. SOCKHOOK_AA_RULES=FILE tests other rules (to see the test fail).
#
#   bash tests/root/apparmor_rules.sh /abs/path/to/sockhook
set -uo pipefail

bin=${1:?usage: $0 /abs/path/to/sockhook}
if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: needs root (a private mount namespace gives the plan its test user)"
  exit 77
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
installer=$repo/dist/apparmor/sockhook-apparmor
rules=${SOCKHOOK_AA_RULES:-$repo/dist/apparmor/sockhook}
helper=/usr/lib/libvirt/virt-aa-helper
parser=$(command -v apparmor_parser || echo /sbin/apparmor_parser)
py=/usr/bin/python3
owner=shaa
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

for tool in "$helper" "$parser" /etc/apparmor.d/libvirt/TEMPLATE.qemu; do
  if [[ ! -e $tool ]]; then
    echo "FAIL: $tool is missing (tests/deps.sh installs apparmor and libvirt-daemon-system)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d /tmp/sockhook-aa-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
# The owner exists only for `sockhook plan`, in a private mount namespace whose /etc/passwd
# has one more line: no user is created on the host.
cp /etc/passwd "$tmp/passwd"
getent passwd "$owner" >/dev/null ||
  echo "$owner:x:$(awk -F: '$3 >= 1000 && $3 < 60000 { if ($3 > m) m = $3 } END { print (m ? m : 1000) + 1 }' /etc/passwd):100::/nonexistent:/usr/sbin/nologin" >>"$tmp/passwd"
plan() {
  unshare -m --propagation private sh -c 'mount --bind "$1" /etc/passwd && shift && exec "$@"' \
    sh "$tmp/passwd" "$bin" plan "$@"
}
if ! unshare -m --propagation private true; then
  echo "FAIL: cannot make a private mount namespace (in a chroot, bind-mount its root onto itself first)" >&2
  exit 1
fi
echo "AppArmor parser: $("$parser" --version 2>&1 | head -n1); libvirt: $(dpkg-query -W -f='${Version}' libvirt-daemon-system 2>/dev/null)"

# ---- The rules, installed the way the installer installs them, into a scratch tree. ----
root=$tmp/root
mkdir -p "$root/etc"
cp -a /etc/apparmor.d "$root/etc/apparmor.d"
aa=$root/etc/apparmor.d
# The release's files, without this host's site additions (sockhook's rules installed here,
# or an administrator's): the local override file is empty as Debian creates it, and the
# drop-in directory, which libvirt does not ship, is gone.
[[ -f $aa/local/abstractions/libvirt-qemu ]] && : >"$aa/local/abstractions/libvirt-qemu"
rm -rf "$aa/abstractions/libvirt-qemu.d"
# Nor the hook's block in the daemons' local files (install.sh or the package put it there).
"$installer" remove --root "$root" --rules "$rules" --no-reload >/dev/null
snapshot() { (cd "$aa" && find . -printf '%p %y %m %s\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(snapshot)
out=$("$installer" install --root "$root" --rules "$rules") || fail "install: $out"
echo "$out"
once=$(snapshot)
"$installer" install --root "$root" --rules "$rules" >/dev/null || fail "second install failed"
[[ $(snapshot) == "$once" ]] && ok "a second install changes nothing" || fail "a second install changed the tree"
"$installer" check --root "$root" --rules "$rules" || fail "check does not accept what install did"

# ---- Two VMs, A and B, from the shipped example with every kind of lend. ----
uuid_a=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
uuid_b=f0e1d2c3-b4a5-4968-8776-a5b4c3d2e1f0
printf '[%s]\n%s = *\n[%s]\n%s = *\n' "$uuid_a" "$owner" "$uuid_b" "$owner" >"$tmp/policy.conf"
for vm in a b; do
  uuid_var=uuid_$vm
  # The example as annotate writes it, SDL display included: virt-aa-helper refuses an SDL
  # display without an xauth ("invalid VM definition"), so this also shows that annotate's
  # display starts on an AppArmor host.
  sed -e "s/8f9e0d1c-2b3a-4c5d-9e6f-7a8b9c0d1e2f/${!uuid_var}/g" \
    -e "s/<name>desktop-all</<name>aa-$vm</" -e "s/owner=\"alice\"/owner=\"$owner\"/g" \
    "$repo/xml-examples/desktop-all.xml" >"$tmp/$vm.xml"
  if ! plan "$tmp/$vm.xml" --plugin-dir "$repo/plugins" --policy "$tmp/policy.conf" \
    --json >"$tmp/$vm.plan.json"; then
    fail "sockhook plan failed for VM $vm"
  fi
  # Build libvirt's profile from virt-aa-helper's dry run, as virt-aa-helper itself does:
  # TEMPLATE.qemu with the profile's name, and the .files include before the closing brace.
  if ! "$helper" --dryrun --create --uuid "libvirt-${!uuid_var}" <"$tmp/$vm.xml" \
    2>"$tmp/$vm.dryrun" >/dev/null; then
    fail "virt-aa-helper failed for VM $vm: $(tail -n 3 "$tmp/$vm.dryrun")"
  fi
  "$py" - "$tmp/$vm.dryrun" "$aa" "libvirt-${!uuid_var}" <<'PY' || fail "cannot build VM $vm's profile"
import sys
dryrun, aa, name = sys.argv[1:]
# vah_info prints "virt-aa-helper:\n<text>\n" for: the .files path, its rules, the profile
# path, the profile name, the include line. Warnings are single lines; drop them.
text = "".join(l for l in open(dryrun) if not l.startswith("virt-aa-helper: warning:"))
parts = text.split("virt-aa-helper:\n")[1:]
if len(parts) < 5:
    sys.exit(f"unexpected dry run output:\n{text}")
# Each text is followed by one newline of vah_info's own.
files_rules, profile_name, include = parts[1][:-1], parts[3][:-1], parts[4][:-1]
if profile_name != name:
    sys.exit(f"virt-aa-helper names the profile {profile_name}, not {name}")
# create_profile(): "\nprofile LIBVIRT_TEMPLATE" -> "\nprofile NAME", "\n}" -> "\nINCLUDE\n}".
template = open(f"{aa}/libvirt/TEMPLATE.qemu").read()
profile = template.replace("\nprofile LIBVIRT_TEMPLATE", f"\nprofile {name}")
profile = profile.replace("\n}", f"\n{include}\n}}")
open(f"{aa}/libvirt/{name}", "w").write(profile)
open(f"{aa}/libvirt/{name}.files", "w").write(
    "# DO NOT EDIT THIS FILE DIRECTLY. IT IS MANAGED BY LIBVIRT.\n" + files_rules)
PY
  if ! "$parser" -Q -T -D rule-exprs --base "$aa" "$aa/libvirt/libvirt-${!uuid_var}" \
    >/dev/null 2>"$tmp/$vm.rules" || ! grep -q '^rule: ' "$tmp/$vm.rules"; then
    fail "apparmor_parser cannot compile VM $vm's profile: $(grep -v '^aare\|^rule\|^$' "$tmp/$vm.rules" | head -n 3)"
  fi
done

# What a profile allows (query RULES QUERIES): reads "PATH PERMS WHO" lines (WHO: other = a file someone else owns,
# any = whoever owns it) and prints "PATH PERMS WHO yes|no". A path is allowed a permission
# when a rule matches it with that permission and no deny rule does.
query() {
  "$py" - "$1" "$2" <<'PY'
import re, sys
MAY = {"w": 0x2, "r": 0x4}
OTHER_SHIFT = 14
rules = []
for line in open(sys.argv[1]):
    if not line.startswith("rule: "):
        continue
    m = re.match(r"rule: (.*?)  ->  .*?((?: \S+)*) \((0x[0-9a-f]+)/[0-9a-fx]+\)< 0x[0-9a-f]+>$",
                 line.rstrip("\n"))
    if not m:
        sys.exit(f"cannot read the rule line: {line}")
    try:
        expr = re.compile(m.group(1))
    except re.error as e:
        sys.exit(f"cannot evaluate the rule {m.group(1)}: {e}")
    rules.append((expr, "deny" in m.group(2).split(), int(m.group(3), 16)))
for q in open(sys.argv[2]).read().split("\n"):
    if not q:
        continue
    path, perms, who = q.split()
    allowed = True
    for p in perms:
        bits = [MAY[p] << OTHER_SHIFT] if who == "other" else [MAY[p], MAY[p] << OTHER_SHIFT]
        hit = lambda deny: any(d == deny and e.fullmatch(path) and any(m & b for b in bits)
                               for e, d, m in rules)
        allowed = allowed and hit(False) and not hit(True)
    print(path, perms, who, "yes" if allowed else "no")
PY
}

# The paths each VM's QEMU is given, exactly as sockhook's plan gives them.
paths_of() {
  "$py" - "$tmp/$1.plan.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
if plan["errors"] or not plan["sockets"]:
    sys.exit(f"plan has errors or no sockets: {plan['errors']}")
print("lenddir", plan["lend_dir"] + "/")
for s in plan["sockets"]:
    print("socket" if s["method"] in ("bind", "proxy") else "original", s["target"])
    print("source", s["source"])
    for step in s["steps"]:
        if step["action"] == "copy_file":
            print("file", step["target"])
PY
}

for vm in a b; do
  other=$([[ $vm == a ]] && echo b || echo a)
  paths_of "$vm" >"$tmp/$vm.paths" || fail "cannot read VM $vm's plan"
  paths_of "$other" >"$tmp/$other.paths" || fail "cannot read VM $other's plan"
  n_own=0 n_other=0
  {
    while read -r kind path; do
      case $kind in
        lenddir) echo "$path r any" ;;
        socket) echo "$path rw other" ;;
        file) echo "$path r any" ;;
      esac
    done <"$tmp/$vm.paths"
  } >"$tmp/$vm.own.q"
  {
    while read -r kind path; do
      for p in r w; do echo "$path $p any"; done
    done <"$tmp/$other.paths"
    # The owners' sockets themselves, and any other user's runtime directory.
    while read -r kind path; do
      [[ $kind == source ]] && for p in r w; do echo "$path $p any"; done
    done <"$tmp/$vm.paths"
    for p in r w; do echo "/run/user/1000/pipewire-0 $p any"; echo "/run/user/1000/pulse/native $p any"; done
    for p in r w; do echo "/run/sockhook/state/$(eval echo "\$uuid_$vm").xml $p any"; done
  } >"$tmp/$vm.foreign.q"
  while read -r path perms who verdict; do
    n_own=$((n_own + 1))
    echo "  VM $vm, its own $path ($perms): ${verdict/yes/allowed}"
    [[ $verdict == yes ]] || fail "VM $vm's profile does not allow its own $path ($perms)"
  done < <(query "$tmp/$vm.rules" "$tmp/$vm.own.q" || echo "query failed")
  while read -r path perms who verdict; do
    n_other=$((n_other + 1))
    [[ $verdict == no ]] || fail "VM $vm's profile allows $path ($perms), which is not its own"
  done < <(query "$tmp/$vm.rules" "$tmp/$vm.foreign.q" || echo "query failed")
  if ((n_own > 3 && n_other > 10)); then
    ok "VM $vm: checked $n_own accesses to its own lend directory and $n_other foreign ones"
  else
    fail "VM $vm: too few paths checked ($n_own own, $n_other foreign)"
  fi
done
echo "the expanded sockhook rules for VM a:"
grep -F "/run/sockhook/" "$tmp/a.rules" | grep '^rule: ' | sed 's/^/  /'

# ---- remove takes out exactly what install added. ----
out=$("$installer" remove --root "$root" --rules "$rules") || fail "remove: $out"
rm -f "$aa/libvirt/libvirt-$uuid_a" "$aa/libvirt/libvirt-$uuid_a.files" \
  "$aa/libvirt/libvirt-$uuid_b" "$aa/libvirt/libvirt-$uuid_b.files"
if [[ $(snapshot) == "$before" ]]; then
  ok "remove leaves /etc/apparmor.d byte-identical to before install"
else
  fail "remove left differences:"
  diff <(echo "$before") <(snapshot) | head -n 20 >&2
fi
if "$installer" check --root "$root" --rules "$rules" >/dev/null; then
  fail "check accepts a tree without the rules"
fi

if ((fails)); then
  echo "apparmor_rules: $fails failure(s)" >&2
  exit 1
fi
echo "apparmor_rules: all checks passed"
