#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Large-image end to end on kind: the ~3 GB OpenShell helpdesk image as a
# micro-VM actor.  Checks that the golden snapshot reaches Ready (the rootfs
# build of a multi-GB image takes longer than one RPC deadline) and that a
# resumed actor answers GET /status, also after suspend/resume.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=run-openshell-e2e.sh
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=hack/kind/lib.sh
source "$here/lib.sh"
# shellcheck source=hack/microvm-assets/pins.sh
source "$here/../microvm-assets/pins.sh"
# shellcheck source=hack/kind/demo-lib.sh
source "$here/demo-lib.sh"

NAMESPACE=ate-demo-openshell-microvm
TEMPLATE=openshell-microvm

usage() {
  cat <<USAGE
Usage: hack/kind/run-openshell-e2e.sh (--openshell-image REF | --openshell-source-image IMG) [options]

The OpenShell helpdesk image is not published: build it (see
docs/operations.md, "OpenShell end to end") and either push it yourself
(--openshell-image REPO@sha256:DIGEST, pullable by the cluster) or let this
script push a local image into the kind registry (--openshell-source-image).

Phases: kind cluster, substrate control plane, our worker image, the
OpenShell image, runtime assets, deploy/kustomize/overlays/kind-runtime
(policy + default microvm SandboxConfig),
deploy/demo/openshell-microvm; then wait for the golden snapshot, create and
resume an actor, GET /status through the atenet router, suspend, resume,
GET /status again (uptime must not go back: the process survived).

  --openshell-image REF        pinned image reference (REPO@sha256:DIGEST)
  --openshell-source-image IMG local image to tag and push as
                               $REGISTRY/oshl-helpdesk:e2e
  --actor ID                   actor id (default: helpdesk-<unix time>)
  --golden-timeout S           seconds to wait for the golden snapshot (1800)
  --resume-timeout S           seconds a resume may take (900)
$(demo_usage_common)
USAGE
}

openshell_image=""
openshell_source=""
actor=""
golden_timeout=1800
resume_timeout=900

while (($#)); do
  rc=0
  demo_parse_common "$@" || rc=$?
  if ((rc > 0)); then
    shift "$rc"
    continue
  fi
  case $1 in
    --openshell-image | --openshell-source-image | --actor | --golden-timeout | --resume-timeout)
      (($# >= 2)) || ate_die "$1 needs a value"
      case $1 in
        --openshell-image) openshell_image=$2 ;;
        --openshell-source-image) openshell_source=$2 ;;
        --actor) actor=$2 ;;
        --golden-timeout) golden_timeout=$2 ;;
        --resume-timeout) resume_timeout=$2 ;;
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

if [[ -n $openshell_image && -n $openshell_source ]]; then
  ate_die "give --openshell-image or --openshell-source-image, not both"
elif [[ -z $openshell_image && -z $openshell_source ]]; then
  usage >&2
  ate_die "the OpenShell helpdesk image is not public: pass --openshell-image or --openshell-source-image"
elif [[ -n $openshell_image && $openshell_image != *@sha256:* ]]; then
  ate_die "--openshell-image must be pinned (REPO@sha256:DIGEST): templates accept only pinned images"
