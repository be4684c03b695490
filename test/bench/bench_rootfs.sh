#!/usr/bin/env bash
# Rootfs disk builds: cold (mkfs.ext4) vs warm (clone from the image cache)
# for a 1 GiB and a 3 GiB tree, with the server's code path (ateom-rootfs);
# a cold base image against plain mkfs.ext4 -d of the same tree.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: test/bench/bench_rootfs.sh [--runs N] [--sizes "1 3"] [--cells LIST] [--clean] [--help]

Builds synthetic rootfs trees (~30,000 small files plus four large ones) of
1 and 3 GiB under \$ATE_BENCH_DIR/rootfs (kept between runs) and prints the
median time of:
  cold        ateom-rootfs build --no-cache (scan, mkfs.ext4, normalisation)
  warm        a build of the same tree into a new disk with the image cache
              primed (content digest, the default)
  warm-meta   the same with --metadata-digest (no content hashing)
  warm-xfs    warm on an XFS file system with reflink (root only: a loop
              mount under \$ATE_BENCH_DIR), where the clone shares extents
  plain       plain mkfs.ext4 -d of the tree into a sparse file of the same
              geometry (no determinism options, no normalisation, no digest)
  base        ateom-rootfs base with an empty cache: the cold Run's disk
              work with copy-on-write disks (stage, scan, content digest,
              mkfs, normalisation, into the cache in place)
and the cold/warm and base/plain ratios (the target for base/plain is
1.2x at most).  Every measured run starts after sync, so the
writeback of the previous run does not count against it.

  --runs N      measured runs per cell (default 3)
  --sizes LIST  tree sizes in GiB (default "1 3")
  --cells LIST  what to measure (default "cold warm meta xfs plain base")
  --clean       remove \$ATE_BENCH_DIR/rootfs afterwards

Environment: ATE_BUILD_DIR (default ./build), ATE_BENCH_DIR
(default /var/tmp/ateom-bench).
USAGE
}

runs=3
sizes="1 3"
cells="cold warm meta xfs plain base"
clean=0
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --cells) cells=$2; shift 2 ;;
    --clean) clean=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${ATE_BUILD_DIR:-$here/../../build}
bin=$build_dir/bin/ateom-rootfs
work=${ATE_BENCH_DIR:-/var/tmp/ateom-bench}/rootfs
xfs_img=$work/xfs.img
xfs_mnt=$work/xfs
if [[ ! -x "$bin" ]]; then
  echo "bench_rootfs: $bin not built" >&2
  exit 1
fi
mkdir -p "$work"

