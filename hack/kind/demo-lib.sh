# shellcheck shell=bash
# shellcheck disable=SC2154 # ate_work, KUBECTL_CONTEXT: set by lib.sh and the caller
# SPDX-License-Identifier: Apache-2.0
# The bring-up steps shared by run-microvm-demo.sh and run-openshell-e2e.sh
# (sourced after lib.sh and ../microvm-assets/pins.sh): kind cluster,
# substrate control plane, our worker image, runtime assets, actor lifecycle
# through kubectl-ate, the atenet router, and log collection on failure.

# The substrate control plane these scripts install: agent-substrate/substrate
# at the commit whose ateom contract this runtime implements (docs/operations.md,
# "Pinned versions").  SUBSTRATE_COMMIT overrides it (at your own risk).
SUBSTRATE_REPO=${SUBSTRATE_REPO:-https://github.com/agent-substrate/substrate.git}
SUBSTRATE_PINNED_COMMIT=e44249f782294398ee221abb1b4825801c08a2ba
SUBSTRATE_COMMIT=${SUBSTRATE_COMMIT:-$SUBSTRATE_PINNED_COMMIT}

REGISTRY=${ATE_REGISTRY:-localhost:5001}
# The image names deploy/kustomize/overlays/kind renders (whatever REGISTRY is).
# shellcheck disable=SC2034 # used by the scripts sourcing this file
KIND_OVERLAY_WORKER=localhost:5001/ateom-microvm
# shellcheck disable=SC2034
KIND_OVERLAY_COUNTER=localhost:5001/ate-counter
CLASS_TOLERATION='{"key":"ate.dev/sandboxClass","operator":"Equal","value":"microvm","effect":"NoSchedule"}'
ACTOR_HOST_SUFFIX=actors.resources.substrate.ate.dev

# Defaults; the scripts' option parsers change them.
cluster=${KIND_CLUSTER_NAME:-kind}
arch=${ARCH:-$(ate_host_arch)}
ch_version=${CH_VER:-v52.0}
ch_sha=${CH_SHA256:-}
substrate_dir=${SUBSTRATE_DIR:-}
kubectl_ate=${KUBECTL_ATE:-}
worker_image=${ATE_IMAGE:-$REGISTRY/ateom-microvm:dev}
router_port=${ATE_ROUTER_PORT:-8000}
artifacts=${ATE_ARTIFACTS_DIR:-}
control_plane_timeout=900
server_config=""
keep_actor=0
skip_cluster=0
skip_control_plane=0
skip_images=0
skip_assets=0
demo_namespace=""
demo_pool=""

demo_usage_common() {
  cat <<USAGE
  --cluster NAME        kind cluster (default: \$KIND_CLUSTER_NAME, else "kind")
  --arch amd64|arm64    node architecture for the assets (default: the host's)
  --ch-version V        cloud-hypervisor v52.0 (default) or v51.1 (with
                        --ch-sha256 HEX; the SandboxConfigs get that hash)
  --substrate-dir DIR   checkout of agent-substrate/substrate at the pinned
                        commit (default: fetched into ~/.cache/ateom-microvm)
  --kubectl-ate PATH    kubectl-ate binary (default: built from that checkout)
  --worker-image REF    worker image to build and use (default:
                        $REGISTRY/ateom-microvm:dev)
  --router-port PORT    local port for the atenet-router port-forward (8000)
  --control-plane-timeout S
                        seconds the upstream installer may take (900): it
                        has unbounded waits of its own
  --server-config FILE  passed to create-cluster.sh: the server configuration
                        file of every micro-VM node
  --keep-actor          leave the actor behind (default: it is suspended and
                        deleted at the end, also after a failure, so re-runs
                        do not fill the pool)
  --artifacts DIR       where logs go on failure (default:
                        build-e2e/<script>-<time> in the repository)
  --skip-cluster        use the existing cluster (no create-cluster.sh)
  --skip-control-plane  the substrate control plane is installed already
  --skip-images         the images are in the registry already
  --skip-assets         the assets are staged already
  --dry-run             print every command, run none
  -h, --help            this text

Needs on PATH: docker (or podman for the images), kind, kubectl, curl, git,
go and openssl (the upstream installer builds with ko), zstd and aws (assets).
Environment: SUBSTRATE_COMMIT (default $SUBSTRATE_PINNED_COMMIT),
SUBSTRATE_REPO, KUBECTL_ATE, ATE_ARTIFACTS_DIR, ATE_WORK_DIR.
USAGE
}

# demo_parse_common "$@": handles a shared option; returns how many words it
# used (0: not a shared option).
# shellcheck disable=SC2034 # ATE_DRY_RUN is read by lib.sh
demo_parse_common() {
  case $1 in
    --cluster | --arch | --ch-version | --ch-sha256 | --substrate-dir | --kubectl-ate | \
      --worker-image | --router-port | --artifacts | --control-plane-timeout | --server-config)
      [[ $# -ge 2 ]] || ate_die "$1 needs a value"
      case $1 in
        --cluster) cluster=$2 ;;
        --arch) arch=$2 ;;
        --ch-version) ch_version=$2 ;;
        --ch-sha256) ch_sha=$2 ;;
        --substrate-dir) substrate_dir=$2 ;;
        --kubectl-ate) kubectl_ate=$2 ;;
        --worker-image) worker_image=$2 ;;
        --router-port) router_port=$2 ;;
        --artifacts) artifacts=$2 ;;
        --control-plane-timeout) control_plane_timeout=$2 ;;
        --server-config) server_config=$2 ;;
      esac
      return 2
      ;;
    --skip-cluster) skip_cluster=1 ;;
    --skip-control-plane) skip_control_plane=1 ;;
    --skip-images) skip_images=1 ;;
    --skip-assets) skip_assets=1 ;;
    --keep-actor) keep_actor=1 ;;
    --dry-run) ATE_DRY_RUN=1 ;;
    *) return 0 ;;
  esac
  return 1
}

