#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the worker image (deploy/image/Dockerfile) or the counter demo image
# (deploy/demo/counter/Dockerfile) with docker, podman or buildah, tags it,
# and optionally pushes it and/or loads it into a kind cluster.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=build-image.sh
# shellcheck source=hack/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/kind/lib.sh"

usage() {
  cat <<USAGE
Usage: hack/build-image.sh [options]

Builds an image with docker, podman or buildah and tags it.

  --image worker|counter  what to build (default: worker)
                            worker:  deploy/image/Dockerfile, context = the
                                     repository's tracked and untracked-but-
                                     not-ignored files
                            counter: deploy/demo/counter/Dockerfile
  --tag REF               image reference (default: \$ATE_IMAGE, else
                          localhost:5001/ateom-microvm:dev or
                          localhost:5001/ate-counter:dev)
  --engine ENGINE         docker, podman or buildah (default: docker when
                          present, else podman, else buildah)
  --build-image REF       worker: base image of the build stage (default:
                          the Dockerfile's, a Debian 12 point release); pass
                          REPO@sha256:DIGEST to pin it
  --runtime-image REF     worker: base image of the runtime stage (default:
                          the Dockerfile's slim Debian 12 point release)
  --platform LIST         target platform(s), e.g. linux/arm64 (default: the
                          engine's); a comma list such as
                          linux/amd64,linux/arm64 builds one multi-arch
                          image (needs --push; docker uses buildx, podman
                          and buildah a manifest list; foreign platforms
                          need qemu-user binfmt on the build host)
  --push                  push the tag to its registry (podman and buildah
                          push to localhost:PORT and 127.0.0.1:PORT, the kind
                          registry, over plain HTTP)
  --digest-file FILE      with --push: write REPO@sha256:DIGEST of the
                          manifest the registry received into FILE (what an
                          ActorTemplate needs)
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
build_base=""
runtime_base=""
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
    --build-image | --runtime-image)
      (($# >= 2)) || ate_die "$1 needs an image reference"
      if [[ $1 == --build-image ]]; then build_base=$2; else runtime_base=$2; fi
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
multi=0
if [[ $platform == *,* ]]; then
  multi=1
  ((push)) || ate_die "a multi-platform image exists only in a registry: add --push"
  ((load_kind)) && ate_die "--load-kind loads one platform: build it with a single --platform"
fi
if [[ $image != worker && -n $build_base$runtime_base ]]; then
  ate_die "--build-image and --runtime-image apply to the worker image only"
fi

if [[ -z $engine ]]; then
  if command -v docker >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  elif command -v buildah >/dev/null 2>&1; then
    engine=buildah
  elif ate_dry; then
    engine=docker
  else
    ate_die "none of docker, podman or buildah is on PATH (use --engine)"
  fi
fi
case $engine in
  docker | podman | buildah) ;;
  *) ate_die "--engine must be docker, podman or buildah, not '$engine'" ;;
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
  args+=(--file "$file")
  # One multi-arch image: docker buildx builds and pushes it in one go
  # (recording the pushed digest); podman and buildah build a manifest list.
  if ((multi)) && [[ $engine == docker ]]; then
    args+=(--tag "$tag" --push --metadata-file "$ate_work/buildx-metadata.json")
  elif ((multi)); then
    args+=(--manifest "$tag")
  else
    args+=(--tag "$tag")
  fi
  args+=(
    --build-arg "ATE_VERSION=$version"
    --build-arg "ATE_GIT_COMMIT=$commit")
  if [[ $image == worker ]]; then
    args+=(--build-arg "BUILD_JOBS=${ATE_BUILD_JOBS:-2}")
    [[ -n $build_base ]] && args+=(--build-arg "BUILD_IMAGE=$build_base")
    [[ -n $runtime_base ]] && args+=(--build-arg "RUNTIME_IMAGE=$runtime_base")
  fi
  # buildah runs the RUN steps chrooted: no runtime or network setup needed.
  [[ $engine == buildah ]] && args+=(--isolation chroot --layers)
  if ((multi)) && [[ $engine == docker ]]; then
    ate_run docker buildx build "${args[@]}" "$ctx"
  else
    ate_run "$engine" build "${args[@]}" "$ctx"
  fi
}

# The kind registry (localhost:5001) speaks plain HTTP.  docker trusts
# loopback registries on its own; podman and buildah must be told.
plain_http_registry() {
  case ${tag%%/*} in
    localhost:* | 127.0.0.1:* | localhost) return 0 ;;
  esac
  return 1
}

# The digest an ActorTemplate pins must be the one of the manifest the
# registry stored: docker records it in RepoDigests at push time; podman and
# buildah may convert the manifest while pushing, so their own --digestfile
# (written by the push) is used, never the local image's digest.
push_image() {
  local args=() ref pushed=$ate_work/pushed-digest
  if [[ $engine != docker ]]; then
    plain_http_registry && args+=(--tls-verify=false)
    [[ -n $digest_file ]] && args+=(--digestfile "$pushed")
  fi
  if ((multi)) && [[ $engine == docker ]]; then
    # buildx pushed while building; its metadata names the pushed digest.
    if ! ate_dry && [[ -n $digest_file ]]; then
      sed -n 's/.*"containerimage\.digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' \
        "$ate_work/buildx-metadata.json" | head -n1 >"$pushed"
    fi
  elif ((multi)); then
    ate_run "$engine" manifest push --all "${args[@]}" "$tag" "docker://$tag"
  else
    ate_run "$engine" push "${args[@]}" "$tag"
  fi
  [[ -n $digest_file ]] || return 0
  if ate_dry; then
    ate_log "would write the pushed digest reference into $digest_file"
    return 0
  fi
  if [[ $engine == docker ]] && ((!multi)); then
    ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" \
      | grep -F "$(ate_image_repo "$tag")@" | head -n1)
  else
    [[ -s $pushed ]] || ate_die "$engine push wrote no digest for $tag"
    ref="$(ate_image_repo "$tag")@$(tr -d '[:space:]' <"$pushed")"
  fi
  [[ $ref =~ @sha256:[0-9a-f]{64}$ ]] || ate_die "could not find the pushed digest of $tag (got '$ref')"
  printf '%s\n' "$ref" >"$digest_file"
  ate_log "pushed $ref"
}

# kind loads from the docker daemon; with podman or buildah it loads a
# saved archive.
load_into_kind() {
  if [[ $engine == docker ]]; then
    ate_run kind load docker-image "$tag" --name "$kind_cluster"
  elif [[ $engine == podman ]]; then
    ate_run podman save --output "$ate_work/image.tar" "$tag"
    ate_run kind load image-archive "$ate_work/image.tar" --name "$kind_cluster"
  else
    ate_run buildah push "$tag" "docker-archive:$ate_work/image.tar:$tag"
    ate_run kind load image-archive "$ate_work/image.tar" --name "$kind_cluster"
  fi
}

ate_log "building $image image $tag with $engine (version $version, commit $commit)"
ate_phase "build $image image" build_image
((push)) && ate_phase "push $tag" push_image
((load_kind)) && ate_phase "load into kind cluster $kind_cluster" load_into_kind
ate_log "done: $tag"