cleanup() {
  if mountpoint -q "$xfs_mnt" 2>/dev/null; then
    umount "$xfs_mnt"
  fi
  rm -rf "$xfs_mnt" "$xfs_img" "$work"/cache* "$work"/*.ext4 "$work"/*.ext4.fingerprint \
    "$work"/plain.img
  if ((clean)); then
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# tree <GiB>: generate once, reuse afterwards (the .done marker).
tree() {
  local gib=$1 dir=$work/tree-${1}g
  if [[ ! -f "$dir.done" ]]; then
    rm -rf "$dir"
    /usr/bin/python3 "$here/bench_rootfs_tree.py" "$dir" \
      --small-files 30000 --small-bytes $((200 << 20)) \
      --large-files 4 --large-bytes $(((gib << 30) - (200 << 20)))
    touch "$dir.done"
  fi
  echo "$dir"
}

now_ms() { date +%s%3N; }

median() {
  printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# timed <expected origin> <ateom-rootfs build args...>: prints milliseconds.
timed() {
  local want=$1 t0 t1 out
  shift
  sync
  t0=$(now_ms)
  out=$("$bin" build --json --log-level warn "$@")
  t1=$(now_ms)
  if [[ "$out" != *"\"origin\":\"$want\""* ]]; then
    echo "bench_rootfs: expected origin $want: $out" >&2
    exit 1
  fi
  echo $((t1 - t0))
}

cold() {
  local src=$1 samples=() i
  for ((i = 0; i < runs; i++)); do
    samples+=("$(timed built --no-cache "$src" "$work/cold.ext4")")
    rm -f "$work"/cold.ext4*
  done
  median "${samples[@]}"
}

# warm <src> <cache dir> <disk dir> [flags]
warm() {
  local src=$1 cache=$2 dir=$3 samples=() i
  shift 3
  timed built --cache-dir "$cache" "$@" "$src" "$dir/prime.ext4" >/dev/null
  rm -f "$dir"/prime.ext4*
  for ((i = 0; i < runs; i++)); do
    samples+=("$(timed cache --cache-dir "$cache" "$@" "$src" "$dir/warm.ext4")")
    rm -f "$dir"/warm.ext4*
  done
  rm -rf "$cache"
  median "${samples[@]}"
}

want() { [[ " $cells " == *" $1 "* ]]; }

# json_num <key> <json>: the integer part of a number field.
json_num() { grep -o "\"$1\":[0-9]*" <<<"$2" | head -n 1 | cut -d: -f2; }

# plain <src>: mkfs.ext4 -d as anyone would run it, same size and inodes.
plain() {
  local src=$1 samples=() i geo inodes size t0 t1 mkfs
  mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
  geo=$("$bin" geometry --json "$src")
  inodes=$(json_num inodes "$geo")
  size=$(json_num size_mib "$geo")
  for ((i = 0; i < runs; i++)); do
    rm -f "$work/plain.img"
    truncate -s "${size}M" "$work/plain.img"
    sync
    t0=$(now_ms)
    "$mkfs" -F -q -N "$inodes" -O ^has_journal -d "$src" "$work/plain.img" "${size}M"
    t1=$(now_ms)
    samples+=($((t1 - t0)))
  done
  rm -f "$work/plain.img"
  median "${samples[@]}"
}

# base <src>: a base image into an empty cache.
base() {
  local src=$1 samples=() i out
  for ((i = 0; i < runs; i++)); do
    rm -rf "$work/cache-base"
    sync
    out=$("$bin" base --json --log-level warn --cache-dir "$work/cache-base" "$src")
    if [[ "$out" != *'"origin":"built"'* ]]; then
      echo "bench_rootfs: expected a built base: $out" >&2
      exit 1
    fi
    # The caller has the base at elapsed_ms; the process then waits for
    # the seal (fsync), which is not on a Run's path.
    samples+=("$(json_num elapsed_ms "$out")")
  done
  rm -rf "$work/cache-base"
  median "${samples[@]}"
}

xfs_ready=0
if want xfs && [[ $(id -u) -eq 0 ]] && command -v mkfs.xfs >/dev/null; then
  mkdir -p "$xfs_mnt"
  truncate -s 32G "$xfs_img"
  if mkfs.xfs -q -f -m reflink=1 "$xfs_img" && mount -o loop "$xfs_img" "$xfs_mnt"; then
    xfs_ready=1
  fi
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }

ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }'; }

printf '%-6s %9s %9s %9s %9s %9s %12s %9s %9s %10s\n' tree files cold_ms warm_ms meta_ms xfs_ms \
  cold/warm plain_ms base_ms base/plain
for gib in $sizes; do
  src=$(tree "$gib")
  files=$(find "$src" | wc -l)
  c=- w=- m=- x=- p=- b=-
  if want cold; then c=$(cold "$src"); fi
  if want warm; then w=$(warm "$src" "$work/cache" "$work"); fi
  if want meta; then m=$(warm "$src" "$work/cache-meta" "$work" --metadata-digest); fi
  if ((xfs_ready)); then
    x=$(warm "$src" "$xfs_mnt/cache" "$xfs_mnt")
  fi
  if want plain; then p=$(plain "$src"); fi
  if want base; then b=$(base "$src"); fi
  printf '%-6s %9s %9s %9s %9s %9s %12s %9s %9s %10s\n' "${gib}GiB" "$files" "$c" "$w" "$m" "$x" \
    "$(ratio "$c" "$w")" "$p" "$b" "$(ratio2 "$b" "$p")"
done
echo "medians of $runs runs; warm = clone from the image cache into a new disk (content digest);"
echo "meta = --metadata-digest; xfs = warm on XFS with reflink (loop mount, root only);"
echo "plain = mkfs.ext4 -d alone; base = cold base image (until the caller has it)"
