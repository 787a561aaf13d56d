#!/bin/bash
# S1, S2, S4 under attack. The socket's owner swaps the socket for a symlink to a root-owned
# victim file in a tight loop while hundreds of prepare/release cycles run (bind, acl and group
# methods); afterwards the victim's mode, owner, ACL and content are unchanged and nothing but
# the owner's socket was ever mounted. Then each static trick (FIFO, hard links, another user's
# socket, a symlinked directory, a runtime directory of someone else, QEMU's user planting
# files) must not_ok prepare with exit 1 and one clear line on stderr, leaving the host
# byte-identical.
#
#   bash tests/root/lend_attacks.sh /abs/path/to/sockhook [CYCLES]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
cycles=${2:-300}

lend_setup 7c6b5a49-3827-4f16-8e5d-4c3b2a190801 pipewire-0

# ---- The race --------------------------------------------------------------------------------
victim=/etc/sockhook-victim-$$
printf 'root only\n' >"$victim"
chmod 600 "$victim"
victim_state() { stat -c '%n %a %u %g %i %h %s' "$victim"; getfacl -p "$victim"; sha256sum "$victim"; }
victim_before=$(victim_state)
cleanup_victim() { rm -f "$victim"; }
on_exit cleanup_victim

sock_ino=$(stat -c %i "$runtime/pipewire-0")
runtime_dev=$(mountpoint -d "$runtime")
# The owner's loop: the name flips between the real socket and a symlink to the victim, with
# atomic renames, as fast as python can.
lend_spawn "$lend_user" "$py" -c '
import os, sys
d, victim = sys.argv[1], sys.argv[2]
os.chdir(d)
os.symlink(victim, "lnk")
while True:
    os.rename("pipewire-0", "sock.save")
    os.rename("lnk", "pipewire-0")
    os.rename("pipewire-0", "lnk")
    os.rename("sock.save", "pipewire-0")
' "$runtime" "$victim"
swapper=$spawned

lent=0 refused=0 foreign=0
methods=(bind acl group)
for ((i = 0; i < cycles; i++)); do
  m=${methods[i % 3]}
  xml=$(lend_domain race "$U" "pipewire:$m")
  if lend_hook race prepare begin "$xml"; then
    lent=$((lent + 1))
    if [[ $m == bind ]]; then
      # Whatever is mounted in the lend directory must be the owner's socket, from its tmpfs.
      while read -r devno root mp; do
        [[ $devno == "$runtime_dev" ]] || { foreign=$((foreign + 1)); not_ok "cycle $i: mounted $devno $root on $mp"; }
      done < <(awk -v d="$L/" 'index($5, d) == 1 { print $3, $4, $5 }' /proc/self/mountinfo)
      [[ $(stat -c %i "$L/pipewire-0") == "$sock_ino" ]] || { foreign=$((foreign + 1)); not_ok "cycle $i: target is not the socket"; }
    fi
  else
    refused=$((refused + 1))
    [[ $(wc -l <"$TMP/hook.err") == 1 ]] || not_ok "cycle $i: refusal is not one line: $(cat "$TMP/hook.err")"
  fi
  grep -q "sockhook-victim" /proc/self/mountinfo && { foreign=$((foreign + 1)); not_ok "cycle $i: the victim is mounted"; }
  lend_hook race release end "$xml" || not_ok "cycle $i: release exit $?"
done
kill "$swapper"
wait "$swapper" 2>/dev/null || true
echo "race: $cycles prepare/release cycles (bind, acl, group in turn) against the swap loop: $lent lent the real socket, $refused refused, $foreign foreign"
((lent > 0 && refused > 0)) || not_ok "race: the swap loop did not interleave (lent $lent, refused $refused)"
[[ $(victim_state) == "$victim_before" ]] && ok "race: victim unchanged (mode, owner, ACL, content)" || not_ok "race: victim changed: $(victim_state)"
# Put the runtime directory back in order: the socket under its name, no symlink.
cd "$runtime"
[[ -S pipewire-0 ]] || mv sock.save pipewire-0
rm -f lnk sock.save
cd /
[[ $(stat -c %i "$runtime/pipewire-0") == "$sock_ino" ]] || not_ok "race: lost the socket"
# A release that met a swapped name kept its journal entry; with the name back, it finishes.
left=0
[[ -e /run/sockhook/state/$U.xml ]] && left=1
lend_hook race release end "$(lend_domain race "$U" pipewire:bind)"
echo "race: journal kept for a retry after the last cycle: $left"
[[ ! -e /run/sockhook/state/$U.xml ]] || not_ok "race: journal still there after the final release"
getfacl -cp "$runtime/pipewire-0" | grep -q "^user:$qemu_user" && not_ok "race: an ACL entry was left on the socket"
[[ $(stat -c %g "$runtime/pipewire-0") == "$lend_gid" ]] || not_ok "race: the socket's group was left changed"
[[ ! -e $L ]] && ok "race: no lend directory left" || not_ok "race: $L left behind"

# ---- Static tricks: each one must be refused, in one line, with no change -------------------

