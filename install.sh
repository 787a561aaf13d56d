#!/usr/bin/env bash
# Installs sockhook: build dependencies, a Release build, the binary and plugins (cmake
# --install), the libvirt hook, each VM's AppArmor rules (dist/apparmor/sockhook-apparmor),
# default configuration and policy; reloads libvirt so that it sees the hook; then checks the
# host with `sockhook doctor`.
#
#   sudo ./install.sh [--prefix DIR] [--no-deps] [--build-dir DIR]
#   sudo ./install.sh --uninstall [--prefix DIR] [--build-dir DIR]
#   ./install.sh --check-libvirt       (says whether libvirt is installed, and how to get it)
#
# --build-dir DIR installs what an existing, configured and built tree in DIR holds (a CI
# build, say) instead of building build-release; cmake --install writes its manifest there.
# Running it twice is harmless. --uninstall reverses everything it did, and keeps a
# configuration or policy that was changed after installation (it says so).
set -euo pipefail

prefix=/usr/local
deps=yes
prebuilt=
action=install
while (($#)); do
  case $1 in
    --prefix) prefix=$2; shift ;;
    --no-deps) deps=no ;;
    --build-dir) prebuilt=$(cd "${2:?--build-dir needs a directory}" && pwd); shift ;;
    --uninstall) action=uninstall ;;
    --check-libvirt) action=check-libvirt ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'install.sh: %s\n' "$*"; }

# libvirt's QEMU daemon (monolithic libvirtd or modular virtqemud), looked for where the
# distributions install it; SOCKHOOK_INSTALL_SBIN (a PATH-like list) replaces these
# directories in tests.
libvirt_installed() {
  local dir d
  local IFS=:
  for dir in ${SOCKHOOK_INSTALL_SBIN:-/usr/sbin:/usr/local/sbin:/sbin:/usr/bin}; do
    for d in libvirtd virtqemud; do [[ -x $dir/$d ]] && return 0; done
  done
  return 1
}

# What is missing and how to get it, in this distribution's words; false if libvirt is missing.
check_libvirt() {
  libvirt_installed && return 0
  local how
  if command -v apt-get >/dev/null; then
    how="apt-get install libvirt-daemon-system qemu-system-x86"
  elif command -v dnf >/dev/null; then
    how="dnf install libvirt-daemon-kvm"
  elif command -v pacman >/dev/null; then
    how="pacman -S libvirt qemu-desktop"
  else
    how="your distribution's libvirt daemon and QEMU packages"
  fi
  say "libvirt is not installed (no libvirtd or virtqemud): sockhook is a libvirt hook and"
  say "does nothing without it. Install it with: $how"
  return 1
}

if [[ $action == check-libvirt ]]; then
  check_libvirt && say "libvirt is installed"
  exit
fi

if ((EUID != 0)); then
  echo "install.sh: run as root (sudo ./install.sh)" >&2
  exit 1
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${prebuilt:-$src/build-release}
hooks=/etc/libvirt/hooks
etc=/etc/sockhook


# WirePlumber's drop-in for context lends: it names the script under our prefix. The package
# ships its own in /usr/share/wireplumber (dist/wireplumber/sockhook.conf).
wp_dropin=/etc/wireplumber/wireplumber.conf.d/sockhook.conf
install_wireplumber_rules() {
  local script=$prefix/share/sockhook/wireplumber/sockhook-access.lua
  # Only with the context holder (libpipewire 1.2, WirePlumber 0.5): an older WirePlumber
  # that loads the script does not start at all, and so the owner would lose all sound.
  if [[ ! -x $prefix/bin/sockhook-context-holder || ! -f $script ]]; then
    say "WirePlumber rules not written: this build has no method context (libpipewire < 1.2)"
    return 0
  fi
  sed "s|/usr/share/sockhook/wireplumber/sockhook-access.lua|$script|" \
    "$src/dist/wireplumber/sockhook.conf" |
    install -D -m 0644 -o root -g root /dev/stdin "$wp_dropin"
  say "wrote $wp_dropin: WirePlumber restricts context lends once each owner restarts it"
}
remove_wireplumber_rules() {
  # Only our own drop-in (it names sockhook's script).
  if [[ -f $wp_dropin ]] && grep -q 'sockhook-access.lua' "$wp_dropin"; then
    rm -f "$wp_dropin"
    rmdir /etc/wireplumber/wireplumber.conf.d /etc/wireplumber 2>/dev/null || true
    say "removed $wp_dropin"
  fi
}

