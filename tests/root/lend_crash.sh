#!/bin/bash
# R3: SIGKILL the hook at random moments during prepare (bind with an ACL grant, bind of
# pulse/native with the cookie copied, and a proxy), then undo with `release`, `cleanup DOMAIN`
# or `cleanup --stale` in turn. Every time, the host must be byte-identical to before, with no
# mount, ACL entry, file, directory or proxy process left.
#
#   bash tests/root/lend_crash.sh /abs/path/to/sockhook [KILLS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
kills=${2:-100}

lend_setup 2f1e0d9c-8b7a-4695-a4b3-c2d1e0f9a801 pipewire-0 pulse

xml=$(lend_domain crashy "$U" pipewire:bind pulseaudio:bind wayland:proxy:no)
printf '%s' "$xml" >"$TMP/domain.xml"
host_snapshot >"$TMP/before"

mid=0 before_journal=0 after=0
undo=(release cleanup-name cleanup-stale)
for ((i = 0; i < kills; i++)); do
  "$SOCKHOOK" hook --config-dir "$etc" crashy prepare begin - <"$TMP/domain.xml" 2>/dev/null &
  pid=$!
  delay=$((RANDOM % 8000))
  sleep "$(printf "0.%06d" "$delay")"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    if [[ -e /run/sockhook/state/$U.xml ]]; then mid=$((mid + 1)); else before_journal=$((before_journal + 1)); fi
  else
    wait "$pid" 2>/dev/null || true
    after=$((after + 1))
  fi
  case ${undo[i % 3]} in
    release) lend_hook crashy release end "$xml" ;;
    cleanup-name) "$SOCKHOOK" cleanup "$U" >/dev/null 2>"$TMP/cleanup.err" || not_ok "kill $i: cleanup $U: $(cat "$TMP/cleanup.err")" ;;
    cleanup-stale) "$SOCKHOOK" cleanup --stale >/dev/null 2>"$TMP/cleanup.err" || not_ok "kill $i: cleanup --stale: $(cat "$TMP/cleanup.err")" ;;
  esac
  if ! same_as_before "$TMP/before"; then
    not_ok "kill $i (after ${delay} us, undone by ${undo[i % 3]}): host differs"
    break
  fi
done
echo "crash: $kills SIGKILLs at 0-8 ms: $mid mid-prepare (journal present), $before_journal before the first journal write, $after after prepare finished; each undone by release / cleanup NAME / cleanup --stale in turn"
((mid > 0)) || not_ok "no kill landed in the middle of a prepare"
((FAIL == 0)) && ok "crash: host byte-identical after every kill and undo"
finish
