#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the worker image from deploy/image/Dockerfile without any registry
# (buildah, on a Debian 12 base made by mmdebstrap) and runs the simulator
# demo (hack/demo.sh) with the image's ateom-microvm and ateomctl: proof that
# the image holds every runtime dependency and names its commit.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=image-demo.sh
# shellcheck source=hack/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kind/lib.sh"

IMAGE=localhost/ateom-microvm:image-demo
BASE_IMAGE=localhost/ate-base/debian:12
SUITE=bookworm

usage() {
  cat <<USAGE
Usage: hack/image-demo.sh [options]

Builds the ateom-microvm worker image and runs the simulator demo in it,
without a registry or a container daemon.  Needs root, buildah, mmdebstrap
and the network access apt needs (Debian's mirror).  Measured on 2 cores:
2 min 45 s from an empty work dir (base 93 s, image 70 s, checks and demo
2 s), up to twice that on a loaded machine; a second run reuses the base.
Not part of hack/test.sh.

  1. base image: mmdebstrap makes a Debian 12 ($SUITE, variant apt) root
     filesystem (cached in the work dir), imported as $BASE_IMAGE; it
     stands in for the Dockerfile's debian:12.12 and debian:12.12-slim
  2. worker image: hack/build-image.sh --engine buildah builds
     deploy/image/Dockerfile (both stages, the image's own checks included)
     as $IMAGE
  3. image check, in a container of the image: every binary's libraries
     resolve, mkfs.ext4 and debugfs run, the simulator is not in it, and
     \`ateom-microvm --version\` names this checkout's commit
  4. ch-sim (the cloud-hypervisor and kata-agent simulator) built from
     this checkout: it never enters the image; the demo stages it as the
     cloud-hypervisor asset, as atelet stages assets in the worker pod's
     hostPath
  5. hack/demo.sh --container: two worker "pods" whose ateom-microvm and
     ateomctl run inside the image (network namespace of the pod, the work
     dir bind-mounted like the hostPath); the counter must continue across
     two checkpoint/restore cycles, the second into the other pod

  --work DIR      work dir: base tarball, buildah storage, staged context
                  (default: build-image-demo in the repository; kept, so a
                  second run reuses the base)
  --build DIR     build directory for ch-sim (default: build)
  --jobs N        compile jobs inside the image build (default: 2)
  --refresh-base  make the base again even when the work dir has one
  --keep          keep the working container and the demo's work dir
  --dry-run       print the commands, run none
  -h, --help      this text

Environment: CONTAINERS_STORAGE_CONF is set to the work dir's own
storage.conf, so nothing lands in the host's image store.
USAGE
}

work=$ATE_ROOT/build-image-demo
build=$ATE_ROOT/build
jobs=2
refresh_base=0
keep=0

while (($#)); do
  case $1 in
    --work | --build | --jobs)
      (($# >= 2)) || ate_die "$1 needs a value"
      case $1 in
        --work) work=$2 ;;
        --build) build=$2 ;;
        --jobs) jobs=$2 ;;
      esac
      shift
      ;;
    --refresh-base) refresh_base=1 ;;
    --keep) keep=1 ;;
    --dry-run) ATE_DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      ate_die "unknown argument: $1"
      ;;
  esac
  shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || ate_die "invalid --jobs '$jobs'"
if ! ate_dry; then
  [[ $(id -u) -eq 0 ]] || ate_die "needs root (buildah storage, network namespaces)"
fi
ate_require_tools buildah mmdebstrap git tar cmake

mkdir -p "$work"
work=$(cd "$work" && pwd)
# Our own image store: the host's stays untouched.
export CONTAINERS_STORAGE_CONF=$work/storage.conf
if [[ ! -f $CONTAINERS_STORAGE_CONF ]]; then
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$work/storage" "$work/runroot" >"$CONTAINERS_STORAGE_CONF"
fi
ATE_WORK_DIR=$work/build-image
ate_make_work_dir
commit=$(git -C "$ATE_ROOT" rev-parse --short=12 HEAD)
ctr=""
base_ctr=""

# buildah rm also unmounts: no container of ours stays mounted.
cleanup() {
  if [[ -n $base_ctr ]]; then
    buildah rm "$base_ctr" >/dev/null 2>&1 || true
  fi
  if [[ -n $ctr ]] && ((!keep)) && ! ate_dry; then
    buildah rm "$ctr" >/dev/null 2>&1 || true
  fi
  ate_exit_trap
}
trap cleanup EXIT

base_image() {
  local tar=$work/$SUITE.tar mnt
  if ((refresh_base)) || [[ ! -s $tar ]]; then
    # mmdebstrap picks the output format by the name's extension: keep .tar.
    ate_run mmdebstrap --variant=apt --mode=root "$SUITE" "$work/$SUITE.partial.tar"
    ate_run mv "$work/$SUITE.partial.tar" "$tar"
  elif ! ate_dry && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    ate_log "re-using $BASE_IMAGE (made from $tar; --refresh-base to make it again)"
    return 0
  fi
  if ate_dry; then
    ate_log "would import $tar as $BASE_IMAGE (buildah from scratch, mount, untar, commit)"
    return 0
  fi
  base_ctr=$(buildah from scratch)
  mnt=$(buildah mount "$base_ctr")
  ate_run tar -C "$mnt" -xf "$tar"
  buildah umount "$base_ctr" >/dev/null
  ate_run buildah commit --quiet --rm "$base_ctr" "$BASE_IMAGE"
  base_ctr=""
}

worker_image() {
  local args=(--engine buildah --tag "$IMAGE" --build-image "$BASE_IMAGE"
    --runtime-image "$BASE_IMAGE")
  ate_dry && args+=(--dry-run)
  ate_run env "ATE_BUILD_JOBS=$jobs" "ATE_WORK_DIR=$ate_work" \
    "$ATE_ROOT/hack/build-image.sh" "${args[@]}"
}

# Runs in the image: the libraries, the tools, the commit.  Everything the
# server execs at run time (mkfs.ext4, debugfs) is called here once.
check_image() {
  local script
  script=$(
    cat <<CHECK
set -e
if ldd /usr/local/bin/* | grep 'not found'; then exit 1; fi
for t in mkfs.ext4 debugfs; do command -v "\$t"; done
mkfs.ext4 -V 2>&1 | head -n1
debugfs -V 2>&1 | head -n1
if [ -e /usr/local/bin/ch-sim ]; then echo "the simulator is in the image"; exit 1; fi
for b in ateomctl ateom-rootfs ateom-snapshot; do /usr/local/bin/\$b --help >/dev/null; done
v=\$(/usr/local/bin/ateom-microvm --version)
echo "\$v"
case "\$v" in *" commit=$commit "*) ;; *) echo "expected commit=$commit"; exit 1 ;; esac
CHECK
  )
  if ate_dry; then
    ate_run buildah from --name ateom-image-demo "$IMAGE"
    ate_run buildah run --isolation chroot ateom-image-demo -- sh -c "$script"
    ctr=ateom-image-demo
    return 0
  fi
  buildah rm ateom-image-demo >/dev/null 2>&1 || true
  ctr=$(buildah from --name ateom-image-demo "$IMAGE")
  ate_run buildah run --isolation chroot "$ctr" -- sh -c "$script"
}

simulator() {
  if [[ ! -f $build/CMakeCache.txt ]]; then
    ate_run cmake -S "$ATE_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  ate_run cmake --build "$build" -j 2 --target ch-sim
}

demo() {
  local args=(--no-deps --bin "$build/bin" --container "$ctr")
  ((keep)) && args+=(--keep)
  ate_run "$ATE_ROOT/hack/demo.sh" "${args[@]}"
}

ate_log "image $IMAGE at commit $commit, work dir $work"
ate_phase "base image $BASE_IMAGE (mmdebstrap $SUITE)" base_image
ate_phase "worker image $IMAGE (buildah)" worker_image
ate_phase "image contents and commit" check_image
ate_phase "ch-sim from this checkout" simulator
ate_phase "simulator demo in the image" demo
ate_log "PASS: the worker image at $commit runs the demo (count continued)"