# polkit's actions (org.sockhook.grant for `sockhook grant`/`revoke`, org.sockhook.status for
# an owner's `sockhook status`, both in one file) and the rule for grant (SPEC §16). polkitd
# never looks under /usr/local, so they go where it looks; the actions name our prefix's binary. The Debian
# package ships its own (for /usr/bin/sockhook): a file of the package's is left alone.
polkit_action=/usr/share/polkit-1/actions/org.sockhook.policy
polkit_rules=/usr/share/polkit-1/rules.d/50-sockhook.rules
install_polkit_rules() {
  if [[ ! -d /usr/share/polkit-1 ]]; then
    say "polkit is not installed: 'sockhook grant' and an owner's 'sockhook status' need it" \
      "(apt-get install polkitd pkexec)"
    return 0
  fi
  if owned_by_package "$polkit_action"; then
    say "kept $polkit_action: the sockhook Debian package's (it names /usr/bin/sockhook)"
    return 0
  fi
  sed "s|@SOCKHOOK@|$prefix/bin/sockhook|" "$src/dist/polkit/org.sockhook.policy.in" |
    install -D -m 0644 -o root -g root /dev/stdin "$polkit_action"
  install -D -m 0644 -o root -g root "$src/dist/polkit/50-sockhook.rules" "$polkit_rules"
  say "wrote $polkit_action and $polkit_rules: members of libvirt may 'sockhook grant'," \
    "every user may see their own lends with 'sockhook status'"
}
remove_polkit_rules() {
  # Only the actions (grant's and status's, one file) that name this prefix's binary; the rule
  # (the same for every installation) only once no action of sockhook's is left to use it.
  if [[ -f $polkit_action ]] && ! owned_by_package "$polkit_action" &&
    grep -qF ">$prefix/bin/sockhook<" "$polkit_action"; then
    rm -f "$polkit_action"
    say "removed $polkit_action"
  fi
  if [[ ! -e $polkit_action && -f $polkit_rules ]] && ! owned_by_package "$polkit_rules" &&
    grep -q 'org.sockhook.grant' "$polkit_rules"; then
    rm -f "$polkit_rules"
    say "removed $polkit_rules"
  fi
}

# The defaults the Debian package ships as conffiles too: one source, so that installing the
# package over an install.sh installation finds identical files and asks nothing.
default_config() { cat "$src/dist/sockhook.conf"; }
# The default configuration as earlier versions of install.sh wrote it. A file that still
# reads so was never edited: it is brought up to date, and --uninstall removes it.
earlier_default_config() {
  printf '%s\n' '# sockhook configuration. See README.md.' \
    '# dry_run = true makes the hook log its plan and change nothing.' 'dry_run = false'
}
is_default_config() { cmp -s "$1" <(default_config) || cmp -s "$1" <(earlier_default_config); }
default_policy() { cat "$src/dist/policy.conf"; }

install_deps() {
  if command -v apt-get >/dev/null; then
    local pkgs=(build-essential cmake pkg-config libvirt-dev libpugixml-dev libcli11-dev
      doctest-dev libacl1-dev nlohmann-json3-dev acl scdoc)
    # Skip apt entirely when everything is there: install.sh should be quick to re-run.
    local missing
    missing=$(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${pkgs[@]}" 2>&1 |
      grep -v '^installed ' || true)
    if [[ -z $missing ]]; then
      say "build dependencies already installed"
      return
    fi
    say "installing build dependencies with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  elif command -v dnf >/dev/null; then
    dnf install -y gcc-c++ cmake pkgconf-pkg-config libvirt-devel pugixml-devel cli11-devel \
      doctest-devel libacl-devel json-devel acl scdoc
  elif command -v pacman >/dev/null; then
    pacman -S --needed --noconfirm base-devel cmake pkgconf libvirt pugixml cli11 doctest acl \
      nlohmann-json scdoc
  else
    say "no apt-get, dnf or pacman: install the dependencies listed in README.md yourself"
  fi
}

