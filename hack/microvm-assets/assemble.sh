#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Downloads the micro-VM runtime assets for one architecture, verifies them
# against the pins in pins.sh and puts them into one folder:
#   cloud-hypervisor  vmlinux  rootfs.img  configuration-clh.toml
set -o errexit -o nounset -o pipefail

ATE_SCRIPT=assemble.sh
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=hack/kind/lib.sh
source "$here/../kind/lib.sh"
# shellcheck source=hack/microvm-assets/pins.sh
source "$here/pins.sh"

usage() {
  cat <<USAGE
Usage: hack/microvm-assets/assemble.sh [options]

Downloads kata-containers static release artifacts and a cloud-hypervisor
static binary, extracts the guest kernel (vmlinux), guest image (rootfs.img)
and kata config (configuration-clh.toml), verifies every file's SHA-256
against the pinned values and only then moves them into the output folder.
Does nothing when the folder already holds verified assets (--force redoes).

  --arch amd64|arm64     target architecture (default: \$ARCH, else the host's)
  --ch-version VERSION   cloud-hypervisor release: v52.0 (default, pinned) or
                         v51.1 (not pinned here: needs --ch-sha256)
  --ch-sha256 HEX        expected SHA-256 of the cloud-hypervisor binary for a
                         version without a pin (default: \$CH_SHA256)
  --kata-version VER     kata-containers release (default and only pinned: 3.31.0)
  --kata-tarball-sha256 HEX
                         also check the downloaded kata tarball (default:
                         \$KATA_TARBALL_SHA256; unset: only the extracted
                         files are checked)
  --out DIR              output folder (default: \$OUT, else
                         build-assets/<arch> in the repository, git-ignored)
  --force                download again even if verified assets are present
  --dry-run              print the commands, download nothing
  -h, --help             this text

The output folder also gets SHA256SUMS, which stage-to-rustfs.sh and
stage-to-gcs.sh check before uploading.
USAGE
}

arch=${ARCH:-$(ate_host_arch)}
ch_version=${CH_VER:-v52.0}
ch_sha=${CH_SHA256:-}
kata_version=${KATA_VER:-3.31.0}
kata_tarball_sha=${KATA_TARBALL_SHA256:-}
out=${OUT:-}
force=0

while (($#)); do
  case $1 in
    --arch | --ch-version | --ch-sha256 | --kata-version | --kata-tarball-sha256 | --out)
      (($# >= 2)) || ate_die "$1 needs a value"
      case $1 in
        --arch) arch=$2 ;;
        --ch-version) ch_version=$2 ;;
        --ch-sha256) ch_sha=$2 ;;
        --kata-version) kata_version=$2 ;;
        --kata-tarball-sha256) kata_tarball_sha=$2 ;;
        --out) out=$2 ;;
      esac
      shift
      ;;
    --force) force=1 ;;
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

case $arch in
  amd64) ch_file=cloud-hypervisor-static ;;
  arm64) ch_file=cloud-hypervisor-static-aarch64 ;;
  *) ate_die "unsupported architecture '$arch' (amd64 or arm64)" ;;
esac
case $ch_version in
  v51.1 | v52.0) ;;
  *) ate_die "unsupported cloud-hypervisor version '$ch_version' (v51.1 or v52.0)" ;;
esac
if pinned=$(ate_pin ch "$ch_version" "$arch" cloud-hypervisor); then
  if [[ -n $ch_sha && $ch_sha != "$pinned" ]]; then
    ate_die "--ch-sha256 $ch_sha conflicts with the pin for cloud-hypervisor $ch_version $arch ($pinned)"
  fi
  ch_sha=$pinned
elif [[ -z $ch_sha ]]; then
  ate_die "cloud-hypervisor $ch_version has no pinned SHA-256 here; pass --ch-sha256 (from a release you trust)"
fi
for hex in "$ch_sha" ${kata_tarball_sha:+"$kata_tarball_sha"}; do
  [[ $hex =~ ^[0-9a-f]{64}$ ]] || ate_die "not a SHA-256 (64 lowercase hex digits): '$hex'"
done
ate_pin kata "$kata_version" "$arch" vmlinux >/dev/null \
  || ate_die "kata-containers $kata_version has no pins (pinned: 3.31.0)"
: "${out:=$ATE_ROOT/build-assets/$arch}"

kata_url="https://github.com/kata-containers/kata-containers/releases/download/$kata_version/kata-static-$kata_version-$arch.tar.zst"
ch_url="https://github.com/cloud-hypervisor/cloud-hypervisor/releases/download/$ch_version/$ch_file"

if ((!force)) && ! ate_dry && [[ -d $out ]] \
  && ate_verify_assets "$out" "$arch" "$ch_version" "$ch_sha" "$kata_version" 2>/dev/null; then
  ate_log "verified assets already in $out (--force to download again)"
  exit 0
fi

ate_require_tools curl tar zstd sha256sum
ate_make_work_dir
trap ate_exit_trap EXIT
stage=$ate_work/assets

download() {
  ate_run curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
}

fetch_kata() {
  download "$kata_url" "$ate_work/kata-static.tar.zst"
  if [[ -n $kata_tarball_sha ]] && ! ate_dry; then
    ate_verify_file "$ate_work/kata-static.tar.zst" "$kata_tarball_sha"
  fi
  ate_run mkdir -p "$ate_work/kata" "$stage"
  ate_run tar --zstd -xf "$ate_work/kata-static.tar.zst" -C "$ate_work/kata"
  local share=$ate_work/kata/opt/kata/share
  # vmlinux.container and kata-containers.img are symlinks to versioned
  # files: copy what they point at.
  ate_run cp --dereference "$share/kata-containers/vmlinux.container" "$stage/vmlinux"
  ate_run cp --dereference "$share/kata-containers/kata-containers.img" "$stage/rootfs.img"
  ate_run cp --dereference "$share/defaults/kata-containers/configuration-clh.toml" \
    "$stage/configuration-clh.toml"
}

fetch_ch() {
  ate_run mkdir -p "$stage"
  download "$ch_url" "$stage/cloud-hypervisor"
  ate_run chmod 0755 "$stage/cloud-hypervisor"
}

# Nothing reaches the output folder unless every file matches its pin.
verify_and_install() {
  local f
  if ate_dry; then
    ate_log "would verify the staged files against the pins and move them into $out"
    return 0
  fi
  ate_verify_assets "$stage" "$arch" "$ch_version" "$ch_sha" "$kata_version" \
    || ate_die "downloaded assets do not match the pins; $out left unchanged"
  (cd "$stage" && sha256sum "${ATE_ASSET_FILES[@]}") >"$stage/SHA256SUMS"
  mkdir -p "$out"
  for f in "${ATE_ASSET_FILES[@]}" SHA256SUMS; do
    mv -f "$stage/$f" "$out/$f"
  done
  ate_log "assets for $arch (kata $kata_version, cloud-hypervisor $ch_version) in $out:"
  sed 's/^/    /' "$out/SHA256SUMS"
}

ate_log "assembling $arch assets: kata-containers $kata_version, cloud-hypervisor $ch_version"
ate_phase "download kata-containers $kata_version" fetch_kata
ate_phase "download cloud-hypervisor $ch_version" fetch_ch
ate_phase "verify" verify_and_install
