#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the worker image (deploy/image/Dockerfile) or the counter demo image
# (deploy/demo/counter/Dockerfile) with docker or podman, tags it, and
# optionally pushes it and/or loads it into a kind cluster.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=build-image.sh
# shellcheck source=hack/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kind/lib.sh"

usage() {
  cat <<USAGE
Usage: hack/build-image.sh [options]

Builds an image with docker or podman and tags it.

  --image worker|counter  what to build (default: worker)
                            worker:  deploy/image/Dockerfile, context = the
                                     repository's tracked and untracked-but-
                                     not-ignored files
                            counter: deploy/demo/counter/Dockerfile
  --tag REF               image reference (default: \$ATE_IMAGE, else
                          localhost:5001/ateom-microvm:dev or
                          localhost:5001/ate-counter:dev)
  --engine docker|podman  container engine (default: docker when present,
                          else podman)
  --platform OS/ARCH      target platform, e.g. linux/arm64 (default: the
                          engine's)
  --push                  push the tag to its registry
  --digest-file FILE      with --push: write the pushed REPO@sha256:DIGEST
                          into FILE (what an ActorTemplate needs)
  --load-kind [CLUSTER]   load the image into kind cluster CLUSTER (default:
                          \$KIND_CLUSTER_NAME, else "kind")
  --dry-run               print the commands, run none
  -h, --help              this text

Environment: ATE_IMAGE, KIND_CLUSTER_NAME, ATE_BUILD_JOBS (parallel compile
jobs inside the build, default 2), ATE_WORK_DIR (keep the staged context
there instead of a temp dir).
USAGE
}

image=worker
tag=${ATE_IMAGE:-}
engine=""
platform=""
push=0
digest_file=""
load_kind=0
kind_cluster=${KIND_CLUSTER_NAME:-kind}

while (($#)); do
  case $1 in
    --image)
      (($# >= 2)) || ate_die "--image needs worker or counter"
      image=$2
      shift
      ;;
    --tag)
      (($# >= 2)) || ate_die "--tag needs an image reference"
      tag=$2
      shift
      ;;
    --engine)
      (($# >= 2)) || ate_die "--engine needs docker or podman"
      engine=$2
      shift
      ;;
    --platform)
      (($# >= 2)) || ate_die "--platform needs OS/ARCH"
      platform=$2
      shift
      ;;
    --push) push=1 ;;
    --digest-file)
      (($# >= 2)) || ate_die "--digest-file needs a path"
      digest_file=$2
      shift
      ;;
    --load-kind)
      load_kind=1
      if (($# >= 2)) && [[ $2 != -* ]]; then
        kind_cluster=$2
        shift
      fi
      ;;
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

case $image in
  worker)
    dockerfile=deploy/image/Dockerfile
    : "${tag:=localhost:5001/ateom-microvm:dev}"
    ;;
  counter)
    dockerfile=deploy/demo/counter/Dockerfile
    : "${tag:=localhost:5001/ate-counter:dev}"
    ;;
  *) ate_die "--image must be worker or counter, not '$image'" ;;
esac
[[ -n $digest_file && $push == 0 ]] && ate_die "--digest-file needs --push"

if [[ -z $engine ]]; then
  if command -v docker >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  elif ate_dry; then
    engine=docker
  else
    ate_die "neither docker nor podman is on PATH (use --engine)"
  fi
fi
case $engine in
  docker | podman) ;;
  *) ate_die "--engine must be docker or podman, not '$engine'" ;;
esac
tools=("$engine")
((load_kind)) && tools+=(kind)
ate_require_tools "${tools[@]}"

ate_make_work_dir
trap ate_exit_trap EXIT

version=$(sed -n 's/^project(ateom-microvm VERSION \([0-9.]*\).*/\1/p' "$ATE_ROOT/CMakeLists.txt")
commit=$(git -C "$ATE_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# The worker build context is a copy of what git would ship (tracked files
# plus new, not ignored ones), so local build trees never enter the image.
# Outside a git checkout (a source tarball) it is the tree minus build dirs.
stage_worker_context() {
  local ctx=$ate_work/context f
  ate_log "staging the build context in $ctx"
  ate_dry && return 0
  rm -rf "$ctx"
  mkdir -p "$ctx"
  if git -C "$ATE_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Deleted-but-tracked files are listed too: skip what is not there.
    while IFS= read -r -d '' f; do
      if [[ -e $ATE_ROOT/$f || -L $ATE_ROOT/$f ]]; then
        printf '%s\0' "$f"
      fi
    done < <(git -C "$ATE_ROOT" ls-files -z --cached --others --exclude-standard) \
      | tar -C "$ATE_ROOT" --null -T - -cf - \
      | tar -C "$ctx" -xf -
  else
    tar -C "$ATE_ROOT" --exclude=./.git --exclude='./build' --exclude='./build-*' -cf - . \
      | tar -C "$ctx" -xf -
  fi
  [[ -f $ctx/CMakeLists.txt && -f $ctx/$dockerfile ]] \
    || ate_die "the staged build context in $ctx lacks CMakeLists.txt or $dockerfile"
}

build_image() {
  local ctx file args=()
  if [[ $image == worker ]]; then
    stage_worker_context
    ctx=$ate_work/context
    file=$ctx/$dockerfile
  else
    ctx=$ATE_ROOT/deploy/demo/counter
    file=$ctx/Dockerfile
  fi
  [[ -n $platform ]] && args+=(--platform "$platform")
  args+=(--file "$file" --tag "$tag"
    --build-arg "ATE_VERSION=$version"
    --build-arg "ATE_GIT_COMMIT=$commit")
  [[ $image == worker ]] && args+=(--build-arg "BUILD_JOBS=${ATE_BUILD_JOBS:-2}")
  ate_run "$engine" build "${args[@]}" "$ctx"
}

push_image() {
  ate_run "$engine" push "$tag"
  [[ -n $digest_file ]] || return 0
  local ref
  if ate_dry; then
    ate_log "would write the pushed digest reference into $digest_file"
    return 0
  fi
  if [[ $engine == docker ]]; then
    ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" \
      | grep -F "$(ate_image_repo "$tag")@" | head -n1)
  else
    ref="$(ate_image_repo "$tag")@$(podman image inspect --format '{{.Digest}}' "$tag")"
  fi
  [[ $ref == *@sha256:* ]] || ate_die "could not find the pushed digest of $tag"
  printf '%s\n' "$ref" >"$digest_file"
  ate_log "pushed $ref"
}

# kind loads from the docker daemon; with podman it loads a saved archive.
load_into_kind() {
  if [[ $engine == docker ]]; then
    ate_run kind load docker-image "$tag" --name "$kind_cluster"
  else
    ate_run podman save --output "$ate_work/image.tar" "$tag"
    ate_run kind load image-archive "$ate_work/image.tar" --name "$kind_cluster"
  fi
}

ate_log "building $image image $tag with $engine (version $version, commit $commit)"
ate_phase "build $image image" build_image
((push)) && ate_phase "push $tag" push_image
((load_kind)) && ate_phase "load into kind cluster $kind_cluster" load_into_kind
ate_log "done: $tag"
