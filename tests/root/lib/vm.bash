# shellcheck shell=bash
# vm.bash - the e2e suites' VMs: a small TCG domain defined, started and stopped through
# virsh, QEMU's namespace and cgroup entered, and what doctor, plan and annotate say of it.
# A part of suite.bash, which sources it: never sourced or run alone.

# define_domain NAME [UUID_VAR [SED_SCRIPT]] : a small TCG domain (libvirt.sh's FINDINGS
# template, edited by SED_SCRIPT); its UUID goes to the EXIT trap and into the variable
# UUID_VAR, its definition as defined is kept for annotate_removed.
define_domain() {
    local xml=$TMP/$1.defined.xml uuid
    "$LIBVIRT" undefine "$1" >/dev/null 2>&1 || true
    "$LIBVIRT" xml "$1" | sed "${3:-}" >"$xml"
    virsh_ define "$xml" >/dev/null
    uuid=$(uuid_of "$1")
    E2E_UUIDS+=("$uuid")  # what the EXIT trap may release
    [[ -z ${2:-} ]] || printf -v "$2" '%s' "$uuid"
    virsh_ dumpxml --inactive "$1" >"$TMP/$1.original.xml"
}

uuid_of() { virsh_ domuuid "$1" | tr -d '[:space:]'; }
# qemu_pid NAME : libvirt's pid file, named after the domain; where there is none by that name
# (a 200-byte name, tests/root/lend_names.sh), the QEMU of its UUID.
qemu_pid() {
    cat "/run/libvirt/qemu/$1.pid" 2>/dev/null ||
        pgrep -u libvirt-qemu -f -- "-uuid $(uuid_of "$1")" | head -n1
}
is_running() { [[ $(virsh_ domstate "$1" 2>/dev/null) == running ]]; }
is_shut_off() { [[ $(virsh_ domstate "$1" 2>/dev/null) == "shut off" ]]; }

# start NAME : virsh start, output in $START_OUT, wall time in $START_TIME (seconds).
# shellcheck disable=SC2034 # both are read by the scripts
start() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    START_OUT=$(virsh_ start "$1" 2>&1) || rc=$?
    t1=$(date +%s.%N)
    START_TIME=$(echo "$t1 - $t0" | bc -l)
    return "$rc"
}

stop() {
    virsh_ destroy "$1" >/dev/null 2>&1 || true
    wait_until "$E2E_TIMEOUT" is_shut_off "$1"
}

# started NAME [HOW] : virsh start NAME, ok with its wall time, or not ok with virsh's output
# on one line; the status is start's.
started() {
    local how=${2:+, $2}
    if start "$1"; then
        ok "virsh start $1$how ($START_TIME s)"
    else
        not_ok "virsh start $1$how: $(tr '\n' ' ' <<<"$START_OUT")"
        return 1
    fi
}

# start_fails NAME WHAT PATTERN : virsh start NAME must fail, saying PATTERN (grep -E; the
# check WHAT). A start that succeeds is not ok, and the domain is stopped again.
start_fails() {
    if start "$1"; then
        not_ok "$2 (virsh start $1 succeeded)"
        stop "$1"
        return 0
    fi
    show "$START_OUT"
    check "$2" grep -q -E "$3" <<<"$START_OUT"
}

# refused_without_hook NAME WHAT PATTERN : the negative, start_fails with the hook out of
# libvirt's hook directory.
refused_without_hook() {
    hook_disable
    start_fails "$@"
    hook_enable
}

# doctor_ok NAME [NOTE] : `sockhook doctor NAME` (shown) finds nothing that would stop the
# lend.
doctor_ok() {
    local doc rc=0
    doc=$("$SOCKHOOK" doctor "$1" 2>&1) || rc=$?
    show "$doc"
    check "doctor $1${2:+ ($2)} finds nothing that would stop the lend" test "$rc" -eq 0
}

# plan_ok NAME : `sockhook plan --domain NAME` finds every variable provided.
plan_ok() {
    local plan
    plan=$("$SOCKHOOK" plan --domain "$1") || true  # judged by what it prints
    check "plan finds every variable provided" \
        bash -c "grep -q 'provided by' <<<\"\$1\" && ! grep -q MISSING <<<\"\$1\"" _ "$plan"
}

# lent_in_ns NAME UUID SOCKET WHAT : SOCKET is a socket in UUID's lend directory inside QEMU's
# mount namespace.
lent_in_ns() {
    NS=$(in_qemu_ns "$1" ls -l "/run/sockhook/libvirt-$2/" 2>&1 || true)
    show "$NS"
    check "$4" grep -q "^s.* $3\$" <<<"$NS"
}

# one_qemu_acl_entry SOCKET : while lent by bind, SOCKET's inode carries exactly one ACL entry
# for QEMU's user.
one_qemu_acl_entry() {
    check "the socket inode carries exactly one entry for QEMU's user while lent" \
        bash -c "getfacl -p '$1' 2>/dev/null | grep -c '^user:libvirt-qemu:rw-' | grep -qx 1"
}

# What QEMU says when its pa audiodev cannot reach the server (grep -E).
# shellcheck disable=SC2034 # read by the scripts
PA_REFUSED='Could not init .pa. audio driver|could not connect to PulseAudio server'

# in_qemu_ns NAME CMD... : run CMD in QEMU's mount namespace and its cgroup, where a proxy
# lend takes it for that domain's QEMU (S10).
# (-r: below QEMU's root directory; in a chroot, such as CI's Debian 13 root, the
# namespace's own root is the host's.)
in_qemu_ns() {
    local pid
    pid=$(qemu_pid "$1")
    shift
    in_cgroup_of "$pid" nsenter -t "$pid" -m -r "$@"
}

# annotate_removed NAME PLUGIN : annotate --remove gives back the persistent definition
# exactly as define_domain defined it and revokes the domain's allowance.
annotate_removed() {
    local uuid; uuid=$(uuid_of "$1")
    annotate "$1" --plugin "$2" --remove >/dev/null
    check "annotate --remove restores the persistent definition exactly" \
        diff "$TMP/$1.original.xml" <(virsh_ dumpxml --inactive "$1")
    check "annotate --remove revokes the allowance" bash -c "! grep -q -i $uuid $ETC/policy.conf"
}

# annotate NAME ARGS... : sockhook annotate as root (records the policy, like a user would).
annotate() { local d=$1; shift; "$SOCKHOOK" annotate "$d" "$@" 2>&1; }

# annotate_ok NAME ARGS... : says and runs annotate, which must exit 0 (its output shown);
# the persistent definition it leaves is in $XML.
annotate_ok() {
    local out
    say "annotate $*"
    out=$(annotate "$@") || not_ok "annotate ${*:2} exits 0: $out"
    show "$out"
    XML=$(virsh_ dumpxml --inactive "$1")
}

# qemu_env_has WHAT NAME VALUE : $XML gives QEMU the variable NAME=VALUE (<qemu:env>).
qemu_env_has() {
    check "$1" grep -q "<qemu:env name='$2' value='$3'/>" <<<"$XML"
}

policy_has() { grep -q -i "$1" "$ETC/policy.conf"; }
