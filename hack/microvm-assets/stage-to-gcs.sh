#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Uploads the assembled micro-VM assets into a GCS bucket under
# kata-assets/<arch>/, where the gke overlay's SandboxConfigs point.
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=stage-to-gcs.sh
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=hack/kind/lib.sh
source "$here/../kind/lib.sh"
# shellcheck source=hack/microvm-assets/pins.sh
source "$here/pins.sh"
# shellcheck source=hack/microvm-assets/stage-common.sh
source "$here/stage-common.sh"

usage() {
  cat <<USAGE
Usage: hack/microvm-assets/stage-to-gcs.sh [options]

Copies the assets with the gcloud CLI (authenticated for the bucket) to
gs://<bucket>/kata-assets/<arch>/.

$(stage_usage_common)
  --project ID         GCP project for gcloud (default: \$PROJECT_ID, else
                       gcloud's configured one)
USAGE
}

project=${PROJECT_ID:-}

while (($#)); do
  rc=0
  stage_parse_common "$@" || rc=$?
  if ((rc > 0)); then
    shift "$rc"
    continue
  fi
  case $1 in
    --project)
      (($# >= 2)) || ate_die "$1 needs a value"
      project=$2
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

stage_check_assets
ate_require_tools gcloud
ate_make_work_dir
trap ate_exit_trap EXIT

upload() {
  local f
  for f in "${ATE_ASSET_FILES[@]}"; do
    ate_run gcloud storage cp ${project:+"--project=$project"} "$out/$f" "gs://$bucket/$prefix/$f"
  done
  ate_run gcloud storage ls ${project:+"--project=$project"} --long "gs://$bucket/$prefix/"
}

ate_phase "upload to gs://$bucket/$prefix/" upload
