#!/usr/bin/env bash
# Runs every Fuzz* target in the module for the given time each (default 2m),
# then copies up to 40 of the inputs the fuzzer found interesting into the
# package's testdata/fuzz/<Target>/, so the seed corpus grows in git.
# Usage: scripts/fuzz.sh [fuzztime] [package-pattern]
set -euo pipefail
fuzztime="${1:-2m}"
only="${2:-}"
cache="$(go env GOCACHE)/fuzz"
module="$(go list -m)"
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  dir="$(dirname "${f#./}")"
  [ -n "$only" ] && [[ "$dir" != *"$only"* ]] && continue
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "== ./$dir $name ($fuzztime)"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel="${FUZZ_PARALLEL:-2}" "./$dir"
    found="$cache/$module/$dir/$name"
    if [ -d "$found" ]; then
      mkdir -p "$dir/testdata/fuzz/$name"
      ls "$found" | head -40 | while read -r seed; do cp -n "$found/$seed" "$dir/testdata/fuzz/$name/" || true; done
    fi
  done
done

# The model-based test of transaction pooling (test/e2e txmodel_test.go):
# a longer run with a random seed, printed so that a failure can be
# replayed with MULTIGRES_MODEL_SEED.
if [ -z "$only" ] || [[ "test/e2e" == *"$only"* ]]; then
  seed="${MULTIGRES_MODEL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
  steps="${MULTIGRES_MODEL_STEPS:-100000}"
  echo "== ./test/e2e TestTxModelRandomSequences (seed $seed, $steps steps per pool size)"
  MULTIGRES_MODEL_SEED="$seed" MULTIGRES_MODEL_STEPS="$steps" go test -count=1 -timeout 60m -run '^TestTxModelRandomSequences$' ./test/e2e
fi
