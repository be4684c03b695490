#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Uploads the assembled micro-VM assets into the kind cluster's rustfs (S3
# API) bucket under kata-assets/<arch>/, where the kind overlay's
# SandboxConfigs point.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=stage-to-rustfs.sh
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=hack/kind/lib.sh
source "$here/../kind/lib.sh"
# shellcheck source=hack/microvm-assets/pins.sh
source "$here/pins.sh"
# shellcheck source=hack/microvm-assets/stage-common.sh
source "$here/stage-common.sh"

usage() {
  cat <<USAGE
Usage: hack/microvm-assets/stage-to-rustfs.sh [options]

Port-forwards svc/rustfs of the cluster and copies the assets with the aws
CLI to s3://<bucket>/kata-assets/<arch>/ (creating the bucket if needed).
Credentials default to rustfs' (rustfsadmin/rustfsadmin, us-east-1) unless
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION are set.

$(stage_usage_common)
  --namespace NS       namespace of svc/rustfs (default: \$NAMESPACE, else ate-system)
  --context CTX        kubectl context (default: \$KUBECTL_CONTEXT)
  --local-port PORT    local end of the port-forward (default 9000)
USAGE
}

namespace=${NAMESPACE:-ate-system}
KUBECTL_CONTEXT=${KUBECTL_CONTEXT:-}
local_port=9000

while (($#)); do
  rc=0
  stage_parse_common "$@" || rc=$?
  if ((rc > 0)); then
    shift "$rc"
    continue
  fi
  case $1 in
    --namespace | --context | --local-port)
      (($# >= 2)) || ate_die "$1 needs a value"
      case $1 in
        --namespace) namespace=$2 ;;
        --context) KUBECTL_CONTEXT=$2 ;;
        --local-port) local_port=$2 ;;
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
if [[ ! $local_port =~ ^[0-9]+$ ]] || ((local_port == 0 || local_port > 65535)); then
  ate_die "invalid --local-port '$local_port'"
fi

stage_check_assets
ate_require_tools kubectl aws
ate_make_work_dir
trap ate_exit_trap EXIT

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-rustfsadmin}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-rustfsadmin}
export AWS_REGION=${AWS_REGION:-us-east-1}
endpoint=http://127.0.0.1:$local_port

port_forward() {
  ate_port_forward "$ate_work/port-forward.log" "$local_port" \
    kubectl ${KUBECTL_CONTEXT:+"--context=$KUBECTL_CONTEXT"} \
    --namespace "$namespace" port-forward svc/rustfs "$local_port:9000" \
    || ate_die "port-forward to svc/rustfs in $namespace did not come up"
}

upload() {
  local f
  if ! ate_dry && ! aws --endpoint-url "$endpoint" s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    ate_run aws --endpoint-url "$endpoint" s3 mb "s3://$bucket"
  fi
  for f in "${ATE_ASSET_FILES[@]}"; do
    ate_run aws --endpoint-url "$endpoint" s3 cp --only-show-errors "$out/$f" "s3://$bucket/$prefix/$f"
  done
  ate_run aws --endpoint-url "$endpoint" s3 ls "s3://$bucket/$prefix/"
}

ate_phase "port-forward svc/rustfs" port_forward
ate_phase "upload to s3://$bucket/$prefix/" upload
