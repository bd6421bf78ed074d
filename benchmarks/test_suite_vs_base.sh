#!/usr/bin/env bash
# The fast suite of this checkout against the suite of a base revision, on the same machine in one run, A B A B.
# Usage: bash benchmarks/test_suite_vs_base.sh [BASE_REV] [ROUNDS]   (defaults: c49fcaa, the revision at which
# issue #10 measured "about 170 s"; 2 rounds). Each command is the `make test` of its own revision. The base gets
# its own worktree and venv beside this checkout (../tueval_<rev>, so that its tests find ../shared as they did
# then); nothing in this checkout is changed. Writes benchmarks/test_suite_vs_base.csv and prints the ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:-c49fcaa}
ROUNDS=${2:-2}
BASE="$ROOT/../tueval_$REV"
if [ ! -d "$BASE" ]; then git -C "$ROOT" worktree add -f "$BASE" "$REV" -q; fi
if [ ! -x "$BASE/.venv/bin/python" ]; then
  python3 -m venv "$BASE/.venv"
  "$BASE/.venv/bin/pip" install -q "torch==2.13.0"
  "$BASE/.venv/bin/pip" install -q -e "$BASE[test]"
fi
make -C "$ROOT" setup >/dev/null
CSV="$ROOT/benchmarks/test_suite_vs_base.csv"
TMP=$(mktemp)
echo "round,code,revision,passed,failed,errors,pytest_s,wall_s,cpu_s,load_start" > "$TMP"
count() { echo "$1" | grep -oE "[0-9]+ $2" | grep -oE "[0-9]+" || echo 0; }
measure() {  # $1 round, $2 label, $3 dir, $4.. pytest args
  local round=$1 label=$2 dir=$3; shift 3
  local log; log=$(mktemp)
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  ( cd "$dir" && /usr/bin/time -f "TIME %e %U %S" .venv/bin/python -m pytest "$@" -p no:cacheprovider ) >"$log" 2>&1 || true
  local summary; summary=$(grep -E "passed|failed" "$log" | tail -1)
  local pytest_s; pytest_s=$(echo "$summary" | grep -oE "in [0-9.]+s" | grep -oE "[0-9.]+")
  read -r _ wall user sys < <(grep "^TIME" "$log")
  echo "$round,$label,$(git -C "$dir" rev-parse --short HEAD),$(count "$summary" passed),$(count "$summary" failed),$(count "$summary" error),$pytest_s,$wall,$(echo "$user + $sys" | bc),$load" >> "$TMP"
  tail -1 "$TMP"
  rm -f "$log"
}
for r in $(seq 1 "$ROUNDS"); do
  measure "$r" base "$BASE" -m "not slow"
  measure "$r" current "$ROOT" -m "not slow" -n 2
done
mv "$TMP" "$CSV"
python3 - "$CSV" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for r in sorted({x["round"] for x in rows}):
    b, c = (next(x for x in rows if x["round"] == r and x["code"] == k) for k in ("base", "current"))
    print(f"round {r}: current/base pytest wall {float(c['pytest_s']) / float(b['pytest_s']):.2f}x "
          f"({c['pytest_s']} s / {b['pytest_s']} s), CPU {float(c['cpu_s']) / float(b['cpu_s']):.2f}x")
EOF
