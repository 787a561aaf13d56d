# shellcheck shell=bash
# e2e.bash - the e2e suites (KIND e2e): libvirtd up, the hook installed as install.sh does (or
# the installed one checked), what was there backed up and restored at exit, the holders, and
# the hook taken out and put back.
# A part of suite.bash, which sources it: never sourced or run alone.
#
# Installed mode (CI against an installed package), for the e2e suites:
#   SOCKHOOK_TEST_INSTALLED=1 bash tests/root/e2e_pulseaudio.sh /usr/bin/sockhook
# tests the sockhook that is installed instead of installing the one under test: the binary
# is the first argument, the hook is the one already in /etc/libvirt/hooks/qemu.d/sockhook
# (the suite fails at once, saying so, when it is missing) and the plugins are the installed
# ones (<prefix>/share/sockhook/plugins next to the binary's bin/, or
# SOCKHOOK_TEST_PLUGIN_DIR). Nothing is copied over them; /etc/sockhook (configuration and
# policy) is still backed up, replaced for the test and restored at exit.
#
# Overridable: E2E_TIMEOUT (seconds per bounded wait in e2e suites, default 20).

HOOK=/etc/libvirt/hooks/qemu.d/sockhook
ETC=/etc/sockhook
URI=qemu:///system
E2E_TIMEOUT=${E2E_TIMEOUT:-20}
E2E_PREFIX=shtest-e2e-
E2E_UUIDS=()

# virsh_ ARGS... : virsh on the system URI, bounded: a QEMU that waits for something that
# never comes (a server its audiodev wants) holds `virsh start` forever, and the suite with it.
virsh_() { timeout --kill-after=10 "${E2E_VIRSH_TIMEOUT:-180}" virsh -q -c "$URI" "$@"; }

# e2e_init : skips without the tools, serialises e2e scripts with a lock, installs the hook
# the way install.sh does (or checks the installed one: installed mode, above), backs up what
# was there, brings libvirtd up and reloads it. At exit our domains (shtest-e2e-*) go, what
# we started stops and the backed-up files come back.
e2e_init() {
    need_tools virsh libvirtd virtlogd qemu-system-x86_64 pactl pw-cli pulseaudio pipewire \
        nsenter getfacl findmnt setpriv flock
    # One e2e script at a time: they share libvirtd, /etc/sockhook and the desktop user.
    exec 9>/run/sockhook-e2e.lock
    flock -w 900 9 || die "another e2e script holds /run/sockhook-e2e.lock"
    E2E_INSTALLED=${SOCKHOOK_TEST_INSTALLED:-0}
    [[ $E2E_INSTALLED == 1 ]] && e2e_check_installed
    BACKUP=$(mktemp -d /run/sockhook-e2e-backup.XXXXXX)
    # shellcheck disable=SC2034 # the scripts' reference host_snapshot, for same_as_before
    BEFORE=$TMP/before
    # What runs already is someone else's: we stop only what we start.
    LIBVIRTD_WAS_UP=no
    "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running' && LIBVIRTD_WAS_UP=yes
    # The desktop goes last at exit: releasing the domains' lends needs its runtime directory.
    desktop_up
    on_exit e2e_cleanup
    e2e_backup
    e2e_install
    "$LIBVIRT" up
    # libvirt looks hooks up at start and on SIGHUP only.
    "$LIBVIRT" reload
    warm_run_sockhook
}

# Installed mode: the hook and the plugins must be there already; say what is missing.
e2e_check_installed() {
    local plugins=${SOCKHOOK_TEST_PLUGIN_DIR:-$(dirname "$(dirname "$SOCKHOOK")")/share/sockhook/plugins}
    [[ -x $HOOK && $(stat -c %u "$HOOK") == 0 ]] ||
        die "installed mode: no root-owned executable hook at $HOOK; install sockhook first"
    local p
    for p in pipewire pulseaudio jack wayland; do
        [[ -f $plugins/$p.xml ]] ||
            die "installed mode: the $p plugin is not installed ($plugins/$p.xml is missing)"
    done
    say "installed mode: $SOCKHOOK, hook $HOOK, plugins $plugins"
}

