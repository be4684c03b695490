#!/usr/bin/env bash
# Run every benchmark (test/bench/bench_*.sh) against a build and print
# their tables: medians and ratios against a baseline measured in the same
# run.  Benchmarks are not tests: they print numbers, they do not pass/fail
# on timing.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: hack/bench.sh [--build DIR] [--only NAME] [--help]

  --build DIR   build directory with the binaries (default: build, built if missing)
  --only NAME   run only test/bench/bench_NAME.sh

Each benchmark prints a table of medians with the ratio against its
baseline.  Scratch data goes under \$ATE_BENCH_DIR (default /var/tmp/ateom-bench).
USAGE
}

build=build
only=""
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
if [[ ! -d "$build" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j "$(nproc)" >/dev/null
export ATE_BUILD_DIR
ATE_BUILD_DIR=$(cd "$build" && pwd)
export ATE_SOURCE_DIR
ATE_SOURCE_DIR=$(pwd)
export ATE_BENCH_DIR=${ATE_BENCH_DIR:-/var/tmp/ateom-bench}
mkdir -p "$ATE_BENCH_DIR"

shopt -s nullglob
ran=0
for b in test/bench/bench_*.sh; do
  name=$(basename "$b" .sh)
  name=${name#bench_}
  if [[ -n "$only" && "$only" != "$name" ]]; then
    continue
  fi
  printf '\n== %s ==\n' "$name"
  bash "$b"
  ran=$((ran + 1))
done
if ((ran == 0)); then
  echo "bench: no benchmark matched" >&2
  exit 1
fi
