# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Pinned SHA-256 of the micro-VM runtime assets, sourced by assemble.sh and
# the stage-to-* scripts.  deploy/kustomize/base carries the same values in
# its SandboxConfigs (test/e2e checks that they agree).
#
# kata-containers 3.31.0 static release: the extracted guest kernel
# (vmlinux.container), guest image (kata-containers.img) and
# configuration-clh.toml.  The release tarball's own hash is not pinned here
# (it was not available offline when this was written); the extracted files
# are, so a changed tarball cannot slip through.  KATA_TARBALL_SHA256 adds a
# check of the download itself.
#
# cloud-hypervisor: the static release binary is the asset, so its pin is
# the download's.  v51.1 has no pin here: assemble.sh requires CH_SHA256 for
# it.

# ate_pin KIND VERSION ARCH NAME -> prints the pinned sha256, or fails.
ate_pin() {
  case "$1/$2/$3/$4" in
    ch/v52.0/amd64/cloud-hypervisor) echo 829af01ff075bb96c4f183905134c453a88d68cbabdc6b87df21098842581ee9 ;;
    ch/v52.0/arm64/cloud-hypervisor) echo bf004ddc1a148f47caa87ac49a783b8dbd6bf9bc27abe522ed197df7b982d3b1 ;;
    kata/3.31.0/amd64/vmlinux) echo a5f0af5fe536cd52c3ca214d15d81c577e5c5dc672947ab7980b91ddcb7c9d71 ;;
    kata/3.31.0/amd64/rootfs.img) echo ca9e06621b7edd2e056607c04db8bcebd92ad37ad4e37d18b8247d851feb0fae ;;
    kata/3.31.0/amd64/configuration-clh.toml) echo 8cce580e5abf78c05c8e9b929c24a524b9a81fc47be4e2e4f38dcae5ef052be6 ;;
    kata/3.31.0/arm64/vmlinux) echo a44d663f4ddad20a35527a3578fadef9beb23c1e5cb720e85d6928d6de70d3a1 ;;
    kata/3.31.0/arm64/rootfs.img) echo 7ebd652760c881374c0a761d34addcb76d9a650e35c10c01b780ebcdd9a1f2aa ;;
    kata/3.31.0/arm64/configuration-clh.toml) echo df504d9be0ed01765fdc8a9467955e1e671eb97724443f65a524bf914ccb818b ;;
    *) return 1 ;;
  esac
}

# The four files, in the order they are staged, and the SandboxConfig asset
# name each one is.
ATE_ASSET_FILES=(cloud-hypervisor vmlinux rootfs.img configuration-clh.toml)
ate_asset_name() {
  case $1 in
    cloud-hypervisor) echo cloud-hypervisor ;;
    vmlinux) echo kata-kernel ;;
    rootfs.img) echo kata-image ;;
    configuration-clh.toml) echo kata-config ;;
    *) return 1 ;;
  esac
}

ate_host_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}

ate_sha256() {
  sha256sum "$1" | cut -d' ' -f1
}

# ate_verify_file FILE WANT: fails with a message naming both hashes.
ate_verify_file() {
  local got
  got=$(ate_sha256 "$1")
  if [[ $got != "$2" ]]; then
    printf 'sha256 mismatch for %s:\n  pinned %s\n  got    %s\n' "$1" "$2" "$got" >&2
    return 1
  fi
}

# ate_verify_assets DIR ARCH CH_VERSION CH_SHA256 KATA_VERSION: every asset in
# DIR against its pin (CH_SHA256 stands in for a cloud-hypervisor version
# without one).
ate_verify_assets() {
  local dir=$1 arch=$2 ch_ver=$3 ch_sha=$4 kata_ver=$5 f want bad=0
  for f in "${ATE_ASSET_FILES[@]}"; do
    if [[ $f == cloud-hypervisor ]]; then
      want=$(ate_pin ch "$ch_ver" "$arch" "$f") || want=$ch_sha
      if [[ -z $want ]]; then
        echo "no pin for cloud-hypervisor $ch_ver $arch: set CH_SHA256" >&2
        return 1
      fi
    else
      want=$(ate_pin kata "$kata_ver" "$arch" "$f") || {
        echo "no pin for kata $kata_ver $arch $f" >&2
        return 1
      }
    fi
    if [[ ! -f $dir/$f ]]; then
      echo "missing asset: $dir/$f" >&2
      bad=1
    elif ! ate_verify_file "$dir/$f" "$want"; then
      bad=1
    fi
  done
  return "$bad"
}
