#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Creates a kind cluster for ateom-microvm: a local image registry, /dev/kvm
# in the micro-VM nodes, and the node label and taint
# ate.dev/sandboxClass=microvm that micro-VM worker pods select and tolerate.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=create-cluster.sh
# shellcheck source=hack/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REGISTRY_NAME=kind-registry
REGISTRY_PORT=5001
REGISTRY_IMAGE=${ATE_REGISTRY_IMAGE:-registry:3.0.0}
KVM_PROBE_IMAGE=${ATE_KVM_PROBE_IMAGE:-busybox:1.36.1}
# The node image of kind v0.32.0 (Kubernetes v1.36.1), the kind release the
# pinned substrate commit builds with (its hack/tools/kind).  kind supports a
# node image only with the release that built it, hence the digest.
KIND_PINNED_NODE_IMAGE=kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5
KIND_MIN_VERSION=0.32.0
# The substrate control plane's pod-certificate controller uses the
# PodCertificateRequest and ClusterTrustBundle APIs of this group version
# (beta from Kubernetes 1.35, behind the feature gates set below).
PCR_GROUP_VERSION=certificates.k8s.io/v1beta1
CLASS_KEY=ate.dev/sandboxClass
# In the /var/lib/ateom-gvisor hostPath every worker pod mounts.
NODE_CONFIG=/var/lib/ateom-gvisor/ateom-microvm/config
CLASS_VALUE=microvm

usage() {
  cat <<USAGE
Usage: hack/kind/create-cluster.sh [options]

Creates (or re-uses) a kind cluster for micro-VM actors:
  - a local registry container "$REGISTRY_NAME" on 127.0.0.1:$REGISTRY_PORT, used by
    the nodes as the mirror of localhost:$REGISTRY_PORT;
  - one control-plane node (untainted: it runs the substrate control plane)
    and --workers micro-VM nodes with /dev/kvm mounted, labelled and
    tainted $CLASS_KEY=$CLASS_VALUE (NoSchedule);
  - the feature gates the substrate control plane needs
    (ClusterTrustBundle, ClusterTrustBundleProjection, PodCertificateRequest).
It first checks that /dev/kvm works where the nodes will run and that kind is
v$KIND_MIN_VERSION or newer, and at the end that the cluster serves the
PodCertificateRequest API ($PCR_GROUP_VERSION, Kubernetes 1.35 or newer)
the substrate control plane needs.

  --name NAME        cluster name (default: \$KIND_CLUSTER_NAME, else "kind")
  --workers N        micro-VM worker nodes (default 1); 0 puts everything on
                     the control-plane node, labelled but not tainted
  --node-image IMG   kind node image (default: \$KIND_NODE_IMAGE, else the pin
                     $KIND_PINNED_NODE_IMAGE)
  --recreate         delete an existing cluster of that name first (default:
                     re-use it and only re-apply the node settings)
  --allow-no-kvm     create the cluster even when KVM is unusable (no
                     micro-VM nodes: useful for control-plane work only)
  --server-config F  install F as the node's ateom-microvm configuration
                     file ($NODE_CONFIG) on every micro-VM
                     node: the worker pods read it when they start (see
                     docs/operations.md, "Server configuration")
  --config-out FILE  where to write the kind config (default: the work dir)
  --dry-run          print the commands and the kind config, run nothing
  -h, --help         this text
USAGE
}

cluster=${KIND_CLUSTER_NAME:-kind}
workers=1
node_image=${KIND_NODE_IMAGE:-$KIND_PINNED_NODE_IMAGE}
recreate=0
allow_no_kvm=0
config_out=""
server_config=""

