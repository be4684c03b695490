# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Option parsing and checks shared by stage-to-rustfs.sh and stage-to-gcs.sh
# (sourced after lib.sh and pins.sh).  Sets: arch, out, bucket, prefix.

stage_usage_common() {
  cat <<USAGE
  --arch amd64|arm64   architecture of the assets (default: \$ARCH, else the
                       host's); objects go to kata-assets/<arch>/<file>
  --out DIR            folder made by assemble.sh (default: \$OUT, else
                       build-assets/<arch>)
  --bucket NAME        bucket (default: \$BUCKET, else ate-snapshots)
  --dry-run            print the commands, upload nothing
  -h, --help           this text
USAGE
}

arch=${ARCH:-$(ate_host_arch)}
out=${OUT:-}
bucket=${BUCKET:-ate-snapshots}

# stage_parse_common ARG [VALUE]: handles a common option; returns the number
# of words it used (0: not a common option).
stage_parse_common() {
  case $1 in
    --arch | --out | --bucket)
      [[ $# -ge 2 ]] || ate_die "$1 needs a value"
      case $1 in
        --arch) arch=$2 ;;
        --out) out=$2 ;;
        --bucket) bucket=$2 ;;
      esac
      return 2
      ;;
    --dry-run)
      # shellcheck disable=SC2034 # read by lib.sh
      ATE_DRY_RUN=1
      return 1
      ;;
  esac
  return 0
}

# Checks the folder before anything is uploaded: every file present and
# unchanged since assemble.sh verified it (SHA256SUMS).
stage_check_assets() {
  case $arch in
    amd64 | arm64) ;;
    *) ate_die "unsupported architecture '$arch' (amd64 or arm64)" ;;
  esac
  [[ $bucket =~ ^[a-z0-9][-a-z0-9_.]{1,61}[a-z0-9]$ ]] || ate_die "invalid bucket name '$bucket'"
  : "${out:=$ATE_ROOT/build-assets/$arch}"
  # shellcheck disable=SC2034 # read by the sourcing script
  prefix=kata-assets/$arch
  if ate_dry && [[ ! -f $out/SHA256SUMS ]]; then
    ate_log "would check $out/SHA256SUMS (not there yet: dry run)"
    return 0
  fi
  [[ -f $out/SHA256SUMS ]] || ate_die "$out/SHA256SUMS missing: run hack/microvm-assets/assemble.sh --arch $arch first"
  (cd "$out" && sha256sum --quiet --strict --check SHA256SUMS) \
    || ate_die "assets in $out changed since assemble.sh verified them"
  local f
  for f in "${ATE_ASSET_FILES[@]}"; do
    grep -q "  $f\$" "$out/SHA256SUMS" || ate_die "$out/SHA256SUMS does not list $f"
  done
  # The manifests pin kata 3.31.0 and cloud-hypervisor v52.0: staging other
  # kata files would only fail later in atelet; another cloud-hypervisor is
  # fine if the SandboxConfig says so (run-microvm-demo.sh --ch-version).
  for f in vmlinux rootfs.img configuration-clh.toml; do
    ate_verify_file "$out/$f" "$(ate_pin kata 3.31.0 "$arch" "$f")" \
      || ate_die "$out/$f is not the pinned kata-containers 3.31.0 $arch file"
  done
  if ! ate_verify_file "$out/cloud-hypervisor" "$(ate_pin ch v52.0 "$arch" cloud-hypervisor)" 2>/dev/null; then
    ate_log "note: cloud-hypervisor is not the pinned v52.0 binary; set its sha256 in the SandboxConfig"
  fi
  ate_log "staging from $out:"
  sed 's/^/    /' "$out/SHA256SUMS"
}
