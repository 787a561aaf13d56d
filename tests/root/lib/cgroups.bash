# shellcheck shell=bash
# cgroups.bash - who a process is to a proxy lend (S10): the cgroup of a running domain (a
# stand-in's, as libvirt makes it, or QEMU's own), and `sockhook proxy` run by hand as nobody
# in one.
# A part of suite.bash, which sources it: never sourced or run alone.

# proxy_init : the start of the suites that run `sockhook proxy` by hand (KIND plain): what
# they start in the background (bg_pids) stops at exit, and $nobody_uid is the uid that
# proxy_as_nobody runs as and serves.
proxy_init() {
    on_exit lend_stop_bg
    nobody_uid=$(id -u nobody)
}

# as_nobody_in_domain ID CMD... : CMD as nobody in the cgroup of (stand-in) running domain ID.
as_nobody_in_domain() {
    local id=$1
    shift
    in_domain_cgroup "$id" setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

# proxy_as_nobody DIR BACKLOG LABEL : `sockhook proxy` as nobody, serving only nobody
# ($nobody_uid, see proxy_init) in the cgroup of domain $lend_id (as_nobody_in_domain), listening
# on DIR/proxy (passed as fd 3) and relaying to DIR/server; its pid is left in $proxy and bg_pids.
proxy_as_nobody() {
    "$py" - "$1" "$SOCKHOOK" "$nobody_uid" "$2" "$3" "$lend_id" <<'EOF' &
import os, socket, sys
d, exe, peer, backlog, label, domain = sys.argv[1:7]
listener = socket.socket(socket.AF_UNIX)
listener.bind(d + "/proxy")
os.chmod(d + "/proxy", 0o777)
listener.listen(int(backlog))
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.execvp("setpriv", ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "--no-new-privs", exe, "proxy", "--listen-fd", "3", "--connect",
                      d + "/server", "--peer-uid", peer, "--peer-domain", domain + ":/machine",
                      "--label", label])
EOF
    proxy=$!
    bg_pids+=("$proxy")
}

# cgroup2_root : where the cgroup v2 hierarchy is mounted ("" if nowhere).
cgroup2_root() { findmnt -n -o TARGET -t cgroup2 | head -1; }

# domain_cgroup ID : the cgroup v2 directory of a running domain with that id, as libvirt
# makes it without systemd (/machine/qemu-ID-NAME.libvirt-qemu); made if missing, and every
# such directory is removed at exit (remove_suite_cgroups). Only root can move a process into
# it, as with libvirt's.
domain_cgroup() {
    local root dir
    root=$(cgroup2_root)
    [[ -n $root ]] || { echo "no cgroup2 hierarchy is mounted" >&2; return 1; }
    dir=$root/machine/qemu-$1-sockhooktest.libvirt-qemu
    if [[ ! -d $root/machine ]]; then
        mkdir "$root/machine" && : >"$TMP/made-machine-cgroup"
    fi
    [[ -d $dir ]] || mkdir "$dir"
    printf '%s\n' "$dir"
}
# remove_suite_cgroups : removes what domain_cgroup made (run after the suite's processes end).
remove_suite_cgroups() {
    local root dir
    root=$(cgroup2_root)
    [[ -n $root ]] || return 0
    for dir in "$root"/machine/qemu-*-sockhooktest.libvirt-qemu; do
        [[ -d $dir ]] && rmdir "$dir" 2>/dev/null
    done
    [[ -e $TMP/made-machine-cgroup ]] && rmdir "$root/machine" 2>/dev/null
    return 0
}

# in_domain_cgroup ID CMD... : runs CMD in the cgroup of a (stand-in) running domain ID.
in_domain_cgroup() {
    local dir
    dir=$(domain_cgroup "$1") || return 1
    shift
    bash -c 'echo $$ >"$0/cgroup.procs" || { echo "in_domain_cgroup: cannot join $0" >&2; exit 99; }
             exec "$@"' "$dir" "$@"
}

# in_cgroup_of PID CMD... : runs CMD in the cgroup v2 group of process PID (e.g. QEMU's own),
# or in its parent when that group is threaded (libvirt's emulator and vcpu groups take threads,
# not processes); both are the domain's. Exits 99, saying why, when it cannot join either.
in_cgroup_of() {
    local root path
    root=$(cgroup2_root)
    path=$(sed -n 's/^0:://p' "/proc/$1/cgroup")
    shift
    bash -c 'for d in "$0" "${0%/*}"; do
                 if echo $$ 2>/dev/null >"$d/cgroup.procs"; then exec "$@"; fi
             done
             echo "in_cgroup_of: cannot join $0 or its parent" >&2; exit 99' "$root$path" "$@"
}
