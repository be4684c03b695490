#!/usr/bin/env bash
# Install, build and run every test: the normal build (unit, integration,
# conformance, valgrind), the ASan+UBSan build, and the bounded fuzz runs.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: hack/test.sh [--quick] [--no-deps] [--help]

  --quick     normal build only (no sanitizer build, no fuzzing)
  --no-deps   do not run hack/install-deps.sh

Build directories: build/ (RelWithDebInfo), build-asan/ (ASan+UBSan),
build-fuzz/ (clang libFuzzer).  Needs root for the namespace, network and
mkfs tests; without root those tests report "skipped".

Environment:
  ATE_FUZZ_SECONDS   seconds per fuzz target (default 20)
  ATE_TEST_JOBS      parallel ctest jobs (default: number of CPUs)
USAGE
}

quick=0
deps=1
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-deps) deps=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
jobs=${ATE_TEST_JOBS:-$(nproc)}
fuzz_seconds=${ATE_FUZZ_SECONDS:-20}
start=$(date +%s)
results=()
status=0

phase() { printf '\n==== %s ====\n' "$*"; }

run_ctest() {
  local name=$1 dir=$2
  shift 2
  local t0=$SECONDS
  if ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@"; then
    results+=("$name: passed ($((SECONDS - t0)) s)")
  else
    results+=("$name: FAILED ($((SECONDS - t0)) s)")
    status=1
  fi
}

if ((deps)); then
  phase "dependencies"
  hack/install-deps.sh
fi

phase "build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
phase "tests (normal build)"
run_ctest "normal build" build

if ((!quick)); then
  phase "build (ASan+UBSan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DATE_SANITIZE=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  phase "tests (ASan+UBSan)"
  run_ctest "sanitizer build" build-asan -LE 'valgrind|fuzz|bench|nosan'

  phase "build (libFuzzer)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DATE_FUZZ=ON -DATE_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
  cmake --build build-fuzz -j "$jobs"
  phase "fuzzing (${fuzz_seconds} s per target)"
  run_ctest "fuzzing" build-fuzz -L fuzz
fi

phase "summary"
printf '%s\n' "${results[@]}"
echo "total: $(( $(date +%s) - start )) s"
if ((status)); then
  echo "hack/test.sh: FAILED"
else
  echo "hack/test.sh: all passed"
fi
exit "$status"
