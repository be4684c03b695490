#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prints, one per line, the Debian packages that own the shared libraries the
# given ELF binaries load, so the runtime stage of the worker image installs
# exactly those (runtime names like libgrpc29, not the -dev packages).
set -o errexit -o nounset -o pipefail

usage() {
  echo "Usage: deploy/image/runtime-packages.sh BINARY..."
  echo "Prints the Debian packages owning the shared libraries the binaries load."
}
if [[ $# -eq 1 && ($1 == -h || $1 == --help) ]]; then
  usage
  exit 0
fi
if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi
for bin in "$@"; do
  if [[ $bin == -* || ! -f $bin ]]; then
    usage >&2
    echo "runtime-packages: not a file: $bin" >&2
    exit 2
  fi
done

# dpkg may know a library under /lib or /usr/lib (usrmerge) or only under its
# symlink name, so try the path ldd printed, its /usr-less form and the file
# it resolves to.
owner() {
  local lib=$1 candidate real
  real=$(realpath "$lib")
  for candidate in "$lib" "${lib#/usr}" "/usr${lib}" "$real" "${real#/usr}"; do
    if dpkg -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1; then
      return 0
    fi
  done
  echo "runtime-packages: no Debian package owns $lib" >&2
  return 1
}

mapfile -t libs < <(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
for lib in "${libs[@]}"; do
  owner "$lib"
done | sort -u
