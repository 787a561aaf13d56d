#!/bin/bash
# Runs every libFuzzer target for a while, on a copy of its seed corpus.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
#
# BUILD_DIR was configured with -DSOCKHOOK_FUZZ=ON (clang). Exits non-zero if any target
# crashes, leaks or times out; the crashing input is kept in BUILD_DIR/fuzz-artifacts/.
#
# Each target's seeds are built at run time in a temporary directory: the files sockhook
# ships that it parses (listed in tests/fuzz/shipped-seeds: plugins/, xml-examples/, dist/),
# so they can never go stale, plus tests/fuzz/corpus/TARGET/, which holds only inputs that
# ship nowhere (hostile or odd cases). tests/fuzz_seeds.sh (ctest, unit) keeps it that way.
set -u
build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "$build" && pwd)
work=$(mktemp -d /tmp/sockhook-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"

# The shipped files TARGET parses, one per line, relative to the source tree; a glob that
# matches nothing is printed as written, and then reported as missing.
shipped_seeds() {
  local line glob
  while read -r -a line; do
    [[ ${line[0]:-} == "$1" ]] || continue
    for glob in "${line[@]:1}"; do
      (cd "$top" && compgen -G "$glob") || echo "$glob"
    done
  done < <(grep -v '^#' "$here/shipped-seeds")
}

status=0
found=0
for src in "$here"/*_fuzz.cpp; do
  name=$(basename "$src" .cpp)
  seeds=${name%_fuzz}
  bin=$build/$name
  if [[ ! -x $bin ]]; then
    echo "$name: MISSING (not built in $build)"
    status=1
    continue
  fi
  found=$((found + 1))
  corpus=$work/$seeds
  mkdir -p "$corpus"
  # Copies, so that neither the shipped files nor the repository's corpus is ever modified.
  shipped=0
  while IFS= read -r f; do
    if [[ -f $top/$f ]]; then
      cp "$top/$f" "$corpus/shipped-${f//\//-}"
      shipped=$((shipped + 1))
    else
      echo "$name: MISSING seed $f (moved? update $here/shipped-seeds)"
      status=1
    fi
  done < <(shipped_seeds "$seeds")
  own=0
  if [[ -d $here/corpus/$seeds ]]; then
    cp -r "$here/corpus/$seeds/." "$corpus/"
    own=$(find "$here/corpus/$seeds" -type f | wc -l)
  fi
  echo "$name: $((shipped + own)) seeds ($shipped shipped, $own from tests/fuzz/corpus/$seeds)"
  if ((shipped == 0)); then
    echo "$name: no shipped seed (add its line to $here/shipped-seeds)"
    status=1
  fi
  log=$work/$name.log
  "$bin" "$corpus" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  if [[ $rc -eq 0 ]]; then
    echo "$name: ok, ${execs:-?} execs (${rate:-?}/s) in ${seconds}s, ${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) after the run"
  else
    status=1
    echo "$name: FAILED (exit $rc) after ${execs:-?} execs; artifact(s):"
    ls "$artifacts" | grep "^$name-" | sed 's/^/  /'
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -5 | sed 's/^/  /'
  fi
done
if [[ $found -eq 0 ]]; then
  echo "no fuzz targets found in $build"
  exit 1
fi
exit $status
