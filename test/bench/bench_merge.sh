#!/usr/bin/env bash
# Sparse memory merge (runtime/ch/merge.c): a 2 GiB guest image with 10 %
# populated and a 5 % OnDemand delta.  Median of several runs for
# ch_merge_delta_into_base and ch_merge_sparse_overlay; throughput in
# populated bytes per second; ratio against `cp --sparse=always` of the
# same files in the same run.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: test/bench/bench_merge.sh [--runs N] [--size-mib N] [--help]

Environment: ATE_BUILD_DIR (build with bench_merge), ATE_BENCH_DIR (scratch,
default /var/tmp/ateom-bench).  Needs ~3x the populated size free on disk.
USAGE
}

runs=5
size_mib=2048
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --size-mib) size_mib=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

build=${ATE_BUILD_DIR:-build}
tool="$build/bin/bench_merge"
[[ -x "$tool" ]] || { echo "bench_merge: $tool not built" >&2; exit 1; }
scratch=$(mktemp -d "${ATE_BENCH_DIR:-/var/tmp/ateom-bench}/merge.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

"$tool" gen "$scratch/base.src" "$size_mib" 10 1
"$tool" gen "$scratch/delta.src" "$size_mib" 5 2
populated() { du --block-size=1 "$1" | cut -f1; }
base_pop=$(populated "$scratch/base.src")
delta_pop=$(populated "$scratch/delta.src")
sync

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

cp_times=() dib_times=() ovl_times=()
for ((i = 0; i < runs; i++)); do
  # Baseline: copy the base sparsely (what a copying merge must at least do).
  rm -f "$scratch/cp.out"
  t0=$(now)
  cp --sparse=always "$scratch/base.src" "$scratch/cp.out"
  t1=$(now)
  cp_times+=("$(calc "$t1 - $t0")")

  # Fresh inputs for the consuming merge (untimed).
  cp --sparse=always "$scratch/base.src" "$scratch/base"
  cp --sparse=always "$scratch/delta.src" "$scratch/delta"
  dib_times+=("$("$tool" delta-into-base "$scratch/base" "$scratch/delta")")
  rm -f "$scratch/delta"
  ovl_times+=("$("$tool" overlay "$scratch/base.src" "$scratch/delta.src" "$scratch/ovl.out")")
  rm -f "$scratch/ovl.out" "$scratch/cp.out"
done

cp_med=$(printf '%s\n' "${cp_times[@]}" | median)
dib_med=$(printf '%s\n' "${dib_times[@]}" | median)
ovl_med=$(printf '%s\n' "${ovl_times[@]}" | median)
mibps() { calc "$1 / $2 / 1048576"; }

printf 'image %d MiB, base %d MiB populated, delta %d MiB populated, %d runs\n' \
  "$size_mib" $((base_pop >> 20)) $((delta_pop >> 20)) "$runs"
printf '%-28s %10s %14s %14s\n' "operation" "median s" "populated MiB/s" "vs cp"
printf '%-28s %10.4f %14.0f %14.2f\n' "cp --sparse=always (base)" "$cp_med" \
  "$(mibps "$base_pop" "$cp_med")" 1
printf '%-28s %10.4f %14.0f %14.2f\n' "ch_merge_delta_into_base" "$dib_med" \
  "$(mibps "$delta_pop" "$dib_med")" "$(calc "$dib_med / $cp_med")"
printf '%-28s %10.4f %14.0f %14.2f\n' "ch_merge_sparse_overlay" "$ovl_med" \
  "$(mibps "$((base_pop + delta_pop))" "$ovl_med")" "$(calc "$ovl_med / $cp_med")"
echo "(delta-into-base moves only the delta's bytes: its throughput counts delta bytes;"
echo " the overlay copies base + delta.)"