# The libvirt daemons that may be running: the monolithic one and the modular QEMU driver.
reload_libvirt() {
  local reloaded=no d
  for d in libvirtd virtqemud; do
    if pkill -HUP -x "$d" 2>/dev/null; then
      say "sent SIGHUP to $d so that it looks up its hooks again"
      reloaded=yes
    fi
  done
  [[ $reloaded == yes ]] || say "libvirtd/virtqemud is not running; it will find the hook when it starts"
}

# libvirt >= 6.5 runs every executable in hooks/qemu.d/.
libvirt_has_qemu_d() {
  local v d
  for d in libvirtd virtqemud; do
    command -v "$d" >/dev/null || continue
    v=$("$d" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n1) || continue
    [[ -n $v ]] || continue
    local major=${v%%.*} minor=${v#*.}
    ((major > 6 || (major == 6 && minor >= 5))) && return 0
    return 1
  done
  return 0  # libvirt not installed yet: every current release has qemu.d
}

# The files cmake --install wrote, from its install_manifest.txt: only those under $prefix.
# The manifest lies in the checkout, which whoever owns it can write, and --uninstall deletes
# what it lists as root: a line such as /etc/shadow is skipped, and said so.
manifest_files() {
  [[ -f $build/install_manifest.txt ]] || return 0
  local f
  while IFS= read -r f || [[ -n $f ]]; do  # cmake ends the manifest without a newline
    if [[ $f == "$prefix"/* && $f != *"/../"* && $f != *"/.." ]]; then
      printf '%s\n' "$f"
    else
      say "skipped '$f' of $build/install_manifest.txt: not under $prefix" >&2
    fi
  done <"$build/install_manifest.txt"
}

# The AppArmor installer, where cmake --install put it (its install_manifest.txt knows).
apparmor_script() {
  local s
  s=$(manifest_files 2>/dev/null | grep -m1 '/sockhook-apparmor$') || true
  printf '%s\n' "${s:-$prefix/share/sockhook/apparmor/sockhook-apparmor}"
}

# Ours is a copy; the Debian package's hook is a symlink to /usr/bin/sockhook and stays its own.
is_our_hook() { [[ -f $1 && ! -L $1 ]] && cmp -s "$1" "$prefix/bin/sockhook"; }
owned_by_package() { command -v dpkg-query >/dev/null && dpkg-query -S "$1" >/dev/null 2>&1; }
package_installed() {
  command -v dpkg-query >/dev/null &&
    [[ $(dpkg-query -W -f='${db:Status-Status}' sockhook 2>/dev/null) == installed ]]
}

do_install() {
  # Said first and again at the end: the hook is installed all the same, and libvirt finds it
  # once it is installed.
  local libvirt=yes
  check_libvirt || libvirt=no
  if [[ -n $prebuilt ]]; then
    [[ -f $build/CMakeCache.txt ]] || { say "$build is not a configured build tree" >&2; exit 1; }
    say "installing the existing build in $build"
    cmake --install "$build" --prefix "$prefix"
  else
    [[ $deps == yes ]] && install_deps
    say "building (Release) in $build"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSOCKHOOK_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
    cmake --build "$build" -j"$(nproc)"
    cmake --install "$build"
  fi

  # A copy, not a symlink: AppArmor mediates hooks by the path libvirtd executes, and its
  # profile allows /etc/libvirt/hooks/**.
  local hook
  if libvirt_has_qemu_d; then
    hook=$hooks/qemu.d/sockhook
  elif [[ ! -e $hooks/qemu ]] || is_our_hook "$hooks/qemu"; then
    hook=$hooks/qemu
  else
    say "libvirt is older than 6.5 (no hooks/qemu.d) and $hooks/qemu belongs to someone else;"
    say "merge sockhook into it by hand: it must run '$prefix/bin/sockhook hook \"\$@\"'"
    exit 1
  fi
  if owned_by_package "$hook"; then
    # One hook entry, never two: the package's stays, and runs the package's binary.
    say "$hook belongs to the sockhook Debian package; leaving it (it runs /usr/bin/sockhook)"
  else
    install -D -m 0755 -o root -g root "$prefix/bin/sockhook" "$hook"
    say "hook installed at $hook"
  fi

  # Each VM's AppArmor rules (SPEC §12); the script says where they went and what it reloaded.
  "$(apparmor_script)" install || say "the AppArmor rules are not installed (see above)"
  install_wireplumber_rules
  install_polkit_rules

  install -d -m 0755 -o root -g root "$etc" "$etc/plugins"
  if [[ ! -e $etc/sockhook.conf ]] ||
    { ! owned_by_package "$etc/sockhook.conf" && is_default_config "$etc/sockhook.conf" &&
      ! cmp -s "$etc/sockhook.conf" <(default_config); }; then
    default_config | install -m 0644 -o root -g root /dev/stdin "$etc/sockhook.conf"
    say "wrote $etc/sockhook.conf"
  fi
  if [[ ! -e $etc/policy.conf ]]; then
    default_policy | install -m 0644 -o root -g root /dev/stdin "$etc/policy.conf"
    say "wrote $etc/policy.conf (default deny)"
  fi
  reload_libvirt
  say "checking the host:"
  "$prefix/bin/sockhook" doctor || say "doctor found problems (see above)"
  [[ $libvirt == yes ]] || check_libvirt || true
}

do_uninstall() {
  if compgen -G "/run/sockhook/state/*.xml" >/dev/null; then
    say "some domains still have lends; stop them or run 'sockhook cleanup --stale' first"
    exit 1
  fi
  local h
  for h in "$hooks/qemu.d/sockhook" "$hooks/qemu"; do
    if is_our_hook "$h"; then
      rm -f "$h"
      say "removed $h"
    fi
  done
  # An empty qemu.d goes too, as dpkg removes the directories of a package it purges.
  rmdir "$hooks/qemu.d" 2>/dev/null || true
  # The same rules serve the Debian package's hook: they stay while it is installed.
  local aa
  aa=$(apparmor_script)
  if package_installed; then
    say "kept the AppArmor rules: the sockhook Debian package uses them"
  elif [[ -x $aa ]]; then
    "$aa" remove
  fi
  remove_wireplumber_rules
  remove_polkit_rules
  # Earlier versions installed the examples here (now share/doc/sockhook/examples); the
  # directory is ours alone, and an upgraded host must not keep it after --uninstall.
  rm -rf "$prefix/share/sockhook/xml-examples"
  if [[ -f $build/install_manifest.txt ]]; then
    manifest_files | xargs -d '\n' -r rm -f
    rmdir -p --ignore-fail-on-non-empty "$prefix/share/sockhook/plugins" \
      "$prefix/share/doc/sockhook/examples" "$prefix/share/sockhook/apparmor" \
      "$prefix/share/sockhook/wireplumber" 2>/dev/null || true
    # Only directories cmake --install may have created, and only when empty.
    rmdir "$prefix/share/bash-completion/completions" "$prefix/share/bash-completion" \
      "$prefix/share/man/man8" 2>/dev/null || true
    say "removed the files listed in $build/install_manifest.txt"
  else
    rm -f "$prefix/bin/sockhook" "$prefix/bin/sockhook-context-holder" \
      "$prefix/bin/sockhook-wayland-holder" \
      "$prefix/share/bash-completion/completions/sockhook" \
      "$prefix/share/man/man8/sockhook.8"
    rm -rf "$prefix/share/sockhook" "$prefix/share/doc/sockhook"
  fi
  # Files the Debian package owns stay its own (apt purge removes them).
  if [[ -f $etc/sockhook.conf ]] && ! owned_by_package "$etc/sockhook.conf" &&
    is_default_config "$etc/sockhook.conf"; then
    rm -f "$etc/sockhook.conf"
  fi
  if [[ -f $etc/policy.conf ]] && ! owned_by_package "$etc/policy.conf" &&
    cmp -s "$etc/policy.conf" <(default_policy); then
    rm -f "$etc/policy.conf"
  fi
  owned_by_package "$etc/plugins" || rmdir "$etc/plugins" "$etc" 2>/dev/null || true
  [[ -d $etc ]] && say "kept $etc: it holds your policy, configuration or plugins"
  reload_libvirt
  say "uninstalled"
}

if [[ $action == install ]]; then do_install; else do_uninstall; fi
