#!/usr/bin/env bash
# The controls analysis on a grid that exercises the reference store (TIF on TPO) and shared training (the oracle's
# and TokenUnlearn hard's random_k controls), computed from nothing twice: with this checkout and with the base
# revision BASE (its tueval/ first on PYTHONPATH, in every worker), each in its own copy of a prepared workdir
# (without runs); then every CSV of the two report folders compared byte for byte.
#
# Usage: bash benchmarks/same_reports.sh PREPARED_WORKDIR [BASE] [OUT]   (default BASE 7b1cc06, OUT a temp folder)
set -euo pipefail
src=$(cd "$1" && pwd); base=${2:-7b1cc06}; out=${3:-$(mktemp -d)}
repo=$(cd "$(dirname "$0")/.." && pwd); py="$repo/.venv/bin/python"
mkdir -p "$out"; rm -rf "$out/code" "$out"/wd_* "$out"/rep_*
git -C "$repo" archive --format=tar "$base" tueval tueval_analyses | (mkdir -p "$out/code" && tar -x -C "$out/code")
cat > "$out/grid.yaml" <<'EOF'
objectives: [ga, tpo]
seeds: [0, 1]
methods:
  - {preset: tokenunlearn_hard, controls: [random_k], eval_every: 4}
  - {preset: oracle_hard, controls: [random_k], eval_every: 4}
  - {preset: tif, controls: [random_k_fixed], eval_every: 4}
EOF
for side in new base; do
  mkdir -p "$out/wd_$side"
  (cd "$src" && tar cf - --exclude=./runs --exclude=./analyses .) | (cd "$out/wd_$side" && tar xf -)
  pp=""; [ "$side" = base ] && pp="$out/code"
  start=$(date +%s)
  (cd "$out" && PYTHONPATH="$pp" "$py" -m tueval analyze controls --config grid.yaml --workdir "wd_$side" \
     --reports "rep_$side" --profile quick --quiet > "log_$side.txt" 2>&1)
  echo "$side: $(ls "$out/wd_$side/runs" | wc -l) runs, $(grep -l same_training_as "$out/wd_$side"/runs/*/summary.json \
    2>/dev/null | wc -l) filled from another, $(( $(date +%s) - start )) s"
done
"$py" - "$out" <<'EOF'
import filecmp, pathlib, sys
out = pathlib.Path(sys.argv[1])
a, b = out / "rep_new", out / "rep_base"
fa = sorted(p.relative_to(a) for p in a.rglob("*.csv"))
fb = sorted(p.relative_to(b) for p in b.rglob("*.csv"))
diff = [str(p) for p in fa if p in fb and not filecmp.cmp(a / p, b / p, shallow=False)]
print(f"CSV files: {len(fa)} (new) and {len(fb)} (base), same names: {fa == fb}; differing: {diff or 'none'}")
EOF
