#!/usr/bin/env bash
# completion.sh - the bash completion, exercised the way bash runs it: the file is sourced
# into a clean bash (with bash-completion's framework where it is installed, and without),
# `complete -p sockhook` must name its function, and that function is called with
# COMP_WORDS/COMP_CWORD as readline sets them.
#
#   bash tests/completion.sh /path/to/sockhook dist/sockhook.bash-completion
#   SOCKHOOK_TEST_INSTALLED=1 bash tests/completion.sh /usr/bin/sockhook \
#       /usr/share/bash-completion/completions/sockhook
#
# Hermetic (issue 20, item 8: this runs in the package build): domain names come from a stub
# `virsh` and users from a stub `getent`, both first on the completion's PATH, so that neither
# this host's libvirt nor its users are ever asked; tests/root/lend_names.sh completes real
# domains through the real virsh.
#
# Plugin names come from `sockhook plugins`. A build tree's binary finds no installed plugins,
# so by default `sockhook` on the completion's PATH is a two-line wrapper that runs the binary
# under test with --plugin-dir pointing at the repository's plugins/ (the output the
# completion parses is the real binary's). With SOCKHOOK_TEST_INSTALLED=1 the installed
# `sockhook` is used as it is, with the plugins it ships.
set -euo pipefail
bin=$(readlink -f "${1:?usage: $0 /path/to/sockhook completion-file}")
file=$(readlink -f "${2:?usage: $0 /path/to/sockhook completion-file}")
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ ${SOCKHOOK_TEST_INSTALLED:-} == 1 ]]; then
  ln -s "$bin" "$tmp/sockhook"
else
  # shellcheck disable=SC2016 # $1 and $@ belong to the wrapper
  printf '#!/bin/sh\n[ "$1" = plugins ] && { shift; exec "%s" plugins --plugin-dir "%s" "$@"; }\nexec "%s" "$@"\n' \
    "$bin" "$src/plugins" "$bin" >"$tmp/sockhook"
  chmod +x "$tmp/sockhook"
fi
# The domains and users the stubs know: names people use (spaces, a quote, non-ASCII).
printf '%s\n' 'Windows 11' 'ü-test' "a'b" 'acc see bind' 'web' >"$tmp/domains"
# shellcheck disable=SC2016 # the stub prints the file as it is
printf '#!/bin/sh\ncat "%s"\n' "$tmp/domains" >"$tmp/virsh"
# Regular users sit well inside any UID_MIN..UID_MAX (login.defs); root, a system user and
# nobody outside.
cat >"$tmp/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sysuser:x:120:120::/nonexistent:/usr/sbin/nologin
alice:x:1500:1500::/home/alice:/bin/bash
bob:x:30000:30000::/home/bob:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
# shellcheck disable=SC2016
printf '#!/bin/sh\n[ "$1" = passwd ] && exec cat "%s"\nexit 2\n' "$tmp/passwd" >"$tmp/getent"
chmod +x "$tmp/virsh" "$tmp/getent"

