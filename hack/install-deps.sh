#!/usr/bin/env bash
# Install everything the build, the tests, the simulator and the benchmarks
# need on Debian 12.  Idempotent and fast when everything is present.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: hack/install-deps.sh [--help]

Installs the Debian packages (and the npm package used by the admission
policy test) that building and testing ateom-microvm needs.  Runs apt-get
only when something is missing.  Needs root.

Environment:
  ATE_NODE_DIR   where npm test helpers go (default: /opt/ateom-test-node)
USAGE
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

packages=(
  build-essential cmake pkg-config git ca-certificates
  libgrpc-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  libjson-c-dev libzstd-dev zstd libyaml-dev libssl-dev
  libnftables-dev nftables libnl-3-dev libnl-route-3-dev libcmocka-dev
  e2fsprogs xfsprogs util-linux coreutils iproute2 curl socat jq qemu-utils
  valgrind clang libclang-rt-14-dev hyperfine shellcheck yamllint
  buildah mmdebstrap
  golang-go golang-google-grpc-dev golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc
  golang-github-klauspost-compress-dev
  python3 python3-grpcio python3-protobuf python3-yaml
)
# A node/npm that did not come from Debian (with its own npm) must not be
# replaced: Debian's npm conflicts with it.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# @bufbuild/cel evaluates the admission policy's CEL expressions in the
# k8s/ agreement test.
node_dir=${ATE_NODE_DIR:-/opt/ateom-test-node}
if [[ ! -f "$node_dir/node_modules/@bufbuild/cel/package.json" ]]; then
  mkdir -p "$node_dir"
  echo "install-deps: installing @bufbuild/cel into $node_dir"
  npm install --silent --no-audit --no-fund --prefix "$node_dir" @bufbuild/cel@0.6.1 >/dev/null
fi

echo "install-deps: all dependencies present"