demo_check_common() {
  case $arch in
    amd64 | arm64) ;;
    *) ate_die "unsupported architecture '$arch' (amd64 or arm64)" ;;
  esac
  if [[ ! $router_port =~ ^[0-9]+$ ]] || ((router_port == 0 || router_port > 65535)); then
    ate_die "invalid --router-port '$router_port'"
  fi
  [[ $control_plane_timeout =~ ^[1-9][0-9]*$ ]] \
    || ate_die "invalid --control-plane-timeout '$control_plane_timeout'"
  KUBECTL_CONTEXT=kind-$cluster
  : "${artifacts:=$ATE_ROOT/build-e2e/${ATE_SCRIPT%.sh}-$(date +%Y%m%d-%H%M%S)}"
  local tools=(kubectl curl)
  ((skip_cluster)) || tools+=(kind docker)
  ((skip_control_plane)) || tools+=(git go openssl timeout)
  ((skip_assets)) || tools+=(zstd aws)
  [[ -n $kubectl_ate ]] || tools+=(go)
  ate_require_tools "${tools[@]}"
}

# A child script of ours: printed, then run with --dry-run when we are in
# dry-run (so its own commands are printed too).
demo_run_child() {
  local script=$1
  shift
  local args=("$@")
  ate_dry && args+=(--dry-run)
  printf '+ %s\n' "$(ate_quote "$script" "${args[@]}")"
  "$ATE_ROOT/$script" "${args[@]}"
}

demo_cluster() {
  demo_run_child hack/kind/create-cluster.sh --name "$cluster" \
    ${server_config:+--server-config "$(realpath "$server_config")"}
}

# The checkout is fetched into a temporary folder and renamed into the cache
# only when complete: an interrupted first fetch leaves nothing that later
# runs would take for a checkout.
substrate_checkout() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/ateom-microvm tmp
  if [[ -z $substrate_dir ]]; then
    substrate_dir=$cache/substrate-$SUBSTRATE_COMMIT
    if [[ -d $substrate_dir ]] && ! ate_dry \
      && [[ $(git -C "$substrate_dir" rev-parse HEAD 2>/dev/null) != "$SUBSTRATE_COMMIT" ]]; then
      ate_log "$substrate_dir is not a complete checkout of $SUBSTRATE_COMMIT (an interrupted fetch?): fetching again"
      ate_run rm -rf "$substrate_dir"
    fi
    if [[ ! -d $substrate_dir ]]; then
      tmp=$substrate_dir.partial
      ate_run rm -rf "$tmp"
      ate_run git init --quiet "$tmp"
      ate_run git -C "$tmp" fetch --quiet --depth 1 "$SUBSTRATE_REPO" "$SUBSTRATE_COMMIT"
      ate_run git -C "$tmp" checkout --quiet --detach FETCH_HEAD
      ate_run mv "$tmp" "$substrate_dir"
    fi
  fi
  if ! ate_dry; then
    local head
    head=$(git -C "$substrate_dir" rev-parse HEAD 2>/dev/null) \
      || ate_die "$substrate_dir is not a git checkout (remove it, or point --substrate-dir elsewhere)"
    [[ $head == "$SUBSTRATE_COMMIT" ]] \
      || ate_die "$substrate_dir is at $head, not the pinned $SUBSTRATE_COMMIT (remove it, or check out the pinned commit)"
  fi
  : "${kubectl_ate:=$cache/bin/kubectl-ate-$SUBSTRATE_COMMIT}"
  if [[ ! -x $kubectl_ate ]]; then
    ate_run env --chdir="$substrate_dir" go build -o "$kubectl_ate.partial" ./cmd/kubectl-ate
    ate_run mv "$kubectl_ate.partial" "$kubectl_ate"
  fi
}

