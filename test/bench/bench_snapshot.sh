#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark of the snapshot transfer codec (ateom-snapshot) against the zstd
# CLI on the same sparse memory image, measured in the same run: encode and
# decode times (medians), throughput on the logical and the populated size,
# compressed sizes and ratios.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: test/bench/bench_snapshot.sh [--runs N] [--size BYTES] [--populated F] [--help]

  --runs N         repetitions per measurement; medians are printed (default 5)
  --size BYTES     logical size of the image (default 2147483648 = 2 GiB)
  --populated F    populated fraction, random 4 KiB..2 MiB extents (default 0.10)

Compares \`ateom-snapshot pack\` (sparse-extent format: holes never read) with
\`zstd -T0\` over the whole file, at level 1 (atelet's default) and level 3
(the baseline, zstd's default), and the decoders (\`unpack\` with and without
fsync, \`zstd -d\`, which writes sparse files too).  Outputs are removed
before each run so that no replace-rename write-back is measured.

Environment: ATE_BUILD_DIR (default build), ATE_SOURCE_DIR (default: this
checkout), ATE_BENCH_DIR scratch directory (default /var/tmp/ateom-bench).
USAGE
}

runs=5
size=$((2 * 1024 * 1024 * 1024))
populated=0.10
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --populated) populated=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

src_dir=${ATE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build_dir=${ATE_BUILD_DIR:-$src_dir/build}
bin=$build_dir/bin/ateom-snapshot
python=/usr/bin/python3
for tool in "$bin" "$python" "$(command -v zstd || true)"; do
  if [[ -z "$tool" || ! -x "$tool" ]]; then
    echo "bench_snapshot: missing ${tool:-zstd} (build ateom-snapshot, install zstd)" >&2
    exit 1
  fi
done

mkdir -p "${ATE_BENCH_DIR:-/var/tmp/ateom-bench}"
work=$(mktemp -d "${ATE_BENCH_DIR:-/var/tmp/ateom-bench}/snapshot.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/image
declare -A times sizes

# now_us: monotonic-enough wall clock in microseconds.
now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }

# timed KEY CMD...: run CMD quietly, append its wall time (us) to KEY.
timed() {
  local key=$1 t0 t1
  shift
  t0=$(now_us)
  "$@" >/dev/null
  t1=$(now_us)
  times[$key]+="$((t1 - t0)) "
}

median() {
  tr ' ' '\n' | grep -v '^$' | sort -n |
    awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

"$python" "$src_dir/test/bench/bench_snapshot_image.py" "$img" --size "$size" \
  --populated "$populated" >"$work/image.txt"
# "<path>: <size> bytes, <n> extents, <populated> populated (<pct>%)"
extents=$(awk '{print $4}' "$work/image.txt")
data_bytes=$(awk '{print $6}' "$work/image.txt")

for ((i = 0; i < runs; i++)); do
  for level in 1 3; do
    rm -f "$work/ours$level"
    timed "enc-ours-$level" "$bin" pack --no-fsync --level "$level" "$img" "$work/ours$level"
    rm -f "$work/zstd$level"
    timed "enc-zstd-$level" zstd -q -T0 "-$level" "$img" -o "$work/zstd$level"
  done
  rm -f "$work/dec"
  timed dec-ours "$bin" unpack --no-fsync "$work/ours3" "$work/dec"
  rm -f "$work/dec"
  timed dec-ours-fsync "$bin" unpack "$work/ours3" "$work/dec"
  rm -f "$work/decz"
  timed dec-zstd zstd -q -d "$work/zstd3" -o "$work/decz"
done
cmp "$img" "$work/dec" || { echo "bench_snapshot: decoded image differs" >&2; exit 1; }
for f in ours1 ours3 zstd1 zstd3; do
  sizes[$f]=$(stat -c %s "$work/$f")
done

row() { # op label key size-key baseline-time-key baseline-size-key
  local t base
  t=$(median <<<"${times[$3]}")
  base=$(median <<<"${times[$5]}")
  awk -v op="$1" -v label="$2" -v t="$t" -v base="$base" -v size="${sizes[$4]}" \
      -v bsize="${sizes[$6]}" -v logical="$size" -v data="$data_bytes" 'BEGIN {
    s = t / 1e6; mib = 1048576
    printf "%-6s %-30s %8.3f %10.0f %10.0f %9.1f %7.2f %+8.1f%% %7.2fx\n", op, label, s,
      logical / mib / s, data / mib / s, size / mib, data / size,
      (size - bsize) * 100 / bsize, base / t }'
}

printf 'snapshot codec: image of%s; %d runs, medians\n' "$(cut -d: -f2- "$work/image.txt")" "$runs"
printf '%s data extents; zstd CLI %s; %d CPUs\n' "$extents" "$(zstd -V | grep -o 'v[0-9.]*')" "$(nproc)"
printf '%-6s %-30s %8s %10s %10s %9s %7s %9s %8s\n' op codec "time s" "logical" "populated" \
  "size MiB" ratio "size±" speedup
printf '%-6s %-30s %8s %10s %10s %9s %7s %9s %8s\n' "" "" "" "MiB/s" "MiB/s" "" \
  "pop/cmp" "vs zstd" "vs zstd"
row encode "ateom-snapshot pack -1" enc-ours-1 ours1 enc-zstd-1 zstd1
row encode "zstd -T0 -1" enc-zstd-1 zstd1 enc-zstd-1 zstd1
row encode "ateom-snapshot pack -3" enc-ours-3 ours3 enc-zstd-3 zstd3
row encode "zstd -T0 -3 (baseline)" enc-zstd-3 zstd3 enc-zstd-3 zstd3
row decode "ateom-snapshot unpack (-3)" dec-ours ours3 dec-zstd zstd3
row decode "ateom-snapshot unpack +fsync" dec-ours-fsync ours3 dec-zstd zstd3
row decode "zstd -d (sparse) (baseline)" dec-zstd zstd3 dec-zstd zstd3
