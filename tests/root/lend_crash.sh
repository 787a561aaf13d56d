#!/bin/bash
# R3: SIGKILL the hook at random moments during prepare (bind with an ACL grant, bind of
# pulse/native with the cookie copied, and a proxy), then undo with `release`, `cleanup DOMAIN`
# or `cleanup --stale` in turn. Every time, the host must be byte-identical to before, with no
# mount, ACL entry, file, directory or proxy process left.
#
# The moments come from the hook itself, not from a guess at how fast this machine is: one
# uninterrupted prepare is timed first (start to journal, start to end). Even kills fall at a
# random moment in the whole prepare; odd kills wait until the journal exists (the hook is
# past planning and into effects) and then fall at a random moment in what is left, so some
# kills always land among the effects however slow or fast the machine is.
#
#   bash tests/root/lend_crash.sh /abs/path/to/sockhook [KILLS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/suite.bash" lend "$@"
kills=${2:-100}

lend_setup 2f1e0d9c-8b7a-4695-a4b3-c2d1e0f9a801 pipewire-0 pulse

xml=$(lend_domain crashy "$U" pipewire:bind pulseaudio:bind wayland:proxy:no)
printf '%s' "$xml" >"$TMP/domain.xml"
host_snapshot >"$TMP/before"

# now_us : microseconds on the monotonic-enough wall clock, for the calibration only.
now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }
# journal_or_exit PID : returns once the journal exists or PID has ended (bounded by PID's
# own life: a hook that hangs is killed by the caller's kill, never waited for here).
journal_or_exit() { while [[ ! -e /run/sockhook/state/$U.xml ]] && kill -0 "$1" 2>/dev/null; do :; done; }

t0=$(now_us)
"$SOCKHOOK" hook --config-dir "$etc" crashy prepare begin - <"$TMP/domain.xml" 2>"$TMP/hook.err" &
pid=$!
journal_or_exit "$pid"
t_journal=$(($(now_us) - t0))
wait "$pid" || die "an uninterrupted prepare failed: $(cat "$TMP/hook.err")"
t_total=$(($(now_us) - t0))
lend_hook crashy release end "$xml" || die "release after the timed prepare: $(cat "$TMP/hook.err")"
same_as_before "$TMP/before" || die "the timed prepare and its release left the host changed"
say "one prepare: journal after $t_journal us, done after $t_total us"
t_rest=$((t_total > t_journal ? t_total - t_journal : 1))

mid=0 before_journal=0 after=0 busy=0
undo=(release cleanup-name cleanup-stale)
for ((i = 0; i < kills; i++)); do
  "$SOCKHOOK" hook --config-dir "$etc" crashy prepare begin - <"$TMP/domain.xml" 2>/dev/null &
  pid=$!
  if ((i % 2 == 0)); then
    delay=$(((RANDOM * 32768 + RANDOM) % t_total))
  else
    journal_or_exit "$pid"
    delay=$(((RANDOM * 32768 + RANDOM) % t_rest))
  fi
  sleep "$(printf "%d.%06d" $((delay / 1000000)) $((delay % 1000000)))"
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
    cleanup-stale)
      "$SOCKHOOK" cleanup --stale >"$TMP/cleanup.out" 2>"$TMP/cleanup.err" || not_ok "kill $i: cleanup --stale: $(cat "$TMP/cleanup.err")"
      # The killed hook's children never hold the domain's lock (fork_child closes it first,
      # and they die with the hook): cleanup --stale must find the lock free
      # (tests/root/lend_crash_children.sh holds a child there on purpose).
      if grep -q "^$U: left alone" "$TMP/cleanup.out"; then
        busy=$((busy + 1))
        not_ok "kill $i: cleanup --stale found $U's lock held after the hook was killed"
      fi
      ;;
  esac
  if ! same_as_before "$TMP/before"; then
    not_ok "kill $i (after ${delay} us, undone by ${undo[i % 3]}): host differs"
    break
  fi
done
echo "crash: $kills SIGKILLs over a ${t_total} us prepare (half after the journal appeared): $mid mid-prepare (journal present), $before_journal before the first journal write, $after after prepare finished; each undone by release / cleanup NAME / cleanup --stale in turn; cleanup --stale found the lock held after the kill $busy time(s)"
((mid > 0)) || not_ok "no kill landed in the middle of a prepare"
((FAIL == 0)) && ok "crash: host byte-identical after every kill and undo"
finish
