# shellcheck shell=bash
# suite.bash - the library of the tests/root/*.sh suites, the one file they source (sourced,
# never run: ctest only picks up tests/root/*.sh). It sources its parts, below.
#
#   bash tests/root/NAME.sh /abs/path/to/sockhook [ARGS]     (root; exit 77 otherwise)
#
# A suite begins with
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" KIND "$@"
# KIND plain: suite_init (root or exit 77, the binary in $SOCKHOOK, $TMP, the traps);
# KIND lend: also lend_init (users shlend/shlend2 on their own tmpfs, own configuration);
# KIND e2e: also e2e_init (libvirtd, the desktop user, the hook installed). Then
#   ok / not_ok / check ...; same_host BEFORE WHAT; ...
#   finish               the summary, and the exit status
#
# The parts, one concern each, all sourced here in this order (a part may call any other's
# functions, once the suite runs):
#   report.bash    ok / not_ok / check, the summary, the traps, suite_init, on_exit
#   snapshot.bash  host_snapshot, same_host: the host byte-identical after a lend
#   servers.bash   the desktop user's servers, echo and PulseAudio stand-ins, FUSE, clients
#   cgroups.bash   a running domain's cgroup, `sockhook proxy` by hand as nobody
#   lend.bash      KIND lend: lend_init, users shlend/shlend2, policy, the hook by hand
#   e2e.bash       KIND e2e: e2e_init, libvirtd, the hook installed, backup and restore
#   vm.bash        the e2e domains: define, start, stop, QEMU's namespace, doctor, plan, annotate
# gates.bash is no part: a suite that may not run everywhere sources it first, naming its gates
# (pipewire_audio, wayland_context), which skip before anything is set up.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
DESKTOP=$REPO/tests/env/desktop.sh
LIBVIRT=$REPO/tests/env/libvirt.sh
SUITE_NAME=$(basename "$0" .sh)
ENV_NAME=$SUITE_NAME
# shellcheck source=../../env/common.bash
source "$REPO/tests/env/common.bash"

# shellcheck source=tests/root/lib/report.bash
source "${BASH_SOURCE[0]%/*}/report.bash"
# shellcheck source=tests/root/lib/snapshot.bash
source "${BASH_SOURCE[0]%/*}/snapshot.bash"
# shellcheck source=tests/root/lib/servers.bash
source "${BASH_SOURCE[0]%/*}/servers.bash"
# shellcheck source=tests/root/lib/cgroups.bash
source "${BASH_SOURCE[0]%/*}/cgroups.bash"
# shellcheck source=tests/root/lib/lend.bash
source "${BASH_SOURCE[0]%/*}/lend.bash"
# shellcheck source=tests/root/lib/e2e.bash
source "${BASH_SOURCE[0]%/*}/e2e.bash"
# shellcheck source=tests/root/lib/vm.bash
source "${BASH_SOURCE[0]%/*}/vm.bash"

# `source lib/suite.bash KIND "$@"`: KIND plain runs suite_init with the script's arguments,
# lend and e2e also lend_init or e2e_init.
case ${1:-} in
    plain) shift; suite_init "$@" ;;
    lend) shift; suite_init "$@"; lend_init ;;
    e2e) shift; suite_init "$@"; e2e_init ;;
    *) echo "usage: source ${BASH_SOURCE[0]} plain|lend|e2e \"\$@\"" >&2; exit 2 ;;
esac
