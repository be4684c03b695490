#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end on kind: cluster, substrate control plane, our worker image,
# runtime assets, the counter-microvm demo; then an actor's in-memory count
# must continue across suspend and resume.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=run-microvm-demo.sh
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=hack/kind/lib.sh
source "$here/lib.sh"
# shellcheck source=hack/microvm-assets/pins.sh
source "$here/../microvm-assets/pins.sh"
# shellcheck source=hack/kind/demo-lib.sh
source "$here/demo-lib.sh"

NAMESPACE=ate-demo-counter-microvm
TEMPLATE=counter-microvm

usage() {
  cat <<USAGE
Usage: hack/kind/run-microvm-demo.sh [options]

Runs the counter-microvm demo end to end on a kind cluster with KVM:
   1. kind cluster (hack/kind/create-cluster.sh)
   2. substrate control plane from agent-substrate/substrate at the pinned
      commit (its hack/install-ate-kind.sh) and kubectl-ate
   3. our worker image and the counter image, pushed to $REGISTRY
   4. runtime assets (hack/microvm-assets: assemble, stage to rustfs)
   5. deploy/kustomize/overlays/kind with the pushed counter digest, checked
      by ate-admission, applied
   6. wait for the golden snapshot (ActorTemplate Ready)
   7. create an actor, resume it, POST twice (count 1, 2), suspend, resume,
      POST again: the count must be 3; then suspend and delete the actor
      (--keep-actor keeps it)
Each phase is timed; on failure worker and atelet logs, descriptions and
events are saved (--artifacts) and the worker log tail is printed.

  --actor ID            actor id (default: counter-<unix time>)
  --counter-image REF   with --skip-images: the pushed counter image,
                        REPO@sha256:DIGEST
  --golden-timeout S    seconds to wait for the golden snapshot (600)
$(demo_usage_common)
USAGE
}

actor=""
counter_image=""
golden_timeout=600

while (($#)); do
  rc=0
  demo_parse_common "$@" || rc=$?
  if ((rc > 0)); then
    shift "$rc"
    continue
  fi
  case $1 in
    --actor | --counter-image | --golden-timeout)
      (($# >= 2)) || ate_die "$1 needs a value"
      case $1 in
        --actor) actor=$2 ;;
        --counter-image) counter_image=$2 ;;
        --golden-timeout) golden_timeout=$2 ;;
      esac
      shift
      ;;
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

: "${actor:=counter-$(date +%s)}"
[[ $actor =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || ate_die "actor id '$actor' is not a DNS-1123 label"
[[ $golden_timeout =~ ^[0-9]+$ ]] || ate_die "invalid --golden-timeout '$golden_timeout'"
if ((skip_images)) && [[ $counter_image != *@sha256:* ]]; then
  ate_die "--skip-images needs --counter-image REPO@sha256:DIGEST"
fi
demo_check_common
ate_make_work_dir
trap ate_exit_trap EXIT
demo_namespace=$NAMESPACE
demo_pool=$TEMPLATE

images() {
  demo_worker_image
  demo_run_child hack/build-image.sh --image counter --tag "$REGISTRY/ate-counter:dev" --push \
    --digest-file "$ate_work/counter-image"
  if ate_dry; then
    # Nothing was pushed: render with a stand-in digest.
    counter_image=$REGISTRY/ate-counter@sha256:$(printf 'd%.0s' {1..64})
    ate_log "dry run: counter image stands in as $counter_image"
  else
    counter_image=$(cat "$ate_work/counter-image")
  fi
}

apply_demo() {
  demo_write_kustomization "$ate_work/demo" "$ATE_ROOT/deploy/kustomize/overlays/kind" \
    "$KIND_OVERLAY_COUNTER=$counter_image" "$KIND_OVERLAY_WORKER=$worker_image"
  demo_render "$ate_work/demo" "$ate_work/demo.yaml"
  grep -q "image: $counter_image\$" "$ate_work/demo.yaml" \
    || ate_die "the rendered demo does not pin the counter image to $counter_image"
  demo_replace_template "$NAMESPACE" "$TEMPLATE" "$counter_image"
  ate_kubectl apply -f "$ate_work/demo.yaml"
}

wait_golden() {
  ate_kubectl --namespace "$NAMESPACE" wait --for=condition=Ready "actortemplate/$TEMPLATE" \
    --timeout="${golden_timeout}s"
}

# POSTs once and checks that the in-memory count is WANT.
post_expect() {
  local want=$1 reply count
  demo_http "$actor" POST / "$ate_work/reply"
  ate_dry && return 0
  reply=$(cat "$ate_work/reply")
  count=$(sed -n 's/.*preserved memory count: \([0-9]*\).*/\1/p' <<<"$reply")
  [[ $count == "$want" ]] || ate_die "expected count $want, got: $reply"
  ate_log "count is $count as expected"
}

first_posts() {
  post_expect 1
  post_expect 2
}

((skip_cluster)) || ate_phase "kind cluster $cluster" demo_cluster
ate_phase "substrate control plane ${SUBSTRATE_COMMIT:0:12}" demo_control_plane
if ((!skip_images)); then ate_phase "images" images; fi
((skip_assets)) || ate_phase "runtime assets ($arch)" demo_assets
ate_phase "apply counter-microvm" apply_demo
ate_phase "golden snapshot Ready" wait_golden
ate_phase "create actor $actor" demo_create_actor "$actor" "$NAMESPACE/$TEMPLATE"
ate_phase "resume $actor" demo_resume "$actor" 300
ate_phase "router port-forward" demo_router
ate_phase "POST twice (count 1, 2)" first_posts
ate_phase "suspend $actor" demo_suspend "$actor"
ate_phase "resume $actor again" demo_resume "$actor" 300
ate_phase "POST after resume (count 3)" post_expect 3
ate_phase "clean up actor $actor" demo_cleanup_actor
ate_log "PASS: the count continued across suspend/resume (actor $actor)"
