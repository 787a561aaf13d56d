#!/usr/bin/env bash
# fuzz_seeds.sh - every fuzzer starts from the files sockhook ships, and the repository keeps
# no copy of them (a copy goes stale as soon as the original changes).
#
#   bash tests/fuzz_seeds.sh [SOURCE_DIR]
#
# tests/fuzz/run.sh builds each target's corpus at run time from the globs in
# tests/fuzz/shipped-seeds plus tests/fuzz/corpus/TARGET/. This fails, naming the file, when:
#   - tests/fuzz/shipped-seeds is missing, or a fuzzer (tests/fuzz/NAME_fuzz.cpp) has no line;
#   - a line names no fuzzer, or one of its globs matches no file, or only empty ones;
#   - tests/fuzz/corpus/ has a directory that is no fuzzer's;
#   - a file under tests/fuzz/corpus/ is a copy of a shipped file (plugins/, xml-examples/,
#     dist/ or a seed): the same content, the same name, or more than half of its lines.
# Needs no root and no build.
set -euo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$src"
list=tests/fuzz/shipped-seeds
status=0
problem() {
  echo "fuzz_seeds: $*"
  status=1
}

mapfile -t targets < <(for f in tests/fuzz/*_fuzz.cpp; do [[ -f $f ]] && basename "$f" _fuzz.cpp; done)
((${#targets[@]} > 0)) || { echo "fuzz_seeds: no tests/fuzz/*_fuzz.cpp in $src"; exit 1; }
declare -A fuzzer=()
for t in "${targets[@]}"; do fuzzer[$t]=1; done
is_target() { [[ -n ${fuzzer[$1]:-} ]]; }

# 1. Each fuzzer has a line, each line a fuzzer, and each glob matches non-empty files.
seeds=()
declare -A listed=()
if [[ ! -r $list ]]; then
  problem "$list is missing: the fuzzers would start from no shipped file"
else
  lineno=0
  while read -r -a line; do
    lineno=$((lineno + 1))
    [[ ${#line[@]} -eq 0 || ${line[0]} == \#* ]] && continue
    target=${line[0]}
    listed[$target]=1
    is_target "$target" || problem "$list:$lineno: $target has no tests/fuzz/${target}_fuzz.cpp"
    ((${#line[@]} > 1)) || problem "$list:$lineno: $target lists no file"
    for glob in "${line[@]:1}"; do
      mapfile -t matched < <(compgen -G "$glob" || true)
      nonempty=0
      for f in "${matched[@]}"; do
        [[ -f $f && -s $f ]] || continue
        nonempty=$((nonempty + 1))
        seeds+=("$f")
      done
      ((nonempty > 0)) || problem "$list:$lineno: $glob matches no non-empty file: $target would start without it"
    done
  done <"$list"
fi
for t in "${targets[@]}"; do
  [[ -n ${listed[$t]:-} ]] || problem "tests/fuzz/${t}_fuzz.cpp: no line in $list names its shipped seeds"
done

# 2. The corpus holds only what ships nowhere, in one directory per fuzzer.
for d in tests/fuzz/corpus/*/; do
  [[ -d $d ]] || continue
  name=$(basename "$d")
  is_target "$name" || problem "$d: no tests/fuzz/${name}_fuzz.cpp reads it"
done
mapfile -t shipped < <({
  find plugins xml-examples dist -type f -size +0 2>/dev/null
  ((${#seeds[@]} == 0)) || printf '%s\n' "${seeds[@]}"
} | sort -u)
# The non-blank lines of a file.
lines() { grep -v '^[[:space:]]*$' "$1" || true; }
# Why file $1 is a copy of a shipped file, if it is: the same content, else the same name,
# else the shipped file that holds most (more than half) of its lines.
copy_of() {
  local f=$1 s total same best=0 best_s=""
  for s in "${shipped[@]}"; do
    cmp -s "$f" "$s" && { echo "$s (the same content)"; return; }
  done
  for s in "${shipped[@]}"; do
    [[ $(basename "$f") == "$(basename "$s")" ]] && { echo "$s (the same name)"; return; }
  done
  total=$(lines "$f" | wc -l)
  ((total >= 3)) || return 0
  for s in "${shipped[@]}"; do
    same=$(lines "$f" | grep -cxFf <(lines "$s") || true)
    ((same > best)) && { best=$same; best_s=$s; }
  done
  ((2 * best > total)) && echo "$best_s ($best of its $total lines)"
  return 0
}
n_corpus=0
while IFS= read -r f; do
  n_corpus=$((n_corpus + 1))
  why=$(copy_of "$f")
  [[ -z $why ]] || problem "$f: a copy of $why; run.sh seeds from the original at each run," \
    "so delete the copy, or keep (renamed) only what ships nowhere"
done < <(find tests/fuzz/corpus -type f 2>/dev/null | sort)

if ((status == 0)); then
  echo "fuzz_seeds: ok: ${#targets[@]} fuzzers, ${#seeds[@]} shipped seeds," \
    "$n_corpus hand-made corpus files, none a copy"
fi
exit $status
