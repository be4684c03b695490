#!/usr/bin/env bash
# The main job: install, build, start ateom-microvm on a private base path
# and drive it with ateomctl.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: hack/demo.sh [--no-deps] [--build DIR] [--help]

Builds the project, starts ateom-microvm on a temporary base path and calls
it with ateomctl: a health check, a request with a path-trick actor id
(rejected with INVALID_ARGUMENT) and a RunWorkload.  Cleans up after itself.

  --no-deps     do not run hack/install-deps.sh
  --build DIR   build directory (default: build)
USAGE
}

deps=1
build=build
while (($#)); do
  case "$1" in
    --no-deps) deps=0; shift ;;
    --build) build=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
if ((deps)); then
  hack/install-deps.sh
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target ateom-microvm ateomctl >/dev/null

work=$(mktemp -d /tmp/ateom-demo.XXXXXX)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

bin=$build/bin
pod=demo-pod
sock=$work/base/ateoms/$pod/ateom.sock
echo "demo: starting ateom-microvm (logs in $work/server.log)"
"$bin/ateom-microvm" --pod-uid="$pod" --base-path="$work/base" --run-dir="$work/run" \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  [[ -S "$sock" ]] && break
  sleep 0.05
done

ctl() { "$bin/ateomctl" --socket "$sock" --timeout 30s "$@"; }

echo "demo: ateomctl health"
ctl health
echo "demo: ateomctl run with actor id ../etc (must be rejected)"
if ctl run --namespace default --template counter-microvm --actor ../etc \
  --container counter --asset kata-kernel=/k --asset kata-image=/i; then
  echo "demo: FAILED: a path-trick actor id was accepted" >&2
  exit 1
fi
echo "demo: ateomctl run"
rc=0
ctl run --namespace default --template counter-microvm --actor a1 --container counter \
  --asset kata-kernel=/k --asset kata-image=/i || rc=$?
echo "demo: RunWorkload answered with status $rc"
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
echo "demo: server log:"
cat "$work/server.log"
echo "demo: server answered every call and stopped cleanly"
