#!/usr/bin/env bash
# Runs `make test` RUNS times in a row, each beside a `make demo` started over and over,
# so that the suite meets the load a developer's laptop or a shared CI machine puts on
# it. A test that fails in any run is a defect: its name and the run are listed at the
# end, and the logs are kept in $OUT.
#
# Usage: hack/loaded-tests.sh [RUNS]        (make test-loaded RUNS=5)
set -uo pipefail
# Job control: each background job gets a process group of its own, so the loader and
# every process of the demo it runs stop together.
set -m

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-5}
OUT=${OUT:-$ROOT/bin/loaded-tests}
mkdir -p "$OUT"
rm -f "$OUT/demo-failures.txt"
cd "$ROOT"

# Build once before timing anything: the load is the demo, not a cold compile.
make testbins >/dev/null || { echo "make testbins failed: no test bed to load" >&2; exit 1; }

load() {
  local i=0
  while :; do
    i=$((i + 1))
    if ! make demo >"$OUT/demo-$1-$i.log" 2>&1; then
      echo "demo $i failed beside run $1 (log: $OUT/demo-$1-$i.log)" >>"$OUT/demo-failures.txt"
      # A demo that fails at once (a port taken, a build broken) would otherwise spin
      # and load the machine with nothing but its start.
      sleep 10
    fi
  done
}

loader=
stop_loader() {
  # Stop the loader and whatever demo it is running (the test bed's processes die with
  # the demo).
  if [ -n "$loader" ]; then
    kill -- -"$loader" 2>/dev/null
    wait "$loader" 2>/dev/null
    loader=
  fi
}
# Interrupted or killed, the script takes its loader down with it.
trap stop_loader EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
for run in $(seq 1 "$RUNS"); do
  load "$run" &
  loader=$!
  start=$SECONDS
  if make test TEST_ARGS=-v >"$OUT/test-$run.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: passed in $((SECONDS - start))s"
  else
    failed=$((failed + 1))
    echo "run $run: FAILED in $((SECONDS - start))s; failing tests:"
    grep -E '^\s*--- FAIL' "$OUT/test-$run.log" | sed 's/^/    /'
  fi
  stop_loader
done
[ -f "$OUT/demo-failures.txt" ] && cat "$OUT/demo-failures.txt"
echo "loaded make test: $passed passed, $failed failed (logs in $OUT)"
[ "$failed" -eq 0 ]
