#!/usr/bin/env bash
# RestoreWorkload latency split (own vs VMM/agent) and idle server memory.
set -o errexit -o nounset -o pipefail
if [[ "${1:-}" == "--help" ]]; then
  echo "Usage: ATE_BUILD_DIR=build ATE_SOURCE_DIR=. test/bench/bench_restore.sh (run by hack/bench.sh)"
  exit 0
fi
: "${ATE_BUILD_DIR:?set by hack/bench.sh}" "${ATE_SOURCE_DIR:?set by hack/bench.sh}"
cmake --build "$ATE_BUILD_DIR" --target ateom-microvm ch-sim ate_py_proto >/dev/null
exec /usr/bin/python3 "$ATE_SOURCE_DIR/test/bench/bench_restore.py"
