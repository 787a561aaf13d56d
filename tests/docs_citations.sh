#!/usr/bin/env bash
# docs_citations.sh - the invariants and the contract that comments cite are in the repository,
# and the tests they name exist.
#
#   bash tests/docs_citations.sh [SOURCE_DIR]
#
# Fails, naming file:line, when:
#   - a comment in hook/, tests/, dist/, bench/, CMakeLists.txt or install.sh cites an
#     invariant number (a letter S or R and digits, as a word) that has no "### <number> "
#     entry in docs/invariants.md;
#   - such a file cites "SPEC §N" and docs/contract.md has no "## §N " section;
#   - docs/invariants.md names a test that does not exist: a bullet "- `tests/FILE`" must name
#     an existing file, and a quoted name after a unit test file must be one of its TEST_CASEs;
#   - an invariant names no test and does not say "no test yet".
# Needs no root and no build.
set -euo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$src"
invariants=docs/invariants.md
contract=docs/contract.md
status=0
problem() {
  echo "docs_citations: $*"
  status=1
}
for doc in "$invariants" "$contract"; do
  [[ -r $doc ]] || { echo "docs_citations: $src/$doc is missing"; exit 1; }
done

# Where citations live. The fuzz corpus is input data, not comments.
scan=(hook tests dist bench CMakeLists.txt install.sh)
cited() { grep -rnoIE "$1" "${scan[@]}" --exclude-dir=corpus || true; }

# 1. Every invariant number cited has an entry.
entries=$(sed -nE 's/^### ([SR][0-9]+) .*/\1/p' "$invariants")
n_inv=0
while IFS=: read -r file line num; do
  [[ -n $file ]] || continue
  n_inv=$((n_inv + 1))
  grep -qxF "$num" <<<"$entries" || problem "$file:$line: cites $num, which $invariants does not define"
done < <(cited '\b[SR][0-9]+\b')

# 2. Every "SPEC §N" cited has a section in the contract.
sections=$(sed -nE 's/^## §([0-9]+) .*/\1/p' "$contract")
n_spec=0
while IFS=: read -r file line cite; do
  [[ -n $file ]] || continue
  n_spec=$((n_spec + 1))
  num=${cite#SPEC §}
  num=${num%%.*}
  grep -qxF "$num" <<<"$sections" || problem "$file:$line: cites $cite, which $contract does not summarise"
done < <(cited 'SPEC §[0-9]+')

# 3. Every test named in the invariants exists, and 4. every entry names one or says why not.
n_tests=0
entry=""
entry_line=0
entry_tested=0
close_entry() {
  if [[ -n $entry && $entry_tested -eq 0 ]]; then
    problem "$invariants:$entry_line: $entry names no test and does not say \"no test yet\""
  fi
}
lineno=0
while IFS= read -r text; do
  lineno=$((lineno + 1))
  if [[ $text =~ ^###\ ([SR][0-9]+)\  ]]; then
    close_entry
    entry=${BASH_REMATCH[1]}
    entry_line=$lineno
    entry_tested=0
    continue
  fi
  [[ $text == *"no test yet"* ]] && entry_tested=1
  [[ $text =~ ^-\ \`(tests/[^\`]+)\`(\ \"([^\"]+)\")? ]] || continue
  path=${BASH_REMATCH[1]}
  name=${BASH_REMATCH[3]}
  entry_tested=1
  n_tests=$((n_tests + 1))
  if [[ ! -f $path ]]; then
    problem "$invariants:$lineno: names $path, which does not exist"
  elif [[ -n $name ]] && ! grep -qF "TEST_CASE(\"$name\"" "$path"; then
    problem "$invariants:$lineno: names \"$name\", which is no TEST_CASE in $path"
  fi
done <"$invariants"
close_entry

if ((status == 0)); then
  echo "docs_citations: ok: $n_inv invariant citations ($(wc -l <<<"$entries") entries)," \
    "$n_spec SPEC § citations, $n_tests named tests, all found"
fi
exit $status
