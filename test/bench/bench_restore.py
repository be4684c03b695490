# SPDX-License-Identifier: Apache-2.0
"""RestoreWorkload latency on the simulator, split into the server's own
orchestration time and the time spent waiting on cloud-hypervisor and the
kata agent (from the server's "RestoreWorkload timings" records), plus the
server's idle memory.  Prints medians; the baseline is the VMM+agent wait
measured in the same run (what the hypervisor itself takes)."""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.environ["ATE_SOURCE_DIR"], "test", "integration"))
from actorenv import Pod  # noqa: E402

NS, TMPL = "default", "counter-microvm"
RUNS = int(os.environ.get("ATE_BENCH_RUNS", "25"))


def mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Private_Dirty"):
                out[k] = int(v.split()[0])
    return out


def main():
    if os.geteuid() != 0:
        print("bench_restore: needs root (network namespaces)")
        return 1
    rows = {}
    for personality in ("v52.0", "v53.0"):
        pod = Pod(personality=personality).start()
        try:
            time.sleep(0.5)
            idle = mem(pod.server.pid)
            pod.prepare(NS, TMPL, "b1")
            pod.run(NS, TMPL, "b1")
            store = os.path.join(pod.server.tmp, "s")
            pod.ship(NS, TMPL, "b1", pod.checkpoint(NS, TMPL, "b1"), store)
            for _ in range(RUNS):
                pod.unship(store, NS, TMPL, "b1")
                pod.restore(NS, TMPL, "b1")
                pod.checkpoint(NS, TMPL, "b1")
                pod.reset_actor_dirs(NS, TMPL, "b1")
            recs = [r for r in pod.server.log_records() if r.get("msg") == "RestoreWorkload timings"]
            rows[personality] = (recs, idle)
        finally:
            pod.cleanup()

    print("RestoreWorkload on ch-sim, %d runs each (medians, ms)" % RUNS)
    print("%-8s %8s %8s %8s %8s %8s %10s" % ("CH", "total", "own", "vmm", "agent", "network",
                                             "total/vmm+agent"))
    for personality, (recs, idle) in rows.items():
        med = lambda key: statistics.median(float(r[key]) for r in recs)  # noqa: E731
        net = statistics.median(float(r["steps"].get("network_ms", 0)) for r in recs)
        base = med("vmm_wait_ms") + med("agent_wait_ms")
        print("%-8s %8.2f %8.2f %8.2f %8.2f %8.2f %10.2f" % (
            personality, med("total_ms"), med("own_ms"), med("vmm_wait_ms"), med("agent_wait_ms"),
            net, med("total_ms") / base if base else float("nan")))
    steps = {}
    for r in rows["v52.0"][0]:
        for k, v in r["steps"].items():
            steps.setdefault(k, []).append(float(v))
    print("steps (v52.0): " + " ".join("%s=%.2f" % (k, statistics.median(v))
                                       for k, v in steps.items()))
    idle = rows["v52.0"][1]
    print("idle server memory (KiB): VmRSS %d (anon %d, file %d), Pss %d, private dirty %d" % (
        idle["VmRSS"], idle["RssAnon"], idle["RssFile"], idle["Pss"], idle["Private_Dirty"]))
    print("targets: own median < 20 ms; idle RSS < 10240 KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