while (($#)); do
  case $1 in
    --name)
      (($# >= 2)) || ate_die "--name needs a value"
      cluster=$2
      shift
      ;;
    --workers)
      if (($# < 2)) || [[ ! $2 =~ ^[0-9]+$ ]] || (($2 > 16)); then
        ate_die "--workers needs 0..16"
      fi
      workers=$2
      shift
      ;;
    --node-image)
      (($# >= 2)) || ate_die "--node-image needs a value"
      node_image=$2
      shift
      ;;
    --recreate) recreate=1 ;;
    --allow-no-kvm) allow_no_kvm=1 ;;
    --config-out)
      (($# >= 2)) || ate_die "--config-out needs a path"
      config_out=$2
      shift
      ;;
    --server-config)
      (($# >= 2)) || ate_die "--server-config needs a file"
      server_config=$2
      shift
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
[[ $cluster =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || ate_die "invalid cluster name '$cluster'"
if [[ -n $server_config && ! -f $server_config ]]; then
  ate_die "--server-config: no file $server_config"
fi

ate_require_tools docker kind kubectl
ate_make_work_dir
trap ate_exit_trap EXIT
: "${config_out:=$ate_work/kind-config.yaml}"
KUBECTL_CONTEXT=kind-$cluster

# /dev/kvm must work where the nodes run: on the host for Linux docker, in
# the provider VM for Docker Desktop, Colima or Lima.
# ATE_KVM_DEVICE: the host device checked (tests point it elsewhere).
has_kvm=1
probe_kvm() {
  local dev=${ATE_KVM_DEVICE:-/dev/kvm}
  if [[ $(uname -s) == Linux ]] && ! ate_dry; then
    if [[ ! -c $dev ]]; then
      ate_log "no $dev on this host (is KVM or nested virtualization enabled?)"
      has_kvm=0
    elif [[ ! -r $dev || ! -w $dev ]]; then
      ate_log "$dev exists but is not read/writable for $(id -un) (add a udev rule or the kvm group)"
      has_kvm=0
    fi
  fi
  if ((has_kvm)) && ! ate_run docker run --rm --device /dev/kvm "$KVM_PROBE_IMAGE" true; then
    ate_log "docker cannot pass /dev/kvm into a container"
    has_kvm=0
  fi
  if ((!has_kvm)); then
    ((allow_no_kvm)) || ate_die "KVM is not usable; micro-VMs cannot run (--allow-no-kvm to create the cluster anyway)"
    ate_log "continuing without micro-VM nodes (--allow-no-kvm)"
    workers=0
  fi
}

# "kind v0.32.0 go1.26.1 linux/amd64" -> 0.32.0
check_kind_version() {
  local out version
  if ate_dry; then
    ate_log "would check that kind is v$KIND_MIN_VERSION or newer"
    return 0
  fi
  out=$(kind version) || ate_die "kind version failed"
  version=$(sed -n 's/^kind v\([0-9][0-9.]*\).*/\1/p' <<<"$out")
  [[ -n $version ]] || ate_die "cannot read the kind version from: $out"
  if [[ $(printf '%s\n%s\n' "$KIND_MIN_VERSION" "$version" | sort -V | head -n1) != "$KIND_MIN_VERSION" ]]; then
    ate_die "kind v$version is too old: v$KIND_MIN_VERSION or newer is needed (its node images, kind load)"
  fi
  ate_log "kind v$version"
}

# Without this API upstream's installer waits forever for trust bundles
# that its pod-certificate controller can never make.
check_pcr_api() {
  local resources
  if ate_dry; then
    ate_kubectl get --raw "/apis/$PCR_GROUP_VERSION"
    return 0
  fi
  resources=$(kubectl --context="$KUBECTL_CONTEXT" --request-timeout=30s get --raw \
    "/apis/$PCR_GROUP_VERSION" 2>&1) \
    || ate_die "the cluster does not serve $PCR_GROUP_VERSION ($resources): Kubernetes 1.35 or newer with the PodCertificateRequest feature gates is needed (--node-image, --recreate)"
  [[ $resources == *'"podcertificaterequests"'* && $resources == *'"clustertrustbundles"'* ]] \
    || ate_die "the cluster's $PCR_GROUP_VERSION lacks podcertificaterequests or clustertrustbundles: Kubernetes 1.35 or newer with the PodCertificateRequest feature gates is needed (--node-image, --recreate)"
  ate_log "the cluster serves PodCertificateRequest and ClusterTrustBundle ($PCR_GROUP_VERSION)"
}

start_registry() {
  local running=false
  if ! ate_dry; then
    running=$(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null || true)
  fi
  if [[ $running == true ]]; then
    ate_log "registry $REGISTRY_NAME already running"
    return 0
  fi
  if ! ate_dry && docker inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
    ate_run docker rm -f "$REGISTRY_NAME"
  fi
  ate_run docker run --detach --restart=always --label created-by=ateom-microvm \
    --publish "127.0.0.1:$REGISTRY_PORT:5000" --network bridge \
    --name "$REGISTRY_NAME" "$REGISTRY_IMAGE"
}

# The micro-VM part of a node: /dev/kvm, the class label, and on workers the
# taint that keeps every other pod off.
microvm_node_yaml() {
  local taint=$1
  cat <<YAML
    labels:
      $CLASS_KEY: $CLASS_VALUE
    extraMounts:
      - hostPath: /dev/kvm
        containerPath: /dev/kvm
YAML
  ((taint)) || return 0
  cat <<YAML
    kubeadmConfigPatches:
      - |
        kind: JoinConfiguration
        nodeRegistration:
          taints:
            - key: $CLASS_KEY
              value: $CLASS_VALUE
              effect: NoSchedule
YAML
}

write_config() {
  local i
  {
    cat <<YAML
# kind config written by hack/kind/create-cluster.sh
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $cluster
# The substrate control plane's pod-certificate controller needs these.
featureGates:
  ClusterTrustBundle: true
  ClusterTrustBundleProjection: true
  PodCertificateRequest: true
runtimeConfig:
  "certificates.k8s.io/v1beta1": "true"
# Registry mirrors come from /etc/containerd/certs.d (hosts.toml per node).
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
nodes:
  - role: control-plane
YAML
    if ((workers == 0 && has_kvm)); then
      microvm_node_yaml 0
    fi
    for ((i = 0; i < workers; i++)); do
      printf '  - role: worker\n'
      microvm_node_yaml 1
    done
  } >"$config_out"
  ate_log "kind config in $config_out:"
  sed 's/^/    /' "$config_out"
}

cluster_exists() {
  ate_dry && return 1
  kind get clusters 2>/dev/null | grep -qx "$cluster"
}

create_cluster() {
  if cluster_exists; then
    if ((recreate)); then
      ate_run kind delete cluster --name "$cluster"
    else
      ate_log "cluster $cluster exists; re-using it (--recreate to start over)"
      return 0
    fi
  fi
  ate_run kind create cluster --name "$cluster" --config "$config_out" \
    --image "$node_image" --wait 120s
}

# Node names: kind's own list, or in dry-run the names kind would give.
node_names() {
  local i
  if ate_dry; then
    printf '%s-control-plane\n' "$cluster"
    for ((i = 1; i <= workers; i++)); do
      if ((i == 1)); then printf '%s-worker\n' "$cluster"; else printf '%s-worker%d\n' "$cluster" "$i"; fi
    done
  else
    kind get nodes --name "$cluster"
  fi
}

# The server reads the file only if root owns it and nobody else may write
# it; written aside and renamed, so a starting worker never reads half.
install_server_config() {
  local node=$1 dir=${NODE_CONFIG%/*}
  [[ -n $server_config ]] || return 0
  ate_run_stdin "$server_config" docker exec -i "$node" sh -c \
    "mkdir -p '$dir' && cat > '$NODE_CONFIG.new' && chown root:root '$NODE_CONFIG.new' && chmod 0644 '$NODE_CONFIG.new' && mv '$NODE_CONFIG.new' '$NODE_CONFIG'"
}

prepare_nodes() {
  local node nodes hosts_dir="/etc/containerd/certs.d/localhost:$REGISTRY_PORT"
  printf '[host."http://%s:5000"]\n' "$REGISTRY_NAME" >"$ate_work/hosts.toml"
  mapfile -t nodes < <(node_names)
  ((${#nodes[@]} > 0)) || ate_die "kind lists no nodes for cluster $cluster"
  for node in "${nodes[@]}"; do
    ate_run docker exec "$node" mkdir -p "$hosts_dir"
    ate_run_stdin "$ate_work/hosts.toml" docker exec -i "$node" cp /dev/stdin "$hosts_dir/hosts.toml"
    # Pod-to-pod traffic through a node's own address (gVisor pools need it;
    # harmless for micro-VMs).
    ate_run docker exec "$node" sysctl -w net.ipv4.conf.all.proxy_arp=1
    if [[ $node == *-control-plane ]]; then
      # kind taints the control plane when there are workers; the substrate
      # control plane runs here, so lift it.
      ((workers == 0)) || ate_kubectl taint node "$node" node-role.kubernetes.io/control-plane:NoSchedule- || true
      ((workers == 0 && has_kvm)) || continue
      ate_kubectl label node "$node" "$CLASS_KEY=$CLASS_VALUE" --overwrite
      install_server_config "$node"
      continue
    fi
    ((has_kvm)) || continue
    # The kind config already sets label and taint; re-applying them keeps a
    # re-used cluster right too.  /dev/kvm keeps the host's mode: the worker
    # pods are privileged and root, and a chmod through the bind mount would
    # change the host's device.
    ate_kubectl label node "$node" "$CLASS_KEY=$CLASS_VALUE" --overwrite
    install_server_config "$node"
    ate_kubectl taint node "$node" "$CLASS_KEY=$CLASS_VALUE:NoSchedule" --overwrite
  done
}

connect_registry() {
  local net="null"
  if ! ate_dry; then
    net=$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REGISTRY_NAME")
  fi
  if [[ $net == null ]]; then
    ate_run docker network connect kind "$REGISTRY_NAME"
  fi
  # Documents the registry for tools that look for it (KEP-1755).
  cat >"$ate_work/local-registry-hosting.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:$REGISTRY_PORT"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML
  ate_kubectl apply -f "$ate_work/local-registry-hosting.yaml"
  ate_kubectl wait --for=condition=Ready nodes --all --timeout=180s
}

ate_phase "kind version" check_kind_version
ate_phase "probe KVM" probe_kvm
ate_phase "local registry $REGISTRY_NAME" start_registry
ate_phase "kind config" write_config
ate_phase "kind cluster $cluster" create_cluster
ate_phase "prepare nodes" prepare_nodes
ate_phase "connect registry" connect_registry
ate_phase "PodCertificateRequest API" check_pcr_api
ate_log "cluster $cluster ready (kubectl context $KUBECTL_CONTEXT, registry localhost:$REGISTRY_PORT)"
