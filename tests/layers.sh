#!/usr/bin/env bash
# layers.sh - hook/'s folders form the layers docs/architecture.md lists under "The folders":
# a file includes only headers of its own folder and of the folders listed before it.
#
#   bash tests/layers.sh [SOURCE_DIR]
#
# Fails, naming file:line and the include, when a file reaches a folder listed after its own;
# and when a folder of hook/ is missing from the table, or the table names one that is not
# there. Needs no root and no build.
set -euo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$src"
doc=docs/architecture.md
[[ -r $doc ]] || { echo "layers: $src/$doc is missing"; exit 1; }

# The table's first column, in order: | `base/` | ... |
mapfile -t order < <(sed -n '/^## The folders/,/^## /p' "$doc" | sed -n 's/^| `\([a-z_]*\)\/` |.*/\1/p')
((${#order[@]} > 0)) || { echo "layers: $doc has no table of folders under \"## The folders\""; exit 1; }
declare -A rank=()
for i in "${!order[@]}"; do rank[${order[i]}]=$i; done

status=0
problem() { echo "layers: $*"; status=1; }

# holder/ is its own program: it is outside the layers and includes nothing of sockhook.
for dir in hook/*/; do
  f=$(basename "$dir")
  [[ $f == holder || -n ${rank[$f]+x} ]] || problem "hook/$f/ is not in the table of $doc"
done
for f in "${order[@]}"; do [[ -d hook/$f ]] || problem "$doc lists $f/, which hook/ does not have"; done

while IFS=: read -r file line text; do
  from=${file#hook/}
  from=${from%%/*}
  to=$(sed -n 's/^#include "\([a-z_]*\)\/.*/\1/p' <<<"$text")
  [[ -n $to ]] || continue
  if [[ $from == holder ]]; then
    problem "$file:$line: the holder includes sockhook's $to/ ($text)"
  elif [[ -n ${rank[$to]+x} && -n ${rank[$from]+x} ]] && ((rank[$to] > rank[$from])); then
    problem "$file:$line: $from/ includes $to/, which $doc lists after it ($text)"
  fi
done < <(grep -n '^#include "' hook/*/*.cpp hook/*/*.hpp)

((status == 0)) && echo "layers: ${#order[@]} folders, every include reaches its own folder or one listed before it"
exit "$status"
