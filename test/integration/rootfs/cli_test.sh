#!/usr/bin/env bash
# ateom-rootfs end to end: usage and exit codes, geometry, build, reuse,
# inspect, byte-identical builds of fresh copies (cmp), e2fsck.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: test/integration/rootfs/cli_test.sh [--help]

Runs ateom-rootfs from \$ATE_BUILD_DIR/bin against small trees in a
temporary directory.  Exits 77 (skipped) without e2fsprogs.  As root, one
copy of the tree is made on a tmpfs (a mount under the temporary
directory, removed on exit).
USAGE
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for tool in mkfs.ext4 debugfs e2fsck cmp; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed"
    exit 77
  fi
done
bin=${ATE_BUILD_DIR:?ATE_BUILD_DIR is set by ctest}/bin/ateom-rootfs
py=${ATE_PYTHON3:-/usr/bin/python3}

dir=$(mktemp -d /tmp/ate-test-rootfs-cli-XXXXXX)
mnt=$dir/tmpfs
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then
    umount "$mnt"
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_exit <code> <command...>: run, keep stdout+stderr in $out.
expect_exit() {
  local want=$1 got=0
  shift
  out=$("$@" 2>&1) || got=$?
  if [[ $got -ne $want ]]; then
    fail "\`$*\` exited $got, want $want: $out"
  fi
}

contains() {
  [[ "$out" == *"$1"* ]] || fail "expected \"$1\" in: $out"
}

# ---- usage ----
expect_exit 0 "$bin" --help
contains "build [OPTIONS] SRC_DIR OUT_IMAGE"
contains "inspect [OPTIONS] IMAGE"
contains "base [OPTIONS] SRC_DIR"
expect_exit 2 "$bin"
expect_exit 2 "$bin" frobnicate
contains "unknown command"
expect_exit 2 "$bin" build only-one-arg
expect_exit 2 "$bin" build --no-such-option a b
expect_exit 2 "$bin" build --cache-max-bytes lots a b
expect_exit 0 "$bin" --version
contains "ateom-rootfs"

# ---- geometry: the test vector (docs/rootfs.md, "Geometry") ----
vec=$dir/vector
mkdir -p "$vec/sub"
truncate -s 1M "$vec/a"
truncate -s 2M "$vec/sub/b"
ln -s a "$vec/link"
expect_exit 0 "$bin" geometry "$vec"
contains "entries: 5"
contains "content-bytes: 3145728"
contains "inodes: 8198"
contains "size-mib: 518"
expect_exit 1 "$bin" geometry "$dir/missing"
contains "missing"

# ---- build, reuse, inspect ----
src=$dir/src
mkdir -p "$src/etc" "$src/bin"
printf 'actor\n' >"$src/etc/hostname"
printf '#!/bin/sh\necho hi\n' >"$src/bin/tool"
chmod 4755 "$src/bin/tool"
ln -s tool "$src/bin/link"
touch -d @1600000000 "$src/etc/hostname" "$src/bin/tool" "$src/etc" "$src/bin"
touch -h -d @1600000000 "$src/bin/link"
cache=$dir/cache
img=$dir/actor-rootfs.ext4

expect_exit 0 "$bin" build --cache-dir "$cache" --log-level warn "$src" "$img"
contains "origin: built"
[[ -f "$img.fingerprint" ]] || fail "no fingerprint next to the image"
expect_exit 0 "$bin" build --cache-dir "$cache" --log-level warn "$src" "$img"
contains "origin: reused"
expect_exit 0 "$bin" build --force --cache-dir "$cache" --log-level warn "$src" "$img"
contains "origin: cache"
expect_exit 0 e2fsck -fn "$img"
expect_exit 0 "$bin" inspect --cache-dir "$cache" "$img"
contains "fingerprint: valid"
contains "cache: cached"
contains "journal: no"
contains "ateom-rootfs-fingerprint 1"
expect_exit 0 "$bin" inspect --cache-dir "$cache" --json "$img"
"$py" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["in_cache"] and d["fingerprint_state"]=="valid", d' "$out" \
  || fail "inspect --json: $out"
expect_exit 0 "$bin" build --cache-dir "$cache" --json --log-level warn "$src" "$dir/json.ext4"
"$py" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["origin"]=="cache" and d["size_mib"]>=515, d' "$out" \
  || fail "build --json: $out"

# A write (as by a VM) makes the disk stale: rebuilt, not reused.
printf 'x' | dd of="$img" bs=1 seek=$((8 << 20)) conv=notrunc status=none
expect_exit 0 "$bin" inspect --cache-dir "$cache" "$img"
contains "written since"
expect_exit 0 "$bin" build --cache-dir "$cache" --log-level warn "$src" "$img"
contains "origin: cache"

# ---- base images: one per content, from any unpack ----
expect_exit 0 "$bin" base --cache-dir "$dir/bases" --log-level warn "$src"
contains "origin: built"
id=$(sed -n 's/^id: //p' <<<"$out")
[[ ${#id} -eq 64 ]] || fail "base id: $out"
[[ -f "$dir/bases/$id.ext4" && -f "$dir/bases/$id.fingerprint" ]] || fail "base not in the cache"
cmp "$img" "$dir/bases/$id.ext4" || fail "the base differs from a disk of the same tree"
cp -a "$src" "$dir/unpacked-again"
find "$dir/unpacked-again" -exec touch -h {} +
expect_exit 0 "$bin" base --json --cache-dir "$dir/bases" --log-level warn "$dir/unpacked-again"
"$py" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["origin"]=="cache" and d["id"]==sys.argv[2], d' "$out" "$id" \
  || fail "base --json of a fresh unpack: $out"
expect_exit 2 "$bin" base
# inspect looks at a cache directory without creating it.
expect_exit 1 "$bin" inspect --cache-dir "$dir/no-cache-here" "$dir/missing.ext4"
[[ ! -e "$dir/no-cache-here" ]] || fail "inspect created the cache directory"

# ---- errors ----
printf 'not an image' >"$dir/junk.ext4"
expect_exit 1 "$bin" inspect "$dir/junk.ext4"
contains "not an ext4 image"
expect_exit 1 "$bin" build --no-cache --log-level error "$dir/missing" "$dir/x.ext4"
contains "missing"
[[ ! -e "$dir/x.ext4" ]] || fail "a failed build left an image"
expect_exit 1 "$bin" build --no-cache --log-level error "$src" "$dir/no-such-dir/x.ext4"
contains "no-such-dir"

# ---- byte-identical builds of fresh copies ----
cp -a "$src" "$dir/copy"
sleep 1
expect_exit 0 "$bin" build --no-cache --log-level warn "$dir/copy" "$dir/copy.ext4"
cmp "$img" "$dir/copy.ext4" || fail "a fresh copy of the tree built different bytes"
if [[ $(id -u) -eq 0 ]]; then
  mkdir -p "$mnt"
  mount -t tmpfs -o size=32m tmpfs "$mnt"
  cp -a "$src" "$mnt/src"
  expect_exit 0 "$bin" build --no-cache --log-level warn "$mnt/src" "$dir/tmpfs.ext4"
  cmp "$img" "$dir/tmpfs.ext4" || fail "a copy on tmpfs built different bytes"
fi
echo "PASS"
