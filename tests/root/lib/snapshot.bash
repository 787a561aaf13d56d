# shellcheck shell=bash
# snapshot.bash - the host as a lend may change it, and the check that it came back
# byte-identical.
# A part of suite.bash, which sources it: never sourced or run alone.
#
# Host state. host_snapshot prints everything a lend may touch, in a form that must come
# back byte-identical: the mount table, the runtime directories in SNAP_DIRS (getfacl, type,
# mode, owner, group, inode, links of every entry), the files in SNAP_FILES, /run/sockhook
# (and its ACLs), /etc/sockhook and /etc/libvirt/hooks, and the live processes of the uids
# in SNAP_UIDS. Missing paths are recorded as missing, never an error.

SNAP_DIRS=()
SNAP_FILES=()
SNAP_UIDS=()
SNAP_SED=

# warm_run_sockhook : /run/sockhook and its state directory exist (they persist, like
# /run/libvirt), so that snapshots compare what one lend changes.
warm_run_sockhook() {
    install -d -m 0711 /run/sockhook
    install -d -m 0700 /run/sockhook/state
}

host_snapshot() {
    local - d f
    set +e +o pipefail  # a listing, never a reason to stop the suite
    {
        echo "## mounts"
        # Mount ids change with every mount; the rest must not.
        awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo | sort
        for d in "${SNAP_DIRS[@]}" /run/sockhook /etc/sockhook /etc/libvirt/hooks; do
            echo "## $d"
            [[ -e $d ]] || { echo "$d missing"; continue; }
            # Inode locks live only while a hook runs (a killed hook may leave one; the next
            # lend of that inode takes it over); everything else counts.
            # Sizes of regular files only: a directory's size on ext4 never shrinks back.
            if [[ $d == /etc/* ]]; then
                # Configuration is rewritten by rename on purpose (annotate, policy): its
                # content counts, not its inode (ext4 may hand the old number back, overlayfs
                # never does).
                find "$d" -xdev \( -type f -printf '%p %y %m %U %G %n %s\n' \) -o \
                    -printf '%p %y %m %U %G %n %l\n' 2>/dev/null | sort
                find "$d" -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
            else
                find "$d" -xdev \( -type f -printf '%p %y %m %U %G %i %n %s\n' \) -o \
                    -printf '%p %y %m %U %G %i %n\n' 2>/dev/null |
                    grep -v -E '^/run/sockhook/state/inode-[0-9-]+\.lock ' | sort
            fi
            find "$d" -xdev ! -name 'inode-*.lock' -print0 2>/dev/null | sort -z |
                xargs -0 -r getfacl -p 2>/dev/null || true
        done
        for f in "${SNAP_FILES[@]}"; do
            echo "## $f"
            stat -c '%n %F %a %u %g %i %s' "$f" 2>/dev/null || echo "$f missing"
        done
        echo "## processes of uids ${SNAP_UIDS[*]}"
        # Zombies are gone already (PID 1 reaps them late here); our own probes do not count.
        local uids; uids=$(IFS=,; echo "${SNAP_UIDS[*]}")
        [[ -z $uids ]] || ps -u "$uids" -o stat=,user=,comm=,args= 2>/dev/null |
            awk '$1 !~ /^Z/ && $3 !~ /^(ps|pactl|pw-cli|pw-dump)$/ {
                     if ($3 == "sockhook") { $1 = ""; $3 = ""; print } else print $2, $3 }' | sort
    } | sed -e "${SNAP_SED:-}"
}

# same_as_before FILE : the host matches the snapshot in FILE (retrying for a few seconds:
# PID 1 reaps zombies late here); prints a diff when it does not.
same_as_before() {
    local before=$1 deadline=$((SECONDS + 8))
    while :; do
        host_snapshot >"$TMP/snapshot.now"
        cmp -s "$before" "$TMP/snapshot.now" && return 0
        ((SECONDS < deadline)) || break
        sleep 0.3
    done
    diff -u "$before" "$TMP/snapshot.now" | sed 's/^/#   /' | head -60
    return 1
}

# same_host FILE WHAT : ok "WHAT: host byte-identical", or the difference.
same_host() { check "$2: host byte-identical" same_as_before "$1"; }
