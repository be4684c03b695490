#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The admission unit tests and the CLI under valgrind: no invalid accesses,
# no definite or indirect leaks.
set -o errexit -o nounset -o pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "Usage: $0   (ATE_BUILD_DIR, ATE_SOURCE_DIR as set by ctest)"
  exit 0
fi
src=${ATE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
bin=${ATE_BUILD_DIR:?ATE_BUILD_DIR is not set}/bin
if ! command -v valgrind >/dev/null 2>&1; then
  echo "SKIP: valgrind is not installed"
  exit 77
fi
if [[ "${ATE_SANITIZED:-0}" == 1 ]]; then
  echo "SKIP: sanitizer build (valgrind runs on the normal build)"
  exit 77
fi
vg=(valgrind -q --error-exitcode=99 --leak-check=full "--show-leak-kinds=definite,indirect"
  "--errors-for-leak-kinds=definite,indirect")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"${vg[@]}" "$bin/test_admission" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"${vg[@]}" "$bin/test_admission_cases" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"${vg[@]}" "$bin/fuzz_admission_yaml_regress" "$src/test/fuzz/corpus/admission_yaml" \
  >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
# The CLI: violations (exit 1) and renderings (exit 0) are fine; 99 is valgrind.
rc=0
"${vg[@]}" "$bin/ate-admission" validate -o yaml "$src/deploy/examples/counter-microvm.yaml" \
  "$src/test/fuzz/corpus/admission_yaml/workerpool-template.yaml" >/dev/null 2>"$tmp/log" || rc=$?
if ((rc != 1)); then cat "$tmp/log"; echo "validate: exit $rc"; exit 1; fi
"${vg[@]}" "$bin/ate-admission" render-workerpool -o json \
  "$src/test/integration/admission/golden/workerpool-microvm-template.yaml" >/dev/null \
  2>"$tmp/log" || { cat "$tmp/log"; exit 1; }
echo "valgrind: clean"