# The shipped plugins, from the files themselves, one per line.
shipped=$(sed -n 's/.*<plugin name="\([^"]*\)".*/\1/p' "$src"/plugins/*.xml | sort)

pass=0
fail=0
check() {  # check WHAT EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then
    pass=$((pass + 1)); echo "ok   - $1"
  else
    fail=$((fail + 1)); echo "FAIL - $1"; echo "#   expected: $(tr "\n" " " <<<"$2")"; echo "#   got:      $(tr "\n" " " <<<"$3")"
  fi
}

# complete WITH_FRAMEWORK WORD... : what bash offers for the last word (sorted).
complete_words() {
  local framework=$1; shift
  PATH="$tmp:$PATH" bash --norc --noprofile -c '
    framework=$1 file=$2; shift 2
    if [[ $framework == yes ]]; then source /usr/share/bash-completion/bash_completion; fi
    source "$file"
    complete -p sockhook | grep -q -- "-F _sockhook sockhook$" || { echo "NOT-REGISTERED"; exit; }
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _sockhook sockhook "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$framework" "$file" "$@" | sed '/^$/d' | sort
}

frameworks=(no)
[[ -r /usr/share/bash-completion/bash_completion ]] && frameworks+=(yes)
for fw in "${frameworks[@]}"; do
  echo "# with bash-completion's framework loaded: $fw"
  check "complete -p names _sockhook, and 'sockhook p' offers plan plugins policy" \
    "$(printf '%s\n' plan plugins policy)" "$(complete_words "$fw" sockhook p)"
  check "'sockhook pl' offers plan plugins" "$(printf '%s\n' plan plugins)" \
    "$(complete_words "$fw" sockhook pl)"
  check "'sockhook ' offers every command" \
    "$(printf '%s\n' annotate cleanup doctor grant hook plan plugins policy refresh revoke status)" \
    "$(complete_words "$fw" sockhook '')"
  # The binary also reads the plugin directories it was built with (/etc/sockhook/plugins and
  # its data directory): a build host with sockhook installed may have more, never fewer.
  check "'sockhook annotate vm --plugin ' offers the shipped plugins" "" \
    "$(comm -23 <(echo "$shipped") <(complete_words "$fw" sockhook annotate vm --plugin ''))"
  check "'sockhook policy allow --plugin p' offers pipewire and pulseaudio" \
    "$(printf '%s\n' pipewire pulseaudio)" "$(complete_words "$fw" sockhook policy allow --plugin p)"
  check "'sockhook plugins ' offers the shipped plugins" "" \
    "$(comm -23 <(echo "$shipped") <(complete_words "$fw" sockhook plugins ''))"
  check "'sockhook policy ' offers allow list revoke" "$(printf '%s\n' allow list revoke)" \
    "$(complete_words "$fw" sockhook policy '')"
  check "'--method ' offers the five methods" "$(printf '%s\n' acl auto bind group proxy)" \
    "$(complete_words "$fw" sockhook annotate vm --plugin jack --method '')"
  check "'--owner ' offers the regular users only" "$(printf '%s\n' alice bob)" \
    "$(complete_words "$fw" sockhook annotate vm --owner '')"
  check "'sockhook refresh ' offers the domains, each whole" "$(sort "$tmp/domains")" \
    "$(complete_words "$fw" sockhook refresh '')"
  check "'sockhook refresh acc' offers 'acc see bind' as one candidate" "acc see bind" \
    "$(complete_words "$fw" sockhook refresh acc)"
done

# Hostile names (issue 22): libvirt accepts a domain named `$(touch${IFS}x)`, and the old
# completion handed names to `compgen -W`, which ran that as root on TAB. A stub virsh and a
# stub sockhook offer such names; every one must come back as exactly one candidate, as it
# is, and nothing may run. (A newline cannot be part of a domain name: libvirt refuses it at
# define, and the passwd database cannot hold one; each line is one name.)
hostile=$tmp/hostile
mkdir -p "$hostile/bin" "$hostile/cwd"
cat >"$hostile/names" <<'NAMES'
$(touch${IFS}ran-dollar)
`touch ran-backtick`
acc see bind
it's "quoted"
$HOME
*
a\b
NAMES
# shellcheck disable=SC2016 # the stubs print the names file as it is
printf '#!/bin/sh\ncat "%s"\n' "$hostile/names" >"$hostile/bin/virsh"
# shellcheck disable=SC2016
printf '#!/bin/sh\n[ "$1" = plugins ] && grep -v " " "%s" | sed "s/\\$/  a summary/"\n' \
  "$hostile/names" >"$hostile/bin/sockhook"
chmod +x "$hostile/bin/virsh" "$hostile/bin/sockhook"
# hostile_words WORD... : what the completion offers with the stubs first on PATH, one per
# line as they are, run in an empty directory where anything that runs would leave a file.
hostile_words() {
  (cd "$hostile/cwd" && PATH="$hostile/bin:$PATH" bash --norc --noprofile -c '
    file=$1; shift
    source "$file"
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _sockhook sockhook "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$file" "$@") | sort
}
names=$(sort "$hostile/names")
check "'sockhook cleanup ' offers hostile domain names as they are" "$names" \
  "$(hostile_words sockhook cleanup '')"
check "'--domain ' offers hostile domain names as they are" "$names" \
  "$(hostile_words sockhook policy allow --domain '')"
# `sockhook plugins` prints "NAME  SUMMARY": a plugin name has no space (the stub prints the
# names without one).
check "'sockhook plugins ' offers hostile plugin names as they are" "$(grep -v ' ' <<<"$names")" \
  "$(hostile_words sockhook plugins '')"
check "'sockhook refresh acc' offers 'acc see bind' as one candidate" "acc see bind" \
  "$(hostile_words sockhook refresh acc)"
check "'sockhook refresh acc\\ s' (typed quoted) offers 'acc see bind'" "acc see bind" \
  "$(hostile_words sockhook refresh 'acc\ s')"
check "sockhook refresh typed with a double quote offers the quoted name" "it's \"quoted\"" \
  "$(hostile_words sockhook refresh '"it'"'"'s')"
check "'sockhook refresh \$(' offers only the name that starts so" '$(touch${IFS}ran-dollar)' \
  "$(hostile_words sockhook refresh '$(')"
check "completing hostile names ran nothing (no file appeared)" "" "$(ls -A "$hostile/cwd")"

# TAB in a real interactive bash (readline on a pseudo-terminal), then Enter: the arguments
# `sockhook` gets, as the shell split the line readline completed. This is what a person sees:
# with the completion of before issue 22, 'acc' became `acc` and "a\'" stayed "a'".
if command -v python3 >/dev/null; then
  typed() {  # typed FRAMEWORK LINE
    local fw=()
    [[ $1 == yes ]] && fw=(/usr/share/bash-completion/bash_completion)
    PATH="$tmp:$PATH" python3 "$src/tests/readline_complete.py" "$file" "$2" "${fw[@]}" 2>&1
  }
  for fw in "${frameworks[@]}"; do
    check "TAB after 'sockhook refresh acc' runs it on 'acc see bind' (framework: $fw)" \
      "<refresh><acc see bind>" "$(typed "$fw" "sockhook refresh acc")"
    check "TAB after 'sockhook cleanup Win' runs it on 'Windows 11' (framework: $fw)" \
      "<cleanup><Windows 11>" "$(typed "$fw" "sockhook cleanup Win")"
    check "TAB after \"sockhook doctor a\\'\" runs it on \"a'b\" (framework: $fw)" \
      "<doctor><a'b>" "$(typed "$fw" "sockhook doctor a\\'")"
    check "TAB after 'sockhook policy allow --domain ü' gives 'ü-test' (framework: $fw)" \
      "<policy><allow><--domain><ü-test>" "$(typed "$fw" "sockhook policy allow --domain ü")"
  done
else
  echo "# (no python3: TAB through a real readline not checked)"
fi

# Each command's options, as the completion offers them after '-', against its --help.
for cmd in "" plan annotate status refresh cleanup doctor plugins policy "policy allow" \
  "policy revoke" "policy list" hook; do
  # shellcheck disable=SC2086 # "policy allow" is two words on purpose
  help=$("$bin" $cmd --help | awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 }
    on && /^  -/ { print $1 }' | tr ',' '\n' | grep -E '^-' | sort -u)
  # shellcheck disable=SC2086
  offered=$(complete_words no sockhook $cmd -)
  check "'sockhook ${cmd:+$cmd }-' offers the options --help names" "$help" "$offered"
done

echo "# $pass passed, $fail failed"
((fail == 0))