# refused NAME SOCKET EXPECTED: prepare must not_ok with exactly the one line EXPECTED.
refused() {
  local what=$1 sock=$2 want=$3
  local xml
  xml=$(lend_domain "evil-$what" "$U" "$sock")
  host_snapshot >"$TMP/before"
  local rc=0
  lend_hook "evil-$what" prepare begin "$xml" || rc=$?
  local err
  err=$(cat "$TMP/hook.err")
  if [[ $rc == 1 && $err == "$want" ]]; then
    ok "$what: refused: $err"
  else
    not_ok "$what: exit $rc, stderr: $err (wanted: $want)"
  fi
  lend_hook "evil-$what" release end "$xml"
  same_host "$TMP/before" "$what"
}
e="sockhook: error"

# A FIFO instead of the socket.
mkfifo -m 600 "$runtime/wayland-0"
chown "$lend_user:" "$runtime/wayland-0"
refused fifo wayland:bind "$e: evil-fifo: wayland: cannot bind-mount $runtime/wayland-0: not a socket (it is a FIFO)"
refused fifo-acl wayland:acl "$e: evil-fifo-acl: wayland: cannot grant access to $runtime/wayland-0: not a socket (it is a FIFO)"
rm -f "$runtime/wayland-0"

# A symlink to the victim as the socket (no race): never followed.
ln -s "$victim" "$runtime/wayland-0"
refused symlink wayland:bind "$e: evil-symlink: wayland: cannot bind-mount $runtime/wayland-0: not a socket (it is a symbolic link)"
refused symlink-group wayland:group "$e: evil-symlink-group: wayland: cannot change the group of $runtime/wayland-0: not a socket (it is a symbolic link)"
rm -f "$runtime/wayland-0"

# A second hard link to the owner's own socket.
lend_as "$lend_user" ln "$runtime/pipewire-0" "$runtime/wayland-0"
refused hardlink wayland:bind "$e: evil-hardlink: wayland: cannot bind-mount $runtime/wayland-0: it has 2 hard links (expected 1)"
rm -f "$runtime/wayland-0"

# Another user's socket inside the owner's directory (a world-writable pulse/ lets them in).
install -d -m 1777 -o "$lend_user" -g "$lend_user" "$runtime/pulse"
chmod 711 "$runtime"
lend_echo_server "$lend_user2" "$runtime/pulse/native" 0666
refused foreign-socket pulseaudio:bind "$e: evil-foreign-socket: pulseaudio: cannot bind-mount $runtime/pulse/native: it is owned by uid $lend_uid2, not by the owner (uid $lend_uid)"
# ... and a hard link to someone else's socket (made by root: protected_hardlinks stops users).
ln "$runtime/pulse/native" "$runtime/wayland-0"
refused foreign-hardlink wayland:bind "$e: evil-foreign-hardlink: wayland: cannot bind-mount $runtime/wayland-0: it is owned by uid $lend_uid2, not by the owner (uid $lend_uid)"
rm -f "$runtime/wayland-0"
kill "$echo_pid"
wait "$echo_pid" 2>/dev/null || true
rm -rf "$runtime/pulse"
chmod 700 "$runtime"

# A symlinked directory on the way: pulse -> a directory that holds a real socket of the owner.
install -d -m 700 -o "$lend_user" -g "$lend_user" "$runtime/elsewhere"
lend_echo_server "$lend_user" "$runtime/elsewhere/native" 0600
lend_as "$lend_user" ln -s elsewhere "$runtime/pulse"
refused symlinked-dir pulseaudio:bind "$e: evil-symlinked-dir: pulseaudio: cannot bind-mount $runtime/pulse/native: $runtime/pulse is a symbolic link"
refused symlinked-dir-acl pulseaudio:acl "$e: evil-symlinked-dir-acl: pulseaudio: cannot grant access to $runtime/pulse/native: $runtime/pulse is a symbolic link"
# pulse -> / (the whole tree): same answer, nothing granted on /.
rm "$runtime/pulse"
lend_as "$lend_user" ln -s / "$runtime/pulse"
refused symlink-to-root pulseaudio:acl "$e: evil-symlink-to-root: pulseaudio: cannot grant access to $runtime/pulse/native: $runtime/pulse is a symbolic link"
rm "$runtime/pulse"

# A runtime directory that is not the owner's.
chown "$lend_user2" "$runtime"
refused foreign-runtime pipewire:bind "$e: evil-foreign-runtime: pipewire: cannot bind-mount $runtime/pipewire-0: $runtime is owned by uid $lend_uid2, not by the owner (uid $lend_uid)"
chown "$lend_user" "$runtime"

# QEMU's user tries to plant things where the lend directory will be, and inside it.
if lend_as_qemu mkdir "$L" 2>/dev/null || lend_as_qemu ln -s /etc "$L" 2>/dev/null; then
  not_ok "QEMU's user could create $L"
else
  ok "QEMU's user cannot create $L (/run/sockhook is $(stat -c '%U %a' /run/sockhook))"
fi
xml=$(lend_domain plant "$U" pipewire:bind)
lend_hook plant prepare begin "$xml" || not_ok "plant: prepare failed: $(cat "$TMP/hook.err")"
for attempt in "touch $L/x" "ln -s $victim $L/y" "mv $L/pipewire-0 $L/z" "rm -f $L/pipewire-0"; do
  if lend_as_qemu $attempt 2>/dev/null; then not_ok "QEMU's user could: $attempt"; else ok "QEMU's user cannot: $attempt"; fi
done
lend_hook plant release end "$xml"
[[ ! -e $L ]] || not_ok "plant: $L left behind"
[[ $(victim_state) == "$victim_before" ]] && ok "victim unchanged at the end" || not_ok "victim changed"

finish
