#!/bin/bash
# Issue 22, from reading: `install.sh --uninstall` deleted every path listed in
# build-release/install_manifest.txt, a file in the checkout, which whoever owns the checkout
# can write. A manifest that names a file outside the prefix (here: $TMP/victim, standing for
# /etc/shadow) must not make root delete it; the files under the prefix still go.
#
# install.sh runs for real, as root, in a private mount namespace whose /etc and /run are
# empty tmpfs (it finds no hook, configuration, policy or journal of the host there), with a
# pkill that signals nothing (it would SIGHUP the host's libvirtd) and a prefix under $TMP.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" plain "$@"
need_tools unshare

host_snapshot >"$TMP/before"
src=$TMP/src prefix=$TMP/prefix
install -d "$src/build-release" "$prefix/bin" "$prefix/share/man/man8" "$TMP/bin"
cp "$REPO/install.sh" "$src/"
cp -r "$REPO/dist" "$src/"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin/pkill"
chmod +x "$TMP/bin/pkill"
echo "installed" | tee "$prefix/bin/sockhook" "$prefix/share/man/man8/sockhook.8" "$TMP/victim" >/dev/null
# What cmake --install wrote, plus what the checkout's owner added. cmake ends the manifest
# without a newline: its last file must go too.
{
  printf '%s\n' "$TMP/victim" "$prefix/../victim" "$prefix/bin/sockhook"
  printf '%s' "$prefix/share/man/man8/sockhook.8"
} >"$src/build-release/install_manifest.txt"

rc=0
# shellcheck disable=SC2016 # $1.. belong to the inner bash
unshare -m --propagation private bash -c '
  mount -t tmpfs tmpfs /etc && mount -t tmpfs tmpfs /run &&
  PATH=$1:$PATH exec bash "$2/install.sh" --uninstall --prefix "$3"' _ "$TMP/bin" "$src" "$prefix" \
  >"$TMP/out" 2>&1 || rc=$?
sed 's/^/#   install.sh: /' "$TMP/out"
check "install.sh --uninstall exits 0" test "$rc" -eq 0
check "the manifest's files under the prefix are gone" \
  test ! -e "$prefix/bin/sockhook" -a ! -e "$prefix/share/man/man8/sockhook.8"
check "a file outside the prefix that the manifest names is still there" test -e "$TMP/victim"
check "install.sh says it skipped it" grep -q "not under $prefix" "$TMP/out"
same_host "$TMP/before" "install.sh --uninstall in its own namespace"
finish
