#!/usr/bin/env bash
# The main job: the counter actor on the simulator, suspended and resumed
# twice, the second time in another "pod" (cross-node restore), with the
# count continuing.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<USAGE
Usage: hack/demo.sh [--no-deps] [--build DIR | --bin DIR] [--container CTR]
                    [--personality V] [--keep] [--help]

Builds ateom-microvm, ateomctl and the cloud-hypervisor simulator, starts two
worker "pods" (network namespaces with an ateom-microvm each, ch-sim as their
cloud-hypervisor), and drives them with ateomctl as atelet would:

  RunWorkload on pod A -> POST (count 1) -> CheckpointWorkload
  RestoreWorkload on pod A -> POST (count 2) -> CheckpointWorkload
  RestoreWorkload on pod B -> POST (count 3) -> CheckpointWorkload

The POSTs go to the pod IP from a client namespace, through the DNAT rule,
the veth, tc and the tap into the simulated guest.  Prints each step's
timings and cleans up.  Exits 0 only when the count continued.  Needs root.

  --no-deps         do not run hack/install-deps.sh
  --build DIR       build directory (default: build)
  --bin DIR         use the binaries already built in DIR, build nothing
  --container CTR   run ateom-microvm and ateomctl from the root filesystem
                    of the buildah working container CTR (made from the
                    worker image), chrooted as in a privileged worker pod:
                    own mount namespace, /dev, /proc, /sys, writable
                    /proc/sys, the pod's network namespace, and the work
                    directory bind-mounted at the same path as the worker
                    pod's hostPath; ch-sim arrives from the build as the
                    cloud-hypervisor asset, as atelet stages assets
                    (hack/image-demo.sh drives this)
  --personality V   cloud-hypervisor version to simulate: v51.1, v52.0 (default), v53.0
  --keep            keep the work directory (logs, snapshots) for inspection
USAGE
}

deps=1
build=build
bin=""
container=""
personality=v52.0
keep=0
while (($#)); do
  case "$1" in
    --no-deps) deps=0; shift ;;
    --build) build=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --container) container=$2; shift 2 ;;
    --personality) personality=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (network namespaces, taps, nftables)"
cd "$(dirname "$0")/.."
if ((deps)); then
  hack/install-deps.sh
fi
if [[ -z $bin ]]; then
  echo "demo: building"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target ateom-microvm ateomctl ch-sim >/dev/null
  bin=$build/bin
fi
bin=$(cd "$bin" && pwd)
[[ -x $bin/ch-sim ]] || fail "no ch-sim in $bin"
if [[ -n $container ]]; then
  command -v buildah >/dev/null || fail "--container needs buildah"
fi

