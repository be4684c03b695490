#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the snapshot unit tests and the ateom-snapshot CLI (pack, unpack,
# inspect, a malformed input, pipes) under valgrind: no leaks, no invalid
# accesses, no fd left open.  Exit 77 (skipped) without valgrind or in a
# sanitizer build.
set -o errexit -o nounset -o pipefail

usage() {
  echo "Usage: valgrind.sh [BUILD_DIR]   (default: \$ATE_BUILD_DIR)"
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
esac

build=${1:-${ATE_BUILD_DIR:?set ATE_BUILD_DIR or pass the build directory}}
if ! command -v valgrind >/dev/null || [[ -n "${ATE_SANITIZED:-}" ]]; then
  echo "SKIP: needs valgrind and a build without sanitizers"
  exit 77
fi
bin=$build/bin/ateom-snapshot
work=$(mktemp -d /var/tmp/ate-snapshot-vg.XXXXXX)
trap 'rm -rf "$work"' EXIT

vg() {
  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 "$@"
}

vg "$build/bin/test_snapshot" >"$work/unit.log" 2>&1 || { cat "$work/unit.log"; exit 1; }

/usr/bin/python3 - "$work/src" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(64 << 20)
    os.pwrite(f.fileno(), os.urandom(3 << 20), 1 << 20)
    os.pwrite(f.fileno(), b"tail" * 1024, (64 << 20) - 4096)
PY
vg "$bin" pack --threads 2 "$work/src" "$work/snap"
vg "$bin" inspect --json "$work/snap" >/dev/null
vg "$bin" unpack "$work/snap" "$work/out"
cmp "$work/src" "$work/out"
vg "$bin" pack - - <"$work/src" | vg "$bin" unpack - "$work/out2"
cmp "$work/src" "$work/out2"
head -c 1000 "$work/snap" >"$work/bad"
status=0
vg "$bin" unpack "$work/bad" "$work/out3" 2>"$work/bad.log" || status=$?
if [[ $status -ne 1 ]] || ! grep -q "truncated stream" "$work/bad.log"; then
  cat "$work/bad.log"
  echo "FAIL: malformed input: exit $status"
  exit 1
fi
echo "1 passed, 0 failed"