e2e_backup() {
    [[ -e $ETC ]] && cp -a "$ETC" "$BACKUP/etc-sockhook"
    [[ -e $HOOK ]] && cp -a "$HOOK" "$BACKUP/hook"
    [[ -d ${HOOK%/*} ]] || touch "$BACKUP/no-qemu.d"
    touch "$BACKUP/complete"
}

e2e_restore() {
    [[ -f $BACKUP/complete ]] || { rm -rf "$BACKUP"; return 0; }
    rm -rf "$ETC"
    [[ -e $BACKUP/etc-sockhook ]] && cp -a "$BACKUP/etc-sockhook" "$ETC"
    if [[ $E2E_INSTALLED == 1 ]]; then
        # Only a hook a negative test moved aside goes back; the installed one stays.
        [[ -e $HOOK_PARKED ]] && mv "$HOOK_PARKED" "$HOOK"
    else
        rm -f "$HOOK"
        [[ -e $BACKUP/hook ]] && cp -a "$BACKUP/hook" "$HOOK"
        [[ -e $BACKUP/no-qemu.d ]] && rmdir "${HOOK%/*}" 2>/dev/null
    fi
    rm -rf "$BACKUP"
}

# install.sh's way: a copy of the binary (AppArmor mediates hooks by path), root-owned
# plugins, a config and an empty, default-deny policy. Installed mode: the config and the
# policy only.
e2e_install() {
    if [[ $E2E_INSTALLED != 1 ]]; then
        install -D -m 0755 -o root -g root "$SOCKHOOK" "$HOOK"
        install -d -m 0755 -o root -g root "$ETC" "$ETC/plugins"
        rm -f "$ETC"/plugins/*.xml
        install -m 0644 -o root -g root "$REPO"/plugins/*.xml "$ETC/plugins/"
    fi
    install -d -m 0755 -o root -g root "$ETC"
    printf 'dry_run = false\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/sockhook.conf"
    printf '# e2e: default deny\n' | install -m 0644 -o root -g root /dev/stdin "$ETC/policy.conf"
}

e2e_cleanup() {
    local d
    if "$LIBVIRT" status 2>/dev/null | grep -q '^libvirtd running'; then
        # One name a line: a name may hold spaces (tests/root/lend_names.sh).
        while IFS= read -r d; do
            virsh_ destroy "$d" >/dev/null 2>&1
            virsh_ undefine "$d" >/dev/null 2>&1
        done < <(virsh_ list --all --name 2>/dev/null | grep "^$E2E_PREFIX")
    fi
    # Anything a failed test left lent: undo it while the hook binary is still ours.
    local u
    for u in "${E2E_UUIDS[@]}"; do
        [[ -f /run/sockhook/state/$u.xml ]] || continue
        echo "e2e: the lends of $u were left behind; releasing them" >&2
        "$SOCKHOOK" cleanup "$u" >&2 2>&1 ||
            # Without `cleanup`: the hook's own release, keyed by UUID like libvirt's call.
            printf "<domain type='qemu'><name>e2e-cleanup</name><uuid>%s</uuid></domain>" "$u" |
            "$SOCKHOOK" hook e2e-cleanup release end - >&2
    done
    e2e_restore
    if [[ $LIBVIRTD_WAS_UP == yes ]]; then
        "$LIBVIRT" reload >/dev/null 2>&1
    else
        "$LIBVIRT" down >/dev/null 2>&1
    fi
}

# e2e_install_holder PROGRAM : a holder program (sockhook-context-holder,
# sockhook-wayland-holder) from beside $SOCKHOOK where install.sh puts it: the bindir the build
# tree's CMakeCache.txt names. The hook is a copy in qemu.d (e2e_install), beside which nothing
# else may be (libvirt runs every executable there), so it finds the holder there. Removed at
# exit; installed mode uses the installed one. Skips when the bindir cannot be known or holds
# one already (an installed sockhook).
e2e_install_holder() {
    [[ $E2E_INSTALLED == 1 ]] && return 0
    local holder cache prefix bindir
    holder=$(dirname "$(readlink -f "$SOCKHOOK")")/$1
    [[ -x $holder ]] || die "no $1 beside $SOCKHOOK"
    cache=$(dirname "$(readlink -f "$SOCKHOOK")")/CMakeCache.txt
    prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$cache" 2>/dev/null)
    bindir=$(sed -n 's/^CMAKE_INSTALL_BINDIR:PATH=//p' "$cache" 2>/dev/null)
    [[ -n $prefix ]] || skip "no CMakeCache.txt beside $SOCKHOOK: where would install.sh put $1?"
    [[ $bindir == /* ]] || bindir=$prefix/${bindir:-bin}
    [[ -e $bindir/$1 ]] && skip "$bindir/$1 exists (an installed sockhook?)"
    ((${#E2E_HOLDERS[@]})) || on_exit e2e_remove_holders
    E2E_HOLDERS+=("$bindir/$1")
    install -D -m 0755 -o root -g root "$holder" "$bindir/$1"
}
E2E_HOLDERS=()
e2e_remove_holders() { rm -f "${E2E_HOLDERS[@]}"; }

# status_pid UUID FIELD : FIELD (holder_pid, proxy_pid) of UUID's lends in `sockhook status`.
status_pid() { "$SOCKHOOK" status --json | python3 -c '
import json, sys
print(" ".join(str(l.get(sys.argv[2], 0)) for l in json.load(sys.stdin) if l["uuid"] == sys.argv[1]))' "$1" "$2"; }

# hook_disable / hook_enable : the hook leaves libvirt's hook directory and comes back (the
# negative scenarios); e2e_restore puts it back should the suite stop in between.
# The hook is parked beside qemu.d, on the same file system, so that it keeps its inode (a
# move to /run would copy it, and the snapshot would see a new inode); libvirt runs nothing
# of that name (only hooks/qemu and hooks/qemu.d/*; a dotfile in qemu.d would run).
HOOK_PARKED=/etc/libvirt/hooks/.sockhook-under-test
hook_disable() { mv "$HOOK" "$HOOK_PARKED"; "$LIBVIRT" reload; }
hook_enable() { mv "$HOOK_PARKED" "$HOOK"; "$LIBVIRT" reload; }