work=$(mktemp -d /tmp/ateom-demo.XXXXXX)
# Where ateom-microvm and ateomctl come from: the build, or the worker
# image's root filesystem.  A privileged worker pod has its own mount
# namespace, the host's devices, a writable /proc/sys (the server enables
# forwarding in the pod's network namespace) and the hostPath; chroot into
# the image with exactly that (buildah run would make /proc/sys read-only).
# The environment is the image's, not ours.
if [[ -n $container ]]; then
  rootfs=$(buildah mount "$container")
  # shellcheck disable=SC2016 # expanded by the inner shell
  in_image=(unshare --mount --propagation private -- sh -c '
      r=$1 w=$2; shift 2
      mount --rbind /dev "$r/dev" && mount -t proc proc "$r/proc" &&
        mount -t sysfs sysfs "$r/sys" && mount -t tmpfs tmpfs "$r/run" &&
        mkdir -p "$r$w" && mount --bind "$w" "$r$w" &&
        exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' sh "$rootfs" "$work" "CH_SIM_PERSONALITY=$personality")
  server_cmd=("${in_image[@]}" /usr/local/bin/ateom-microvm)
  ctl_cmd=("${in_image[@]}" /usr/local/bin/ateomctl)
else
  server_cmd=("$bin/ateom-microvm")
  ctl_cmd=("$bin/ateomctl")
fi
tag=$$
pods=(a b)
declare -A server_pid=()

cleanup() {
  local p
  for p in "${pods[@]}"; do
    if [[ -n "${server_pid[$p]:-}" ]] && kill -0 "${server_pid[$p]}" 2>/dev/null; then
      kill -TERM "${server_pid[$p]}"
      wait "${server_pid[$p]}" 2>/dev/null || true
    fi
    ip netns del "demo-$p-$tag" 2>/dev/null || true
    ip netns del "democli-$p-$tag" 2>/dev/null || true
    ip netns del "ateom:demo-$p-$tag" 2>/dev/null || true
  done
  pkill -KILL -f "^$work/static-files/cloud-hypervisor " 2>/dev/null || true
  if ((keep)); then
    echo "demo: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

ns=default tmpl=counter-microvm actor=demo-1

# Assets as atelet stages them (static-files/runsc-<sha>), the VMM (here
# ch-sim) among them; ch-sim only checks that the kernel and image exist.
assets=$work/static-files
mkdir -p "$assets"
cp "$bin/ch-sim" "$assets/cloud-hypervisor"
printf 'simulated kata kernel\n' >"$assets/runsc-kernel"
truncate -s 16M "$assets/runsc-image"
cat >"$assets/runsc-config" <<'TOML'
[hypervisor.clh]
kernel_params = "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
default_vcpus = 1
default_memory = 2048
TOML
printf 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\n' >"$work/resolv.conf"
asset_flags=(--asset "kata-kernel=$assets/runsc-kernel" --asset "kata-image=$assets/runsc-image"
  --asset "kata-config=$assets/runsc-config" --asset "cloud-hypervisor=$assets/cloud-hypervisor")

# A pod: netns "demo-<p>" whose eth0 is a veth to a client netns.
start_pod() {
  local p=$1 i=$2
  local pod_ns="demo-$p-$tag" cli_ns="democli-$p-$tag"
  ip netns add "$pod_ns"
  ip netns add "$cli_ns"
  ip -n "$pod_ns" link add eth0 type veth peer name cli0 netns "$cli_ns"
  ip -n "$pod_ns" addr add "10.199.$i.2/24" dev eth0
  ip -n "$pod_ns" link set lo up
  ip -n "$pod_ns" link set eth0 up
  ip -n "$pod_ns" route add default via "10.199.$i.1"
  ip -n "$cli_ns" addr add "10.199.$i.1/24" dev cli0
  ip -n "$cli_ns" link set lo up
  ip -n "$cli_ns" link set cli0 up
  mkdir -p "$work/$p"
  CH_SIM_PERSONALITY=$personality nsenter --net="/run/netns/$pod_ns" \
    "${server_cmd[@]}" --pod-uid="demo-$p-$tag" --base-path="$work/$p/base" \
    --run-dir="$work/$p/run" --kata-run-dir="$work/$p/kata" --resolv-conf="$work/resolv.conf" \
    --detect-gce=false >"$work/$p/server.log" 2>&1 &
  server_pid[$p]=$!
  local sock="$work/$p/base/ateoms/demo-$p-$tag/ateom.sock"
  for _ in $(seq 200); do
    "${ctl_cmd[@]}" --socket "$sock" --timeout 1s health >/dev/null 2>&1 && return 0
    kill -0 "${server_pid[$p]}" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/$p/server.log" >&2
  fail "the server of pod $p did not start"
}

ctl() {
  local p=$1
  shift
  "${ctl_cmd[@]}" --socket "$work/$p/base/ateoms/demo-$p-$tag/ateom.sock" --timeout 60s "$@"
}

actor_dir() { echo "$work/$1/base/actors/$ns:$tmpl:$actor"; }

# atelet's resetActorDirs + the OCI bundle of the counter container.
prepare_actor() {
  local dir
  dir=$(actor_dir "$1")
  rm -rf "$dir/bundles" "$dir/checkpoint-state" "$dir/restore-state"
  mkdir -p "$dir/bundles/counter/rootfs/run/ate" "$dir/checkpoint-state" "$dir/restore-state" \
    "$dir/bundles/counter/rootfs/etc"
  chmod 0700 "$dir/bundles" "$dir/bundles/counter/rootfs" "$dir/checkpoint-state" "$dir/restore-state"
  printf 'ID=ateom-demo\n' >"$dir/bundles/counter/rootfs/etc/os-release"
  touch -d @1700000000 "$dir/bundles/counter/rootfs/etc/os-release"
  cat >"$dir/bundles/counter/config.json" <<JSON
{"ociVersion":"1.0.2","hostname":"runsc","root":{"path":"rootfs"},
 "process":{"user":{"uid":0,"gid":0},"args":["ate-sim-counter"],"cwd":"/",
  "env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
 "linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"mount"}]}}
JSON
}

# What atelet does with the files of a checkpoint: ship them, reset the dirs.
ship() {
  local p=$1 store=$2
  mkdir -p "$store"
  for f in $3; do
    cp --sparse=always "$(actor_dir "$p")/checkpoint-state/$f" "$store/$f"
  done
  prepare_actor "$p"
}

unship() {
  local store=$1 p=$2
  prepare_actor "$p"
  cp --sparse=always "$store"/* "$(actor_dir "$p")/restore-state/"
}

post() {
  local p=$1 i=$2 out
  out=$(ip netns exec "democli-$p-$tag" curl -s -m 5 -X POST "http://10.199.$i.2/") ||
    fail "POST to pod $p's IP failed"
  echo "demo:   $out" >&2
  [[ $out =~ count:\ ([0-9]+) ]] || fail "unexpected reply: $out"
  echo "${BASH_REMATCH[1]}"
}

timings() {
  jq -r --arg m "$2" 'select(.msg == $m) | "demo:   \($m): total \(.total_ms) ms (our own \(.own_ms) ms, cloud-hypervisor \(.vmm_wait_ms) ms, agent \(.agent_wait_ms) ms) \(.steps | to_entries | map("\(.key)=\(.value)") | join(" "))"' \
    "$work/$1/server.log" | tail -1
}

echo "demo: starting pods a and b (cloud-hypervisor $personality simulated by ch-sim)"
start_pod a 1
start_pod b 2

# One RPC with the actor's identity, its timings printed after it.
workload() {
  local p=$1 verb=$2 rpc=$3
  shift 3
  ctl "$p" "$verb" --namespace "$ns" --template "$tmpl" --actor "$actor" "$@" ||
    fail "$rpc on pod $p"
  timings "$p" "$rpc timings"
}

# Checkpoint on a pod and ship the files to a store, as atelet does.
checkpoint_to() {
  local p=$1 store=$2 files
  echo "demo: pod $p: CheckpointWorkload" >&2
  files=$(workload "$p" checkpoint CheckpointWorkload) || exit 1
  echo "demo:   snapshot files: $(sed -n '/^demo:/!p' <<<"$files" | tr '\n' ' ')" >&2
  sed -n '/^demo:/p' <<<"$files" >&2
  ship "$p" "$store" "$(sed -n '/^demo:/!p' <<<"$files")"
}

container_flags=(--container counter --readyz counter:80:/readyz "${asset_flags[@]}")

echo "demo: pod a: RunWorkload $ns/$tmpl/$actor"
prepare_actor a
workload a run RunWorkload "${container_flags[@]}" | sed -n '/^demo:/p'
c1=$(post a 1)
checkpoint_to a "$work/snap1"

echo "demo: pod a: RestoreWorkload"
unship "$work/snap1" a
workload a restore RestoreWorkload "${container_flags[@]}" | sed -n '/^demo:/p'
c2=$(post a 1)
checkpoint_to a "$work/snap2"

echo "demo: pod b (another node): RestoreWorkload from pod a's snapshot"
unship "$work/snap2" b
workload b restore RestoreWorkload "${container_flags[@]}" | sed -n '/^demo:/p'
c3=$(post b 2)
checkpoint_to b "$work/snap3"

if [[ "$c1 $c2 $c3" != "1 2 3" ]]; then
  fail "the count did not continue: $c1 -> $c2 -> $c3"
fi
echo "demo: count continued $c1 -> $c2 -> $c3 across 2 checkpoint/restore cycles"
