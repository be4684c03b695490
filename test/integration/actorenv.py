# SPDX-License-Identifier: Apache-2.0
"""A worker pod for end-to-end tests on the simulator: a "pod" network
namespace whose eth0 is a veth to a "client" namespace (so the DNAT path is
real), ateom-microvm running inside it with ch-sim as its
cloud-hypervisor, and atelet's side of the contract done by hand: OCI
bundles (removed and unpacked again before every Run and Restore, with fresh
times and owner root, as atelet's untar does), resetActorDirs, shipping
snapshot files between checkpoint-state and restore-state."""

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import time

import grpc

from ateomtest import Server, bin_path, ateom_pb2, run_request

_seq = itertools.count(1)

# The kata stock configuration-clh.toml keys ateom reads (docs/kata-agent.md,
# "kata configuration.toml").
KATA_CONFIG = """\
[hypervisor.clh]
path = "/opt/kata/bin/cloud-hypervisor"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
kernel_params = "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
default_vcpus = 1
default_memory = 2048
"""


class FromFile:
    """Bundle content copied from a host file at every unpack."""

    def __init__(self, path):
        self.path = path


def sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def atelet_spec(args, env=None, hostname="runsc"):
    """The OCI spec atelet writes (docs/kata-agent.md, "Shaping the bundle")."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                   + list(env or []),
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "inheritable",
                                               "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [{"destination": "/etc/resolv.conf", "type": "bind",
                    "source": "/etc/resolv.conf", "options": ["rbind", "ro"]}],
        "annotations": {"io.kubernetes.cri.container-type": "container"},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts",
                                                        "mount")]},
    }


class Pod:
    """One worker pod with its server."""

    def __init__(self, personality="v52.0", extra_args=(), mtu=1500, boot_ms=50, env=None,
                 pod_uid=None, valgrind=None, pinned_times=False):
        n = next(_seq)
        # (ns, tmpl, actor) -> {container: (args, files)}: what atelet
        # unpacks again before every Run and Restore.
        self._bundles = {}
        self.pinned_times = pinned_times
        self.tag = "%d-%d" % (os.getpid(), n)
        self.netns = "atepod-" + self.tag
        self.client_ns = "atecli-" + self.tag
        self.net = "10.%d.%d" % (100 + os.getpid() % 100, n % 250)
        self.pod_ip = self.net + ".2"
        self.mtu = mtu
        self.personality = personality
        self._up_netns()
        self.kata_run = None
        self.server = Server(pod_uid=pod_uid or ("uid-" + self.tag),
                             wrapper=["nsenter", "--net=/run/netns/" + self.netns],
                             env=dict({"CH_SIM_PERSONALITY": personality,
                                       "CH_SIM_BOOT_MS": str(boot_ms)}, **(env or {})),
                             extra_args=list(extra_args), valgrind=valgrind)
        self.kata_run = os.path.join(self.server.tmp, "kata")
        self.assets_dir = os.path.join(self.server.tmp, "assets")
        os.makedirs(self.assets_dir)
        resolv = os.path.join(self.server.tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("search svc.cluster.local cluster.local\nnameserver 10.96.0.10\n"
                    "options ndots:5\n")
        self.server.extra_args += [
            "--kata-run-dir=" + self.kata_run, "--resolv-conf=" + resolv, "--detect-gce=false",
            "--cloud-hypervisor-binary=" + bin_path("ch-sim")]
        self.assets = self._make_assets()

    # ---- network namespaces ----

    def _up_netns(self):
        sh("ip", "netns", "add", self.netns)
        sh("ip", "netns", "add", self.client_ns)
        sh("ip", "-n", self.netns, "link", "add", "eth0", "mtu", str(self.mtu), "type", "veth",
           "peer", "name", "cli0", "netns", self.client_ns, "mtu", str(self.mtu))
        sh("ip", "-n", self.netns, "addr", "add", self.pod_ip + "/24", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "route", "add", "default", "via", self.net + ".1")
        sh("ip", "-n", self.client_ns, "addr", "add", self.net + ".1/24", "dev", "cli0")
        sh("ip", "-n", self.client_ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.client_ns, "link", "set", "cli0", "up")

    def _make_assets(self):
        kernel = os.path.join(self.assets_dir, "vmlinux")
        image = os.path.join(self.assets_dir, "rootfs.img")
        config = os.path.join(self.assets_dir, "configuration-clh.toml")
        with open(kernel, "wb") as f:
            f.write(b"\x7fELF simulated kata kernel\n")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        with open(config, "w") as f:
            f.write(KATA_CONFIG)
        return {"kata-kernel": kernel, "kata-image": image, "kata-config": config,
                "cloud-hypervisor": bin_path("ch-sim")}

    # ---- server ----

    def start(self):
        self.server.start()
        return self

    def restart(self, sig=None):
        if sig:
            self.server.proc.send_signal(sig)
            self.server.proc.wait()
            self.server._log.close()
            self.server.proc = None
        else:
            self.server.stop()
        self.server.start()

    @property
    def base(self):
        return self.server.base

    def actor_dir(self, ns, tmpl, actor):
        return os.path.join(self.base, "actors", "%s:%s:%s" % (ns, tmpl, actor))

    # ---- atelet's side ----

    def reset_actor_dirs(self, ns, tmpl, actor):
        d = self.actor_dir(ns, tmpl, actor)
        for sub, mode in (("bundles", 0o700), ("runsc-state", 0o700), ("pidfiles", 0o700),
                          ("checkpoint-state", 0o700), ("restore-state", 0o700),
                          ("identity", 0o755)):
            p = os.path.join(d, sub)
            shutil.rmtree(p, ignore_errors=True)
            os.makedirs(p, mode=mode)
            os.chmod(p, mode)
        with open(os.path.join(d, "identity", "actor-id"), "w") as f:
            f.write(actor)

    def make_bundle(self, ns, tmpl, actor, ctr, args=("ate-sim-counter",), files=None):
        """Declare a container's image and unpack it.  files maps paths to
        str/bytes content or to a FromFile (a host file copied in)."""
        files = files or {"etc/os-release": "ID=ateom-test\n", "app/hello.txt": "hello\n"}
        self._bundles.setdefault((ns, tmpl, actor), {})[ctr] = (tuple(args), dict(files))
        return self.unpack(ns, tmpl, actor, ctr)

    def unpack(self, ns, tmpl, actor, ctr):
        """As atelet's prepareOCIDirectory: remove rootfs/, create it 0700,
        untar into it (fresh times, owner root: its untar sets neither),
        write config.json.  With pinned_times every entry gets one fixed
        time instead (an unpack that preserves times, for the test that
        wants one)."""
        args, files = self._bundles[(ns, tmpl, actor)][ctr]
        bundle = os.path.join(self.actor_dir(ns, tmpl, actor), "bundles", ctr)
        rootfs = os.path.join(bundle, "rootfs")
        shutil.rmtree(rootfs, ignore_errors=True)
        os.makedirs(rootfs, mode=0o700)
        os.chmod(rootfs, 0o700)
        os.makedirs(os.path.join(rootfs, "run", "ate"))
        for rel, content in files.items():
            p = os.path.join(rootfs, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if isinstance(content, FromFile):
                shutil.copyfile(content.path, p)
            else:
                with open(p, "wb") as f:
                    f.write(content.encode() if isinstance(content, str) else content)
        if self.pinned_times:
            for dirpath, dirnames, filenames in os.walk(rootfs):
                for name in dirnames + filenames:
                    os.utime(os.path.join(dirpath, name), (1700000000, 1700000000),
                             follow_symlinks=False)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(atelet_spec(args), f, indent=2)
        return bundle

    def unpack_all(self, ns, tmpl, actor, containers):
        for c in containers:
            if c in self._bundles.get((ns, tmpl, actor), {}):
                self.unpack(ns, tmpl, actor, c)

    def prepare(self, ns, tmpl, actor, containers=("counter",), args=("ate-sim-counter",)):
        self.reset_actor_dirs(ns, tmpl, actor)
        for c in containers:
            known = self._bundles.get((ns, tmpl, actor), {}).get(c)
            if known:
                self.unpack(ns, tmpl, actor, c)
            else:
                self.make_bundle(ns, tmpl, actor, c, args=args)

    def request(self, cls, ns, tmpl, actor, containers=("counter",), readyz=None):
        req = run_request(ns=ns, tmpl=tmpl, actor=actor, containers=containers,
                          assets=self.assets, cls=cls)
        for c in req.spec.containers:
            if readyz and c.name in readyz:
                c.readyz.http_get.port = readyz[c.name][0]
                c.readyz.http_get.path = readyz[c.name][1]
        return req

    def run(self, ns, tmpl, actor, containers=("counter",), timeout=60, readyz=None,
            unpack=True):
        if unpack:
            self.unpack_all(ns, tmpl, actor, containers)
        return self.server.call("RunWorkload", self.request(
            ateom_pb2.RunWorkloadRequest, ns, tmpl, actor, containers, readyz), timeout=timeout)

    def checkpoint(self, ns, tmpl, actor, timeout=60):
        r = self.server.call("CheckpointWorkload", self.request(
            ateom_pb2.CheckpointWorkloadRequest, ns, tmpl, actor), timeout=timeout)
        return list(r.snapshot_files)

    def restore(self, ns, tmpl, actor, containers=("counter",), timeout=60, readyz=None,
                unpack=True):
        if unpack:
            self.unpack_all(ns, tmpl, actor, containers)
        return self.server.call("RestoreWorkload", self.request(
            ateom_pb2.RestoreWorkloadRequest, ns, tmpl, actor, containers, readyz),
            timeout=timeout)

    def ship(self, ns, tmpl, actor, files, store):
        """Atelet after a checkpoint: keep the files, then resetActorDirs."""
        src = os.path.join(self.actor_dir(ns, tmpl, actor), "checkpoint-state")
        os.makedirs(store, exist_ok=True)
        for f in files:
            sh("cp", "--sparse=always", os.path.join(src, f), os.path.join(store, f))
        self.reset_actor_dirs(ns, tmpl, actor)

    def unship(self, store, ns, tmpl, actor, containers=("counter",), args=("ate-sim-counter",)):
        """Atelet before a restore: resetActorDirs, files into restore-state,
        bundles rebuilt from the image."""
        self.prepare(ns, tmpl, actor, containers, args)
        dst = os.path.join(self.actor_dir(ns, tmpl, actor), "restore-state")
        for f in os.listdir(store):
            sh("cp", "--sparse=always", os.path.join(store, f), os.path.join(dst, f))
            os.chmod(os.path.join(dst, f), 0o600)

    # ---- talking to the guest ----

    def http(self, path="/", via="guest", timeout=5):
        url = ("http://169.254.17.2:80%s" % path if via == "guest"
               else "http://%s:80%s" % (self.pod_ip, path))
        ns = self.netns if via == "guest" else self.client_ns
        r = sh("nsenter", "--net=/run/netns/" + ns, "curl", "-s", "-m", str(timeout), url,
               check=False)
        if r.returncode != 0:
            raise RuntimeError("GET %s from %s failed: curl exit %d %s" % (url, ns, r.returncode,
                                                                         r.stderr))
        return r.stdout

    def count(self, via="guest"):
        out = self.http("/", via=via)
        m = re.search(r"preserved memory count: (\d+)", out)
        if not m:
            raise RuntimeError("unexpected counter reply %r" % out)
        return int(m.group(1))

    def console(self, actor, cmd, timeout=10):
        """Run cmd in the guest's debug console (vsock port 1026)."""
        path = os.path.join(self.server.run_dir, actor, "clh.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"CONNECT 1026\n")
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                raise RuntimeError("console closed during the handshake")
            line += c
        s.sendall(("{ %s ; } 2>&1; echo __ATE''_END__\n" % cmd).encode())
        out = b""
        while b"__ATE_END__\n" not in out.replace(b"\r", b""):
            c = s.recv(65536)
            if not c:
                break
            out += c
        s.close()
        text = out.decode(errors="replace").replace("\r", "")
        # Drop the echoed command line.
        lines = [l for l in text.split("\n") if "__ATE''_END__" not in l]
        return "\n".join(l for l in lines if l != "__ATE_END__").strip()

    # ---- leak accounting ----

    def sim_pids(self):
        out = []
        marker = self.server.run_dir.encode()
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            argv0 = os.path.basename(cmd.split(b"\0")[0])
            if marker in cmd and argv0.startswith(b"ch-sim"):
                out.append(int(p))
        return out

    def links(self):
        names = []
        for ns in (self.netns, "ateom:" + self.server.pod_uid):
            r = sh("ip", "-n", ns, "-o", "link", "show", check=False)
            names += ["%s/%s" % (ns, l.split(":")[1].strip().split("@")[0])
                      for l in r.stdout.splitlines()]
        return sorted(names)

    def nft_tables(self):
        r = sh("nsenter", "--net=/run/netns/" + self.netns, "nft", "list", "tables", check=False)
        return r.stdout.split()

    def mounts(self):
        with open("/proc/self/mountinfo") as f:
            return [l for l in f if self.server.tmp in l]

    def snapshot_state(self):
        pid = self.server.pid
        return {
            "sims": len(self.sim_pids()),
            "fds": len(os.listdir("/proc/%d/fd" % pid)) if pid else 0,
            "threads": len(os.listdir("/proc/%d/task" % pid)) if pid else 0,
            "links": self.links(),
            "tables": self.nft_tables(),
            "mounts": len(self.mounts()),
        }

    def cleanup(self):
        try:
            self.server.stop()
        finally:
            for pid in self.sim_pids():
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            sh("ip", "netns", "del", "ateom:" + self.server.pod_uid, check=False)
            for ns in (self.netns, self.client_ns):
                sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(self.server.tmp, ignore_errors=True)