# The upstream installer (CRDs, api server, controller, atelet, atenet,
# valkey, rustfs) from the pinned checkout.  atelet gets the microvm
# toleration so it also runs on the tainted micro-VM nodes.
demo_control_plane() {
  substrate_checkout
  ((skip_control_plane)) && return 0
  demo_check_pcr_api
  # The installer polls for its trust bundles without a bound.
  ate_run timeout --foreground "$control_plane_timeout" \
    env --chdir="$substrate_dir" KUBECTL_CONTEXT="$KUBECTL_CONTEXT" \
    ./hack/install-ate-kind.sh --deploy-ate-system \
    || ate_die "the substrate installer failed or did not finish within $control_plane_timeout s (--control-plane-timeout)"
  ate_kubectl --namespace ate-system patch daemonset atelet --type=strategic \
    --patch "{\"spec\":{\"template\":{\"spec\":{\"tolerations\":[$CLASS_TOLERATION]}}}}"
  ate_kubectl --namespace ate-system rollout status daemonset/atelet --timeout=180s
}

# The substrate control plane needs the PodCertificateRequest API; without
# it its installer would wait forever (create-cluster.sh checks the same for
# the clusters it makes; --skip-cluster may point at another one).
demo_check_pcr_api() {
  local api=certificates.k8s.io/v1beta1 out
  if ate_dry; then
    ate_kubectl get --raw "/apis/$api"
    return 0
  fi
  out=$(kubectl --context="$KUBECTL_CONTEXT" --request-timeout=30s get --raw "/apis/$api" 2>&1) || out=""
  [[ $out == *'"podcertificaterequests"'* && $out == *'"clustertrustbundles"'* ]] \
    || ate_die "cluster $KUBECTL_CONTEXT does not serve PodCertificateRequest and ClusterTrustBundle ($api): the substrate control plane needs Kubernetes 1.35 or newer with their feature gates (hack/kind/create-cluster.sh sets them)"
}

# Builds and pushes the worker image, then uses it by digest: a re-used tag
# would leave nodes on the image they pulled before.
demo_worker_image() {
  demo_run_child hack/build-image.sh --image worker --tag "$worker_image" --push \
    --digest-file "$ate_work/worker-image"
  if ate_dry; then
    worker_image=$(ate_image_repo "$worker_image")@sha256:$(printf 'd%.0s' {1..64})
    ate_log "dry run: worker image stands in as $worker_image"
  else
    worker_image=$(cat "$ate_work/worker-image")
  fi
}

demo_assets() {
  demo_run_child hack/microvm-assets/assemble.sh --arch "$arch" --ch-version "$ch_version" \
    ${ch_sha:+--ch-sha256 "$ch_sha"}
  demo_run_child hack/microvm-assets/stage-to-rustfs.sh --arch "$arch" --context "$KUBECTL_CONTEXT"
}

# The cloud-hypervisor hash the SandboxConfigs must carry: the pin for
# v52.0, else what assemble.sh verified.
demo_ch_sha() {
  if ate_pin ch "$ch_version" "$arch" cloud-hypervisor; then
    return 0
  fi
  if [[ -n $ch_sha ]]; then
    echo "$ch_sha"
    return 0
  fi
  local sums=$ATE_ROOT/build-assets/$arch/SHA256SUMS
  [[ -f $sums ]] || ate_die "no hash for cloud-hypervisor $ch_version: pass --ch-sha256"
  awk '$2 == "cloud-hypervisor" { print $1 }' "$sums"
}

