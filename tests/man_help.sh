#!/usr/bin/env bash
# man_help.sh - the man page and --help name the same commands and the same options.
#
#   bash tests/man_help.sh /path/to/sockhook dist/sockhook.8.scd
#
# --help comes from the binary (CLI11): `sockhook --help` lists the commands, `sockhook CMD
# --help` (and `sockhook policy VERB --help`) the options of each. The man page's source
# has one `## CMD` subsection per command under `# COMMANDS`, whose option paragraphs start
# with `*-`; its `# OPTIONS` section holds the global options. Every command's own -h/--help
# is documented once, globally. Any command or option named by one and not the other fails
# the test, naming it and the side it is missing from.
set -euo pipefail
bin=${1:?usage: $0 /path/to/sockhook dist/sockhook.8.scd}
scd=${2:?usage: $0 /path/to/sockhook dist/sockhook.8.scd}
[[ -x $bin && -r $scd ]] || { echo "man_help: cannot use $bin or $scd" >&2; exit 2; }

# The option names in the first column of CLI11's "Options:" block, one per line.
help_options() {
  awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 } on && /^  -/ { print $1 }' |
    tr ',' '\n' | grep -E '^-' | sort -u
}
# The names in CLI11's "Subcommands:" block.
help_commands() {
  awk '/^Subcommands:/ { on = 1; next } /^[^ ]/ { on = 0 } on && /^  [a-z]/ { print $1 }' | sort -u
}
# The options on the `*-...` paragraph lines of one man section (awk range given by $1).
man_options() {
  awk -v want="$1" '
    /^# / { top = substr($0, 3) }
    /^## / { sub_ = substr($0, 4) }
    /^# / { sub_ = "" }
    (want == "GLOBAL" && top == "OPTIONS" || top == "COMMANDS" && sub_ == want) && /^\*-/' "$scd" |
    grep -oE '(^|[^a-z-])--?[a-zA-Z][a-z0-9-]*' | sed -E 's/^[^-]+//' | sort -u
}

failures=0
# compare WHAT HELP_LIST MAN_LIST
compare() {
  local what=$1 only_help only_man
  only_help=$(comm -23 <(printf '%s\n' "$2" | sed '/^$/d') <(printf '%s\n' "$3" | sed '/^$/d'))
  only_man=$(comm -13 <(printf '%s\n' "$2" | sed '/^$/d') <(printf '%s\n' "$3" | sed '/^$/d'))
  if [[ -z $only_help && -z $only_man ]]; then
    echo "ok   - $what: $(printf '%s\n' "$2" | sed '/^$/d' | tr '\n' ' ')"
    return
  fi
  failures=$((failures + 1))
  [[ -n $only_help ]] && echo "FAIL - $what: in --help, not in the man page: $(tr "\n" " " <<<"$only_help")"
  [[ -n $only_man ]] && echo "FAIL - $what: in the man page, not in --help: $(tr "\n" " " <<<"$only_man")"
  return 0
}

top_help=$("$bin" --help)
commands=$(help_commands <<<"$top_help")
[[ -n $commands ]] || { echo "FAIL - sockhook --help lists no commands"; exit 1; }
policy_verbs=$("$bin" policy --help | help_commands)
all=$(
  printf "%s\n" "$commands"
  for v in $policy_verbs; do echo "policy $v"; done
)
man_commands=$(awk '/^# / { top = substr($0, 3) } top == "COMMANDS" && /^## / { print substr($0, 4) }' "$scd" | sort -u)
compare "commands" "$(sort -u <<<"$all")" "$man_commands"
compare "global options" "$(help_options <<<"$top_help")" "$(man_options GLOBAL)"

while IFS= read -r cmd; do
  [[ -n $cmd ]] || continue
  # shellcheck disable=SC2086 # "policy allow" is two words on purpose
  opts=$("$bin" $cmd --help | help_options | grep -vxE -- '-h|--help' || true)
  compare "$cmd" "$opts" "$(man_options "$cmd" | grep -vxE -- '-h|--help' || true)"
done <<<"$all"

if ((failures)); then
  echo "# $failures mismatch(es) between --help and dist/sockhook.8.scd"
  exit 1
fi
echo "# --help and the man page agree"
