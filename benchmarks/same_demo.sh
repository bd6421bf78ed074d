#!/usr/bin/env bash
# The whole small demo (`tueval demo --profile small`: every analysis, both model pairs' reports) computed from
# nothing twice, with this checkout and with the base revision BASE (its tueval/ first on PYTHONPATH, in every
# worker), each in its own copy of a prepared small workdir without runs, analyses or the reference evaluations;
# then every CSV of the two report folders compared: decisions, and the largest numeric difference per table.
#
# Usage: bash benchmarks/same_demo.sh PREPARED_SMALL_WORKDIR [BASE] [OUT]   (default BASE 3f1a236: the commit whose
# `make demo` wrote the committed reports/; OUT a temp folder)
set -euo pipefail
src=$(cd "$1" && pwd); base=${2:-3f1a236}; out=${3:-$(mktemp -d)}
repo=$(cd "$(dirname "$0")/.." && pwd); py="$repo/.venv/bin/python"
mkdir -p "$out"; rm -rf "$out/code" "$out"/wd_* "$out"/rep_*
git -C "$repo" archive --format=tar "$base" tueval tueval_analyses | (mkdir -p "$out/code" && tar -x -C "$out/code")
for side in new base; do
  mkdir -p "$out/wd_$side"
  (cd "$src" && tar cf - --exclude=./runs --exclude=./analyses --exclude=./eval .) | (cd "$out/wd_$side" && tar xf -)
  pp=""; [ "$side" = base ] && pp="$out/code"
  start=$(date +%s)
  (cd "$out" && PYTHONPATH="$pp" "$py" -m tueval demo --profile small --workdir "wd_$side" --reports "rep_$side" \
     --quiet > "log_$side.txt" 2>&1)
  echo "$side: $(ls "$out/wd_$side/runs" | wc -l) runs, $(( $(date +%s) - start )) s"
done
"$py" "$repo/benchmarks/compare_report_dirs.py" "$out/rep_new" "$out/rep_base"