fi
: "${actor:=helpdesk-$(date +%s)}"
[[ $actor =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || ate_die "actor id '$actor' is not a DNS-1123 label"
for t in "$golden_timeout" "$resume_timeout"; do
  [[ $t =~ ^[0-9]+$ ]] || ate_die "invalid timeout '$t'"
done
demo_check_common
ate_make_work_dir
trap ate_exit_trap EXIT
demo_namespace=$NAMESPACE
demo_pool=$TEMPLATE

# A multi-GB image is pulled into the registry, by atelet, and unpacked into
# a rootfs disk: say early when the host looks too small.
preflight() {
  local mem_kb
  mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
  if ((mem_kb < 16 * 1024 * 1024)); then
    ate_log "warning: $((mem_kb / 1024 / 1024)) GiB RAM; 16 GiB or more is recommended"
  fi
  ate_log "the first golden snapshot pulls and unpacks ~3 GB: allow ${golden_timeout}s"
}

images() {
  local tag=$REGISTRY/oshl-helpdesk:e2e
  ((skip_images)) || demo_worker_image
  [[ -n $openshell_source ]] || return 0
  ate_run docker tag "$openshell_source" "$tag"
  ate_run docker push "$tag"
  if ate_dry; then
    openshell_image=$REGISTRY/oshl-helpdesk@sha256:$(printf 'd%.0s' {1..64})
    ate_log "dry run: OpenShell image stands in as $openshell_image"
    return 0
  fi
  openshell_image=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" \
    | grep -F "$REGISTRY/oshl-helpdesk@" | head -n1)
  [[ $openshell_image == *@sha256:* ]] || ate_die "no registry digest for $tag after the push"
  ate_log "OpenShell image: $openshell_image"
}

apply_runtime() {
  demo_write_kustomization "$ate_work/runtime" "$ATE_ROOT/deploy/kustomize/overlays/kind-runtime"
  demo_render "$ate_work/runtime" "$ate_work/runtime.yaml"
  ate_kubectl apply --selector app.kubernetes.io/component=microvm-runtime -f "$ate_work/runtime.yaml"
}

apply_openshell() {
  demo_write_kustomization "$ate_work/openshell" "$ATE_ROOT/deploy/demo/openshell-microvm" \
    "openshell-helpdesk=$openshell_image" "$KIND_OVERLAY_WORKER=$worker_image"
  demo_render "$ate_work/openshell" "$ate_work/openshell.yaml"
  ate_kubectl apply -f "$ate_work/openshell.yaml"
}

wait_golden() {
  ate_kubectl --namespace "$NAMESPACE" wait --for=condition=Ready "actortemplate/$TEMPLATE" \
    --timeout="${golden_timeout}s"
}

# GET /status; checks the helpdesk's JSON and remembers uptime_seconds.
uptime=""
get_status() {
  local body
  demo_http "$actor" GET /status "$ate_work/status.json"
  ate_dry && return 0
  body=$(cat "$ate_work/status.json")
  [[ $body == *'"history_turns"'* && $body == *'"model"'* ]] \
    || ate_die "unexpected /status reply: $body"
  uptime=$(sed -n 's/.*"uptime_seconds": *\([0-9.]*\).*/\1/p' <<<"$body")
  [[ -n $uptime ]] || ate_die "/status reply has no uptime_seconds: $body"
}

status_after_resume() {
  local before=$uptime
  get_status
  ate_dry && return 0
  awk -v a="$uptime" -v b="$before" 'BEGIN { exit !(a + 0 >= b + 0) }' \
    || ate_die "uptime went back from $before to $uptime: the agent restarted instead of resuming"
  ate_log "uptime $before -> $uptime s: the agent process survived suspend/resume"
}

ate_phase "preflight" preflight
((skip_cluster)) || ate_phase "kind cluster $cluster" demo_cluster
ate_phase "substrate control plane ${SUBSTRATE_COMMIT:0:12}" demo_control_plane
ate_phase "images" images
((skip_assets)) || ate_phase "runtime assets ($arch)" demo_assets
ate_phase "apply microvm runtime" apply_runtime
ate_phase "apply openshell-microvm" apply_openshell
ate_phase "golden snapshot Ready" wait_golden
ate_phase "create actor $actor" demo_create_actor "$actor" "$NAMESPACE/$TEMPLATE"
ate_phase "resume $actor" demo_resume "$actor" "$resume_timeout"
ate_phase "router port-forward" demo_router
ate_phase "GET /status" get_status
ate_phase "suspend $actor" demo_suspend "$actor"
ate_phase "resume $actor again" demo_resume "$actor" "$resume_timeout"
ate_phase "GET /status after resume" status_after_resume
ate_phase "clean up actor $actor" demo_cleanup_actor
ate_log "PASS: golden snapshot Ready and the resumed helpdesk answers /status (actor $actor)"