# demo_write_kustomization DIR RESOURCE_DIR [IMAGE=REF...]: a kustomization
# in DIR on top of RESOURCE_DIR that sets the given images (NAME=REPO:TAG or
# NAME=REPO@sha256:...) and, for a cloud-hypervisor other than the pinned
# v52.0, its hash in every SandboxConfig.
demo_write_kustomization() {
  local dir=$1 base=$2 pair name ref ch tag
  shift 2
  mkdir -p "$dir"
  cp "$ATE_ROOT/deploy/kustomize/base/kustomizeconfig.yaml" "$dir/"
  {
    printf -- '---\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n'
    printf 'resources:\n  - %s\n' "$(realpath --relative-to="$dir" "$base")"
    printf 'configurations:\n  - kustomizeconfig.yaml\n'
    (($# == 0)) || printf 'images:\n'
    for pair in "$@"; do
      name=${pair%%=*}
      ref=${pair#*=}
      printf '  - name: %s\n' "$name"
      printf '    newName: %s\n' "$(ate_image_repo "$ref")"
      if [[ $ref == *@sha256:* ]]; then
        printf '    digest: %s\n' "${ref#*@}"
      else
        # No tag means "latest" to the engine that built it.
        tag=$(ate_image_tag "$ref")
        printf '    newTag: %s\n' "${tag:-latest}"
      fi
    done
    if [[ $ch_version != v52.0 ]]; then
      ch=$(demo_ch_sha)
      printf 'patches:\n  - target:\n      kind: SandboxConfig\n    patch: |-\n'
      printf '      - op: replace\n        path: /spec/assets/%s/cloud-hypervisor/sha256\n' "$arch"
      printf '        value: %s\n' "$ch"
    fi
  } >"$dir/kustomization.yaml"
}

# Renders DIR into FILE (always, also in dry-run: it only reads files) and
# checks it with ate-admission when that is built.
demo_render() {
  local dir=$1 file=$2 admission
  ate_log "rendering $dir"
  kubectl kustomize "$dir" >"$file"
  admission=${ATE_ADMISSION:-}
  if [[ -z $admission ]]; then
    for admission in "$ATE_ROOT"/build*/bin/ate-admission "$(command -v ate-admission || true)"; do
      [[ -x $admission ]] && break
    done
  fi
  if [[ -x $admission ]]; then
    # Read-only: runs in dry-run too.
    printf '+ %s\n' "$(ate_quote "$admission" validate "$file")"
    "$admission" validate "$file"
  else
    ate_log "ate-admission not built: skipping the offline validation of $file"
  fi
}

# kubectl-ate with our context.
demo_ate() {
  ate_run "$kubectl_ate" --context="$KUBECTL_CONTEXT" "$@"
}

# Polled every few seconds, so only the dry-run prints it.
demo_actor_has_status() {
  local actor=$1 want=$2
  if ate_dry; then
    demo_ate get actors "$actor"
    return 0
  fi
  "$kubectl_ate" --context="$KUBECTL_CONTEXT" get actors "$actor" | grep -qw "$want"
}

# Resumes ACTOR, retrying while the control plane reports it busy (large
# rootfs builds outlive one ResumeActor call), until it is RUNNING.
demo_resume() {
  local actor=$1 timeout=$2
  ate_retry "$timeout" 5 demo_ate resume actor "$actor" \
    || ate_die "resume of $actor did not succeed within $timeout s"
  ate_retry "$timeout" 2 demo_actor_has_status "$actor" STATUS_RUNNING \
    || ate_die "actor $actor is not RUNNING after $timeout s"
}

demo_suspend() {
  local actor=$1
  demo_ate suspend actor "$actor"
  ate_retry 120 2 demo_actor_has_status "$actor" STATUS_SUSPENDED \
    || ate_die "actor $actor is not SUSPENDED after 120 s"
}

demo_router() {
  ate_port_forward "$ate_work/router-port-forward.log" "$router_port" \
    kubectl --context="$KUBECTL_CONTEXT" \
    --namespace ate-system port-forward svc/atenet-router "$router_port:80" \
    || ate_die "port-forward to svc/atenet-router did not come up"
}

# demo_http ACTOR METHOD PATH OUTFILE: one request to the actor through the
# router; the reply body goes to OUTFILE.  Retries while the router or the
# actor is not reachable yet.
demo_http() {
  local actor=$1 method=$2 path=$3 outfile=$4
  ate_retry 60 2 ate_run curl --silent --show-error --fail --max-time 60 \
    --request "$method" --header "Host: $actor.$ACTOR_HOST_SUFFIX" \
    --output "$outfile" "http://127.0.0.1:$router_port$path" \
    || ate_die "$method $path on actor $actor failed"
  ate_dry && return 0
  ate_log "reply: $(head -c 300 "$outfile")"
}

# Saves what explains a failure into the artifacts dir and prints the tail
# of the worker logs: cluster state, the demo's objects, worker pods
# (describe + logs), atelet logs, events.
demo_collect_logs() {
  local ns=$demo_namespace pool=$demo_pool pod
  ate_log "collecting logs into $artifacts"
  ate_dry || mkdir -p "$artifacts"
  ate_run_stdout "$artifacts/pods.txt" kubectl --context="$KUBECTL_CONTEXT" get nodes,pods --all-namespaces --output wide
  ate_run_stdout "$artifacts/events.txt" kubectl --context="$KUBECTL_CONTEXT" get events --all-namespaces --sort-by=.lastTimestamp
  if [[ -n $ns ]]; then
    ate_run_stdout "$artifacts/objects.yaml" kubectl --context="$KUBECTL_CONTEXT" --namespace "$ns" \
      get actortemplates,workerpools,deployments --output yaml
    ate_run_stdout "$artifacts/worker-pods-describe.txt" kubectl --context="$KUBECTL_CONTEXT" \
      --namespace "$ns" describe pods --selector "ate.dev/worker-pool=$pool"
    local pods=()
    if ate_dry; then
      pods=("pod/$pool-worker")
    else
      mapfile -t pods < <(kubectl --context="$KUBECTL_CONTEXT" --namespace "$ns" get pods \
        --selector "ate.dev/worker-pool=$pool" --output name 2>/dev/null)
    fi
    for pod in "${pods[@]}"; do
      ate_run_stdout "$artifacts/${pod#pod/}.log" kubectl --context="$KUBECTL_CONTEXT" \
        --namespace "$ns" logs "$pod" --all-containers --tail=2000
      ate_run_stdout "$artifacts/${pod#pod/}.previous.log" kubectl --context="$KUBECTL_CONTEXT" \
        --namespace "$ns" logs "$pod" --all-containers --previous --tail=2000
      if [[ -s $artifacts/${pod#pod/}.log ]]; then
        printf '\n----- last worker log lines of %s -----\n' "$pod" >&2
        tail -n 40 "$artifacts/${pod#pod/}.log" >&2
      fi
    done
  fi
  local atelets=()
  if ate_dry; then
    atelets=(pod/atelet-node)
  else
    mapfile -t atelets < <(kubectl --context="$KUBECTL_CONTEXT" --namespace ate-system get pods \
      --output name 2>/dev/null | grep '^pod/atelet-')
  fi
  for pod in "${atelets[@]}"; do
    ate_run_stdout "$artifacts/${pod#pod/}.log" kubectl --context="$KUBECTL_CONTEXT" \
      --namespace ate-system logs "$pod" --all-containers --tail=2000
  done
  ate_log "logs saved in $artifacts"
}

# The actor this run created (set by demo_create_actor), cleaned up at exit.
demo_actor=""

demo_create_actor() {
  local actor=$1 template=$2
  demo_actor=$actor
  demo_ate create actor "$actor" --template "$template"
}

# A RUNNING actor holds a worker pod: suspend it (its snapshot is then in
# the object store) and delete it, so that repeated runs do not fill the
# pool.  Best effort: it runs from the exit trap too.
demo_cleanup_actor() {
  [[ -n $demo_actor ]] || return 0
  if ((keep_actor)); then
    ate_log "keeping actor $demo_actor (delete it with: $kubectl_ate --context=$KUBECTL_CONTEXT delete actor $demo_actor)"
    return 0
  fi
  if ate_dry || demo_actor_has_status "$demo_actor" STATUS_RUNNING; then
    demo_ate suspend actor "$demo_actor" || true
    ate_retry 120 2 demo_actor_has_status "$demo_actor" STATUS_SUSPENDED || true
  fi
  demo_ate delete actor "$demo_actor" || ate_log "could not delete actor $demo_actor"
  demo_actor=""
}

# ActorTemplates are immutable: re-applying one whose image changed (every
# rebuild of the counter image has a new digest) fails.  Delete the old one
# first; its actors and golden snapshot go with it.
demo_replace_template() {
  local ns=$1 name=$2 want=$3 have
  if ate_dry; then
    ate_log "would delete actortemplate $ns/$name if its image is not $want"
    return 0
  fi
  have=$(kubectl --context="$KUBECTL_CONTEXT" --namespace "$ns" get actortemplate "$name" \
    --ignore-not-found --output 'jsonpath={.spec.containers[0].image}')
  [[ -n $have && $have != "$want" ]] || return 0
  ate_log "actortemplate $ns/$name has image $have; templates are immutable: replacing it"
  ate_kubectl --namespace "$ns" delete actortemplate "$name" --wait=true --timeout=120s
}

# Failure hook of lib.sh's exit trap.  Collection must not hide the
# original failure, so every step is allowed to fail.
ate_on_failure() {
  demo_collect_logs || true
  demo_cleanup_actor || true
}
