#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The deploy scripts in dry-run and against stub CLIs: the exact commands
and arguments, the kind config, the pinned hashes, failure handling and log
collection.  Nothing here reaches a cluster, an engine or the network."""
import os
import re
import shlex
import subprocess
import unittest

import yaml

from deploytest import (SOURCE, SPEC_PINS, STUB_DIGEST, STUB_PUSHED_DIGEST, ZERO_DIGEST,
                        ScriptTestCase, commands, main, skip_whole_test)

NODE_IMAGE = ("kindest/node:v1.36.1@sha256:"
              "3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5")

# The scripts render manifests with the real kubectl kustomize (the kubectl
# stub hands `kustomize` to it).
if not os.access("/usr/bin/kubectl", os.X_OK):
    skip_whole_test("/usr/bin/kubectl (with kustomize) is not installed")


class CreateClusterTest(ScriptTestCase):
    def test_dry_run_commands(self):
        r = self.run_script("hack/kind/create-cluster.sh", "--dry-run", "--name", "t1",
                            "--workers", "2", check=True)
        w = self.work
        self.assertEqual(commands(r.stdout), [
            "docker run --rm --device /dev/kvm busybox:1.36.1 true",
            "docker run --detach --restart=always --label created-by=ateom-microvm "
            "--publish 127.0.0.1:5001:5000 --network bridge --name kind-registry registry:3.0.0",
            "kind create cluster --name t1 --config %s/kind-config.yaml --image %s --wait 120s"
            % (w, NODE_IMAGE),
            "docker exec t1-control-plane mkdir -p /etc/containerd/certs.d/localhost:5001",
            "docker exec -i t1-control-plane cp /dev/stdin "
            "/etc/containerd/certs.d/localhost:5001/hosts.toml < %s/hosts.toml" % w,
            "docker exec t1-control-plane sysctl -w net.ipv4.conf.all.proxy_arp=1",
            "kubectl --context=kind-t1 taint node t1-control-plane "
            "node-role.kubernetes.io/control-plane:NoSchedule-",
        ] + [c for n in ("t1-worker", "t1-worker2") for c in (
            "docker exec %s mkdir -p /etc/containerd/certs.d/localhost:5001" % n,
            "docker exec -i %s cp /dev/stdin /etc/containerd/certs.d/localhost:5001/hosts.toml"
            " < %s/hosts.toml" % (n, w),
            "docker exec %s sysctl -w net.ipv4.conf.all.proxy_arp=1" % n,
            "kubectl --context=kind-t1 label node %s ate.dev/sandboxClass=microvm --overwrite" % n,
            "kubectl --context=kind-t1 taint node %s ate.dev/sandboxClass=microvm:NoSchedule "
            "--overwrite" % n,
        )] + [
            "docker network connect kind kind-registry",
            "kubectl --context=kind-t1 apply -f %s/local-registry-hosting.yaml" % w,
            "kubectl --context=kind-t1 wait --for=condition=Ready nodes --all --timeout=180s",
            "kubectl --context=kind-t1 get --raw /apis/certificates.k8s.io/v1beta1",
        ])
        self.assertFalse([c for c in commands(r.stdout) if "chmod" in c],
                         "a chmod of the node's /dev/kvm changes the host's device")
        with open(os.path.join(w, "hosts.toml")) as f:
            self.assertEqual(f.read(), '[host."http://kind-registry:5000"]\n')

    def test_kind_config(self):
        self.run_script("hack/kind/create-cluster.sh", "--dry-run", "--workers", "2", check=True)
        with open(os.path.join(self.work, "kind-config.yaml")) as f:
            cfg = yaml.safe_load(f)
        self.assertEqual(cfg["kind"], "Cluster")
        self.assertEqual(cfg["name"], "kind")
        for gate in ("ClusterTrustBundle", "ClusterTrustBundleProjection", "PodCertificateRequest"):
            self.assertIs(cfg["featureGates"][gate], True)
        self.assertIn('config_path = "/etc/containerd/certs.d"', cfg["containerdConfigPatches"][0])
        cp, *workers = cfg["nodes"]
        self.assertEqual(cp, {"role": "control-plane"})
        self.assertEqual(len(workers), 2)
        for node in workers:
            self.assertEqual(node["role"], "worker")
            self.assertEqual(node["extraMounts"],
                             [{"hostPath": "/dev/kvm", "containerPath": "/dev/kvm"}])
            self.assertEqual(node["labels"], {"ate.dev/sandboxClass": "microvm"})
            join = yaml.safe_load(node["kubeadmConfigPatches"][0])
            self.assertEqual(join["kind"], "JoinConfiguration")
            self.assertEqual(join["nodeRegistration"]["taints"], [
                {"key": "ate.dev/sandboxClass", "value": "microvm", "effect": "NoSchedule"}])

    def test_single_node_is_labelled_not_tainted(self):
        r = self.run_script("hack/kind/create-cluster.sh", "--dry-run", "--workers", "0",
                            check=True)
        with open(os.path.join(self.work, "kind-config.yaml")) as f:
            (cp,) = yaml.safe_load(f)["nodes"]
        self.assertEqual(cp["labels"], {"ate.dev/sandboxClass": "microvm"})
        self.assertEqual(cp["extraMounts"][0]["hostPath"], "/dev/kvm")
        self.assertNotIn("kubeadmConfigPatches", cp)
        self.assertFalse([c for c in commands(r.stdout) if " taint " in c])

    def test_with_stubs(self):
        self.run_script("hack/kind/create-cluster.sh", "--name", "s1", check=True)
        lines = self.stub_lines()
        self.assertInOrder(lines, [
            "kind version",
            "docker run --rm --device /dev/kvm busybox:1.36.1 true",
            "docker inspect -f {{.State.Running}} kind-registry",
            "docker run --detach",
            "kind get clusters",
            "kind create cluster --name s1 --config %s/kind-config.yaml --image %s"
            % (self.work, NODE_IMAGE),
            "kind get nodes --name s1",
            "kubectl --context=kind-s1 label node s1-worker ate.dev/sandboxClass=microvm",
            "kubectl --context=kind-s1 taint node s1-worker ate.dev/sandboxClass=microvm:NoSchedule",
            "kubectl --context=kind-s1 wait --for=condition=Ready nodes",
            "kubectl --context=kind-s1 --request-timeout=30s get --raw "
            "/apis/certificates.k8s.io/v1beta1",
        ])
        self.assertFalse([l for l in lines if "chmod" in l])
        stdin_copies = [c for c in self.stub_calls() if c["args"][:2] == ["exec", "-i"]]
        self.assertEqual(len(stdin_copies), 2)

    def test_no_kvm_fails_unless_allowed(self):
        env = {"ATE_KVM_DEVICE": os.path.join(self.tmp, "no-kvm")}
        r = self.run_script("hack/kind/create-cluster.sh", env=env, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("KVM is not usable", r.stderr)
        self.assertFalse([l for l in self.stub_lines() if l.startswith("kind create")])
        self.run_script("hack/kind/create-cluster.sh", "--allow-no-kvm", env=env, check=True)
        self.assertFalse([l for l in self.stub_lines() if "label node" in l])

    def test_old_kind_is_refused(self):
        r = self.run_script("hack/kind/create-cluster.sh", env={"STUB_KIND_VERSION": "0.31.0"},
                            check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("kind v0.31.0 is too old: v0.32.0 or newer is needed", r.stderr)
        self.assertFalse([l for l in self.stub_lines() if l.startswith("kind create")])
        self.run_script("hack/kind/create-cluster.sh", env={"STUB_KIND_VERSION": "0.33.1"},
                        check=True)

    def test_cluster_without_pod_certificates_is_refused(self):
        """A node image older than Kubernetes 1.35 has no
        PodCertificateRequest API: upstream's installer would then wait
        forever, so the cluster script stops with the reason."""
        r = self.run_script("hack/kind/create-cluster.sh", "--node-image", "kindest/node:v1.34.0",
                            env={"STUB_NO_PCR": "1"}, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Kubernetes 1.35 or newer", r.stderr)
        self.assertIn('FAILED in phase "PodCertificateRequest API"', r.stderr)
        self.assertTrue([l for l in self.stub_lines() if l.startswith("kind create cluster")
                         and "--image kindest/node:v1.34.0" in l])

    def test_server_config_reaches_every_microvm_node(self):
        cfg = os.path.join(self.tmp, "server.conf")
        with open(cfg, "w") as f:
            f.write("log-level = debug\n")
        r = self.run_script("hack/kind/create-cluster.sh", "--dry-run", "--name", "c",
                            "--workers", "2", "--server-config", cfg, check=True)
        installs = [c for c in commands(r.stdout) if "ateom-microvm/config" in c]
        self.assertEqual(len(installs), 2)
        for node, c in zip(("c-worker", "c-worker2"), installs):
            cmd, _, stdin = c.rpartition(" < ")
            self.assertEqual(stdin, cfg)
            argv = shlex.split(cmd)
            self.assertEqual(argv[:5], ["docker", "exec", "-i", node, "sh"])
            self.assertIn("chmod 0644 '/var/lib/ateom-gvisor/ateom-microvm/config.new' && "
                          "mv '/var/lib/ateom-gvisor/ateom-microvm/config.new' "
                          "'/var/lib/ateom-gvisor/ateom-microvm/config'", argv[-1])
        r = self.run_script("hack/kind/create-cluster.sh", "--dry-run", "--server-config",
                            os.path.join(self.tmp, "missing"), check=False)
        self.assertIn("--server-config: no file", r.stderr)

    def test_kvm_probe_failure(self):
        r = self.run_script("hack/kind/create-cluster.sh",
                            env={"STUB_FAIL": "docker:--device /dev/kvm"}, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("docker cannot pass /dev/kvm", r.stdout)


class BuildImageTest(ScriptTestCase):
    def test_dry_run_worker(self):
        commit = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        r = self.run_script("hack/build-image.sh", "--dry-run", "--engine", "docker", "--push",
                            "--load-kind", "c1", check=True)
        ctx = os.path.join(self.work, "context")
        self.assertEqual(commands(r.stdout), [
            "docker build --file %s/deploy/image/Dockerfile --tag localhost:5001/ateom-microvm:dev "
            "--build-arg ATE_VERSION=0.1.0 --build-arg ATE_GIT_COMMIT=%s --build-arg BUILD_JOBS=2 %s"
            % (ctx, commit, ctx),
            "docker push localhost:5001/ateom-microvm:dev",
            "kind load docker-image localhost:5001/ateom-microvm:dev --name c1",
        ])

    def test_dry_run_counter_podman(self):
        r = self.run_script("hack/build-image.sh", "--dry-run", "--image", "counter", "--engine",
                            "podman", "--platform", "linux/arm64", "--tag", "reg:5000/c:v1",
                            "--load-kind", check=True)
        cmds = commands(r.stdout)
        self.assertRegex(cmds[0], r"^podman build --platform linux/arm64 --file "
                         + re.escape(SOURCE) + r"/deploy/demo/counter/Dockerfile --tag reg:5000/c:v1 ")
        self.assertEqual(cmds[1:], [
            "podman save --output %s/image.tar reg:5000/c:v1" % self.work,
            "kind load image-archive %s/image.tar --name kind" % self.work,
        ])

    def test_with_stubs_context_and_digest(self):
        digest_file = os.path.join(self.tmp, "digest")
        self.run_script("hack/build-image.sh", "--push", "--digest-file", digest_file, check=True)
        ctx = os.path.join(self.work, "context")
        for f in ("CMakeLists.txt", "deploy/image/Dockerfile", "deploy/image/runtime-packages.sh",
                  "runtime/util/error.c"):
            self.assertTrue(os.path.exists(os.path.join(ctx, f)), f)
        self.assertFalse([d for d in os.listdir(ctx) if d.startswith("build")])
        with open(digest_file) as f:
            self.assertEqual(f.read().strip(), "localhost:5001/ateom-microvm@" + STUB_DIGEST)
        self.assertEqual([l.split()[:2] for l in self.stub_lines()],
                         [["docker", "build"], ["docker", "push"], ["docker", "image"]])

    def test_podman_push_to_kind_registry(self):
        """The kind registry is plain HTTP: podman must be told, and the
        digest recorded is the one the push reports (the registry's), not
        the local image's."""
        digest_file = os.path.join(self.tmp, "digest")
        self.run_script("hack/build-image.sh", "--engine", "podman", "--image", "counter",
                        "--push", "--digest-file", digest_file, check=True)
        push = [c["args"] for c in self.stub_calls() if c["args"][:1] == ["push"]]
        self.assertEqual(push, [["push", "--tls-verify=false", "--digestfile",
                                 os.path.join(self.work, "pushed-digest"),
                                 "localhost:5001/ate-counter:dev"]])
        with open(digest_file) as f:
            self.assertEqual(f.read(), "localhost:5001/ate-counter@%s\n" % STUB_PUSHED_DIGEST)
        self.assertFalse([l for l in self.stub_lines() if "image inspect" in l])

    def test_remote_registry_keeps_tls(self):
        for engine in ("podman", "buildah"):
            r = self.run_script("hack/build-image.sh", "--dry-run", "--engine", engine, "--push",
                                "--tag", "reg.example.com/ate/ateom-microvm:1", check=True)
            (push,) = [c for c in commands(r.stdout) if " push " in c]
            self.assertEqual(push, "%s push reg.example.com/ate/ateom-microvm:1" % engine)
        r = self.run_script("hack/build-image.sh", "--dry-run", "--engine", "docker", "--push",
                            check=True)
        self.assertIn("docker push localhost:5001/ateom-microvm:dev", commands(r.stdout))

    def test_buildah_with_base_images(self):
        digest_file = os.path.join(self.tmp, "digest")
        r = self.run_script("hack/build-image.sh", "--engine", "buildah", "--build-image",
                            "localhost/base:12", "--runtime-image", "localhost/slim:12", "--push",
                            "--digest-file", digest_file, "--load-kind", "k1", check=True)
        ctx = os.path.join(self.work, "context")
        cmds = commands(r.stdout)
        self.assertRegex(cmds[0], r"^buildah build --file %s/deploy/image/Dockerfile --tag "
                         r"localhost:5001/ateom-microvm:dev --build-arg ATE_VERSION=\S+ --build-arg "
                         r"ATE_GIT_COMMIT=\S+ --build-arg BUILD_JOBS=2 --build-arg "
                         r"BUILD_IMAGE=localhost/base:12 --build-arg RUNTIME_IMAGE=localhost/slim:12 "
                         r"--isolation chroot --layers %s$" % (re.escape(ctx), re.escape(ctx)))
        self.assertEqual(cmds[1:], [
            "buildah push --tls-verify=false --digestfile %s/pushed-digest "
            "localhost:5001/ateom-microvm:dev" % self.work,
            "buildah push localhost:5001/ateom-microvm:dev docker-archive:%s/image.tar:"
            "localhost:5001/ateom-microvm:dev" % self.work,
            "kind load image-archive %s/image.tar --name k1" % self.work,
        ])
        with open(digest_file) as f:
            self.assertEqual(f.read().strip(), "localhost:5001/ateom-microvm@" + STUB_PUSHED_DIGEST)

    def test_multi_arch(self):
        """One reference for amd64 and arm64 nodes (the SandboxConfigs list
        both): a manifest list pushed as a whole, its pushed digest recorded."""
        both = "linux/amd64,linux/arm64"
        for engine in ("podman", "buildah"):
            digest_file = os.path.join(self.tmp, engine + ".digest")
            r = self.run_script("hack/build-image.sh", "--engine", engine, "--image", "counter",
                                "--platform", both, "--push", "--digest-file", digest_file,
                                check=True)
            cmds = commands(r.stdout)
            self.assertIn(" --platform linux/amd64\\,linux/arm64 ", cmds[0])
            self.assertIn(" --manifest localhost:5001/ate-counter:dev ", cmds[0])
            self.assertNotIn("--tag", cmds[0])
            self.assertEqual(cmds[1], "%s manifest push --all --tls-verify=false --digestfile "
                             "%s/pushed-digest localhost:5001/ate-counter:dev "
                             "docker://localhost:5001/ate-counter:dev" % (engine, self.work))
        r = self.run_script("hack/build-image.sh", "--dry-run", "--engine", "docker", "--platform",
                            both, "--push", check=True)
        cmds = commands(r.stdout)
        self.assertEqual(len(cmds), 1, "buildx pushes while it builds")
        self.assertRegex(cmds[0], r"^docker buildx build --platform linux/amd64\\,linux/arm64 "
                         r"--file \S+ --tag localhost:5001/ateom-microvm:dev --push "
                         r"--metadata-file ")
        for bad in (["--platform", both], ["--platform", both, "--push", "--load-kind"]):
            r = self.run_script("hack/build-image.sh", "--dry-run", *bad, check=False)
            self.assertNotEqual(r.returncode, 0, bad)

    def test_bad_arguments(self):
        for args in (["--image", "x"], ["--engine", "rkt"], ["--digest-file", "f"],
                     ["--image", "counter", "--build-image", "debian:12"]):
            r = self.run_script("hack/build-image.sh", "--dry-run", *args, check=False)
            self.assertNotEqual(r.returncode, 0, args)
        self.assertEqual(self.stub_calls(), [])


class ImageDemoTest(ScriptTestCase):
    def test_dry_run_sequence(self):
        work = os.path.join(self.tmp, "imgdemo")
        r = self.run_script("hack/image-demo.sh", "--dry-run", "--work", work, "--build",
                            os.path.join(self.tmp, "b"), check=True)
        commit = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        self.assertInOrder(commands(r.stdout), [
            "mmdebstrap --variant=apt --mode=root bookworm %s/bookworm.partial.tar" % work,
            "mv %s/bookworm.partial.tar %s/bookworm.tar" % (work, work),
            "hack/build-image.sh --engine buildah --tag localhost/ateom-microvm:image-demo "
            "--build-image localhost/ate-base/debian:12 --runtime-image "
            "localhost/ate-base/debian:12 --dry-run",
            "buildah from --name ateom-image-demo localhost/ateom-microvm:image-demo",
            "buildah run --isolation chroot ateom-image-demo -- sh -c",
            "cmake --build %s/b -j 2 --target ch-sim" % self.tmp,
            "hack/demo.sh --no-deps --bin %s/b/bin --container ateom-image-demo" % self.tmp,
        ])
        self.assertIn("commit=%s " % commit, r.stdout, "the check wants this checkout's commit")
        with open(os.path.join(work, "storage.conf")) as f:
            self.assertIn('graphroot = "%s/storage"' % work, f.read(),
                          "a private image store, not the host's")
        self.assertEqual(self.stub_calls(), [])


class AssetScriptsTest(ScriptTestCase):
    def pins_from_script(self, arch):
        """The pins as pins.sh states them, through its own function."""
        names = {"cloud-hypervisor": "ch v52.0", "vmlinux": "kata 3.31.0",
                 "rootfs.img": "kata 3.31.0", "configuration-clh.toml": "kata 3.31.0"}
        out = {}
        for f, kv in names.items():
            r = subprocess.run(["bash", "-c", 'source hack/microvm-assets/pins.sh && ate_pin "$@"',
                                "x"] + kv.split() + [arch, f], cwd=SOURCE, capture_output=True,
                               text=True, check=True)
            out[f] = r.stdout.strip()
        return out

    def test_pins_are_the_spec_values(self):
        files = {"cloud-hypervisor": "cloud-hypervisor", "vmlinux": "kata-kernel",
                 "rootfs.img": "kata-image", "configuration-clh.toml": "kata-config"}
        for arch in ("amd64", "arm64"):
            got = self.pins_from_script(arch)
            self.assertEqual({files[f]: v for f, v in got.items()}, SPEC_PINS[arch])

    def test_assemble_dry_run(self):
        for arch, ch_file in (("amd64", "cloud-hypervisor-static"),
                              ("arm64", "cloud-hypervisor-static-aarch64")):
            r = self.run_script("hack/microvm-assets/assemble.sh", "--dry-run", "--arch", arch,
                                check=True)
            w = self.work
            self.assertEqual(commands(r.stdout), [
                "curl --fail --silent --show-error --location --retry 3 --output "
                "%s/kata-static.tar.zst https://github.com/kata-containers/kata-containers/"
                "releases/download/3.31.0/kata-static-3.31.0-%s.tar.zst" % (w, arch),
                "mkdir -p %s/kata %s/assets" % (w, w),
                "tar --zstd -xf %s/kata-static.tar.zst -C %s/kata" % (w, w),
                "cp --dereference %s/kata/opt/kata/share/kata-containers/vmlinux.container "
                "%s/assets/vmlinux" % (w, w),
                "cp --dereference %s/kata/opt/kata/share/kata-containers/kata-containers.img "
                "%s/assets/rootfs.img" % (w, w),
                "cp --dereference %s/kata/opt/kata/share/defaults/kata-containers/"
                "configuration-clh.toml %s/assets/configuration-clh.toml" % (w, w),
                "mkdir -p %s/assets" % w,
                "curl --fail --silent --show-error --location --retry 3 --output "
                "%s/assets/cloud-hypervisor https://github.com/cloud-hypervisor/cloud-hypervisor/"
                "releases/download/v52.0/%s" % (w, ch_file),
                "chmod 0755 %s/assets/cloud-hypervisor" % w,
            ])

    def test_ch_versions(self):
        r = self.run_script("hack/microvm-assets/assemble.sh", "--dry-run", "--ch-version",
                            "v51.1", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no pinned SHA-256", r.stderr)
        sha = "12" * 32
        r = self.run_script("hack/microvm-assets/assemble.sh", "--dry-run", "--ch-version",
                            "v51.1", "--ch-sha256", sha, "--arch", "amd64", check=True)
        self.assertIn("releases/download/v51.1/cloud-hypervisor-static", r.stdout)
        r = self.run_script("hack/microvm-assets/assemble.sh", "--dry-run", "--arch", "amd64",
                            "--ch-sha256", sha, check=False)
        self.assertIn("conflicts with the pin", r.stderr)
        for bad in (["--ch-version", "v50.0"], ["--arch", "riscv64"], ["--kata-version", "3.32.0"]):
            r = self.run_script("hack/microvm-assets/assemble.sh", "--dry-run", *bad, check=False)
            self.assertNotEqual(r.returncode, 0, bad)

    def test_assemble_rejects_unpinned_downloads(self):
        """Stub curl serves a well-formed kata tarball with the wrong
        contents: nothing may land in the output folder."""
        out = os.path.join(self.tmp, "out")
        tree = os.path.join(self.tmp, "tree")
        share = os.path.join(tree, "opt/kata/share")
        os.makedirs(os.path.join(share, "kata-containers"))
        os.makedirs(os.path.join(share, "defaults/kata-containers"))
        for p, data in (("kata-containers/vmlinux-6.12", b"k"), ("kata-containers/image.img", b"i"),
                        ("defaults/kata-containers/configuration-clh.toml", b"c")):
            with open(os.path.join(share, p), "wb") as f:
                f.write(data)
        os.symlink("vmlinux-6.12", os.path.join(share, "kata-containers/vmlinux.container"))
        os.symlink("image.img", os.path.join(share, "kata-containers/kata-containers.img"))
        tarball = os.path.join(self.tmp, "kata.tar.zst")
        subprocess.run(["tar", "--zstd", "-cf", tarball, "-C", tree, "."], check=True)
        # The curl stub writes its reply body to --output; make it copy the
        # tarball for the kata URL by pre-seeding: a wrapper in front of it.
        wrapper = os.path.join(self.bin, "curl")
        os.unlink(wrapper)
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nout=""\nwhile [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; '
                    'url=$1; shift; done\ncase $url in *kata-static*) cp %s "$out" ;; '
                    '*) printf binary > "$out" ;; esac\n' % tarball)
        os.chmod(wrapper, 0o755)
        r = self.run_script("hack/microvm-assets/assemble.sh", "--arch", "amd64", "--out", out,
                            check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("sha256 mismatch", r.stderr)
        for name in ("vmlinux", "rootfs.img", "configuration-clh.toml", "cloud-hypervisor"):
            self.assertIn("/assets/" + name, r.stderr)
        self.assertIn(SPEC_PINS["amd64"]["kata-kernel"], r.stderr)
        self.assertFalse(os.path.exists(out))

    def test_stage_to_rustfs_dry_run(self):
        r = self.run_script("hack/microvm-assets/stage-to-rustfs.sh", "--dry-run", "--arch",
                            "arm64", "--context", "kind-x", "--bucket", "bkt", "--out", "/a",
                            check=True)
        self.assertEqual(commands(r.stdout), [
            "kubectl --context=kind-x --namespace ate-system port-forward svc/rustfs 9000:9000 > "
            "%s/port-forward.log 2>&1 &" % self.work,
        ] + ["aws --endpoint-url http://127.0.0.1:9000 s3 cp --only-show-errors /a/%s "
             "s3://bkt/kata-assets/arm64/%s" % (f, f)
             for f in ("cloud-hypervisor", "vmlinux", "rootfs.img", "configuration-clh.toml")] + [
            "aws --endpoint-url http://127.0.0.1:9000 s3 ls s3://bkt/kata-assets/arm64/",
        ])

    def test_stage_to_gcs_dry_run(self):
        r = self.run_script("hack/microvm-assets/stage-to-gcs.sh", "--dry-run", "--arch", "amd64",
                            "--project", "p1", "--out", "/a", check=True)
        self.assertEqual(commands(r.stdout), [
            "gcloud storage cp --project=p1 /a/%s gs://ate-snapshots/kata-assets/amd64/%s" % (f, f)
            for f in ("cloud-hypervisor", "vmlinux", "rootfs.img", "configuration-clh.toml")] + [
            "gcloud storage ls --project=p1 --long gs://ate-snapshots/kata-assets/amd64/"])

    def test_stage_refuses_unverified_assets(self):
        out = os.path.join(self.tmp, "out")
        os.mkdir(out)
        for f in ("cloud-hypervisor", "vmlinux", "rootfs.img", "configuration-clh.toml"):
            with open(os.path.join(out, f), "w") as fh:
                fh.write(f)
        for script in ("stage-to-gcs.sh", "stage-to-rustfs.sh"):
            r = self.run_script("hack/microvm-assets/" + script, "--out", out, check=False)
            self.assertIn("SHA256SUMS missing", r.stderr)
        subprocess.run("sha256sum * > SHA256SUMS", shell=True, cwd=out, check=True)
        r = self.run_script("hack/microvm-assets/stage-to-gcs.sh", "--out", out, "--arch",
                            "amd64", check=False)
        self.assertIn("not the pinned kata-containers 3.31.0 amd64 file", r.stderr)
        with open(os.path.join(out, "vmlinux"), "a") as fh:
            fh.write("changed")
        r = self.run_script("hack/microvm-assets/stage-to-gcs.sh", "--out", out, check=False)
        self.assertIn("changed since assemble.sh verified them", r.stderr)
        self.assertEqual(self.stub_calls(), [])


class RunMicrovmDemoTest(ScriptTestCase):
    ORDER = [
        "hack/kind/create-cluster.sh --name kind --dry-run",
        "kind create cluster --name kind",
        "./hack/install-ate-kind.sh --deploy-ate-system",
        "patch daemonset atelet --type=strategic",
        "rollout status daemonset/atelet",
        "hack/build-image.sh --image worker --tag localhost:5001/ateom-microvm:dev --push",
        "docker build",
        "docker push localhost:5001/ateom-microvm:dev",
        "hack/build-image.sh --image counter --tag localhost:5001/ate-counter:dev --push",
        "docker push localhost:5001/ate-counter:dev",
        "hack/microvm-assets/assemble.sh --arch amd64 --ch-version v52.0",
        "releases/download/3.31.0/kata-static-3.31.0-amd64.tar.zst",
        "hack/microvm-assets/stage-to-rustfs.sh --arch amd64 --context kind-kind",
        "s3 cp --only-show-errors",
        "apply -f ",
        "wait --for=condition=Ready actortemplate/counter-microvm --timeout=600s",
        "create actor a1 --template ate-demo-counter-microvm/counter-microvm",
        "resume actor a1",
        "port-forward svc/atenet-router 8000:80",
        "--request POST --header Host:\\ a1.actors.resources.substrate.ate.dev",
        "--request POST",
        "suspend actor a1",
        "resume actor a1",
        "--request POST",
    ]

    def test_dry_run_sequence(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--dry-run", "--actor", "a1",
                            "--arch", "amd64", "--substrate-dir", sub, check=True)
        cmds = commands(r.stdout)
        self.assertInOrder(cmds, self.ORDER)
        self.assertEqual([c["args"][0] for c in self.stub_calls()], ["kustomize"],
                         "dry-run runs no CLI but the (read-only) rendering")
        # The manifest it would apply: our images, the stand-in digest.
        with open(os.path.join(self.work, "demo.yaml")) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        pool = next(d for d in docs if d["kind"] == "WorkerPool")
        self.assertEqual(pool["spec"]["ateomImage"],
                         "localhost:5001/ateom-microvm@sha256:" + "d" * 64)
        tmpl = next(d for d in docs if d["kind"] == "ActorTemplate")
        self.assertEqual(tmpl["spec"]["containers"][0]["image"],
                         "localhost:5001/ate-counter@sha256:" + "d" * 64)

    def test_stubbed_run_passes(self):
        sub = self.make_substrate_checkout()
        port = str(free_port())
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                            "--skip-assets", "--substrate-dir", sub, "--kubectl-ate",
                            os.path.join(self.bin, "kubectl-ate"), "--router-port", port,
                            check=True)
        self.assertIn("PASS: the count continued", r.stdout)
        for n in ("count is 1", "count is 2", "count is 3"):
            self.assertIn(n, r.stdout)
        lines = self.stub_lines()
        self.assertInOrder(lines, [
            "install-ate-kind.sh --deploy-ate-system",
            "kubectl --context=kind-kind --namespace ate-system patch daemonset atelet",
            "docker build", "docker push localhost:5001/ateom-microvm:dev",
            "docker build", "docker push localhost:5001/ate-counter:dev",
            "kubectl --context=kind-kind apply -f %s/demo.yaml" % self.work,
            "kubectl --context=kind-kind --namespace ate-demo-counter-microvm wait",
            "kubectl-ate --context=kind-kind create actor a1",
            "kubectl-ate --context=kind-kind resume actor a1",
            "kubectl --context=kind-kind --namespace ate-system port-forward svc/atenet-router "
            "%s:80" % port,
            "curl", "curl",
            "kubectl-ate --context=kind-kind suspend actor a1",
            "kubectl-ate --context=kind-kind resume actor a1",
            "curl",
        ])
        inst = next(c for c in self.stub_calls() if c["tool"] == "install-ate-kind.sh")
        self.assertEqual(os.path.realpath(inst["cwd"]), os.path.realpath(sub))
        self.assertIn("+ timeout --foreground 900 env --chdir=%s" % sub, r.stdout,
                      "upstream's installer has unbounded waits: ours bounds it")
        self.assertInOrder(lines, [
            "kubectl --context=kind-kind --request-timeout=30s get --raw "
            "/apis/certificates.k8s.io/v1beta1",
            "install-ate-kind.sh --deploy-ate-system"])
        # The actor does not outlive the run: suspended (freeing its worker)
        # and deleted.
        self.assertEqual([l for l in lines if l.startswith("kubectl-ate")
                          and " get " not in l][-2:], [
            "kubectl-ate --context=kind-kind suspend actor a1",
            "kubectl-ate --context=kind-kind delete actor a1"])
        self.assertFalse([l for l in lines if "delete actortemplate" in l])
        with open(os.path.join(self.work, "demo.yaml")) as f:
            text = f.read()
        self.assertIn("image: localhost:5001/ate-counter@" + STUB_DIGEST, text)
        self.assertIn("ateomImage: localhost:5001/ateom-microvm@" + STUB_DIGEST, text)
        self.assertNotIn(ZERO_DIGEST, text)
        self.assertFalse(os.path.exists(self.artifacts), "no logs are collected on success")

    def test_failure_collects_logs(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                            "--skip-assets", "--skip-images", "--counter-image",
                            "localhost:5001/ate-counter@" + STUB_DIGEST, "--substrate-dir", sub,
                            "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                            env={"STUB_FAIL": "kubectl:--for=condition=Ready actortemplate"},
                            check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('FAILED in phase "golden snapshot Ready"', r.stderr)
        lines = self.stub_lines()
        ns = "--namespace ate-demo-counter-microvm"
        self.assertInOrder(lines, [
            "wait --for=condition=Ready actortemplate/counter-microvm",
            "kubectl --context=kind-kind get nodes,pods --all-namespaces --output wide",
            "kubectl --context=kind-kind get events --all-namespaces",
            "kubectl --context=kind-kind %s get actortemplates,workerpools,deployments" % ns,
            "kubectl --context=kind-kind %s describe pods --selector "
            "ate.dev/worker-pool=counter-microvm" % ns,
            "kubectl --context=kind-kind %s logs pod/counter-microvm-deployment-7d9c-x2 "
            "--all-containers --tail=2000" % ns,
            "kubectl --context=kind-kind --namespace ate-system logs pod/atelet-n7k2q",
        ])
        self.assertFalse([l for l in lines if l.startswith("kubectl-ate")],
                         "nothing runs after the failed phase")
        self.assertTrue(os.path.exists(os.path.join(
            self.artifacts, "counter-microvm-deployment-7d9c-x2.log")))
        self.assertIn("stub worker log line", r.stderr, "the worker log tail is printed")

    def test_count_reset_is_a_failure(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                            "--skip-assets", "--skip-images", "--counter-image",
                            "localhost:5001/ate-counter@" + STUB_DIGEST, "--substrate-dir", sub,
                            "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                            "--router-port", str(free_port()), env={"STUB_COUNT_RESET": "1"},
                            check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("expected count 3, got: hello from: 169.254.17.2 | preserved memory count: 1",
                      r.stderr)
        self.assertIn('FAILED in phase "POST after resume (count 3)"', r.stderr)

    def run_skipping(self, *extra, env=None, check=None):
        sub = self.make_substrate_checkout()
        return self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                               "--skip-assets", "--skip-images", "--counter-image",
                               "localhost:5001/ate-counter@" + STUB_DIGEST, "--substrate-dir", sub,
                               "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                               "--router-port", str(free_port()), *extra, env=env, check=check)

    def test_rebuilt_counter_replaces_the_template(self):
        """A re-run with a rebuilt counter image (new digest) must not fail
        on the immutable template spec."""
        self.run_skipping(env={"STUB_TEMPLATE_IMAGE": "localhost:5001/ate-counter@sha256:"
                               + "9" * 64}, check=True)
        self.assertInOrder(self.stub_lines(), [
            "kubectl --context=kind-kind --namespace ate-demo-counter-microvm get actortemplate "
            "counter-microvm --ignore-not-found",
            "kubectl --context=kind-kind --namespace ate-demo-counter-microvm delete actortemplate "
            "counter-microvm --wait=true --timeout=120s",
            "kubectl --context=kind-kind apply -f"])

    def test_same_counter_keeps_the_template(self):
        self.run_skipping(env={"STUB_TEMPLATE_IMAGE": "localhost:5001/ate-counter@" + STUB_DIGEST},
                          check=True)
        self.assertFalse([l for l in self.stub_lines() if "delete actortemplate" in l])

    def test_failed_run_leaves_no_running_actor(self):
        r = self.run_skipping(env={"STUB_COUNT_RESET": "1"}, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual([l for l in self.stub_lines() if l.startswith("kubectl-ate")
                          and " get " not in l][-2:], [
            "kubectl-ate --context=kind-kind suspend actor a1",
            "kubectl-ate --context=kind-kind delete actor a1"])

    def test_keep_actor(self):
        r = self.run_skipping("--keep-actor", check=True)
        self.assertFalse([l for l in self.stub_lines() if "delete actor" in l])
        self.assertIn("keeping actor a1", r.stdout)

    def test_router_port_taken_by_another_service(self):
        """Another local service on the router port must not pass for the
        port-forward (a TCP connect alone would succeed)."""
        import socket
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen(1)
            port = other.getsockname()[1]
            sub = self.make_substrate_checkout()
            r = self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                                "--skip-assets", "--skip-images", "--counter-image",
                                "localhost:5001/ate-counter@" + STUB_DIGEST, "--substrate-dir",
                                sub, "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                                "--router-port", str(port), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("127.0.0.1:%d is already in use by another process" % port, r.stderr)
        self.assertFalse([l for l in self.stub_lines() if "port-forward" in l])

    def test_port_forward_that_dies_is_not_up(self):
        r = self.run_skipping(env={"STUB_FAIL": "kubectl:port-forward"}, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("port-forward to svc/atenet-router did not come up", r.stderr)

    def test_interrupted_fetch_is_fetched_again(self):
        """A first fetch interrupted after `git init` left a cache folder
        that failed every later run; now it is fetched again."""
        src = self.make_substrate_checkout()
        commit = self.env["SUBSTRATE_COMMIT"]
        cache = os.path.join(self.tmp, "cache", "ateom-microvm", "substrate-" + commit)
        subprocess.run(["git", "init", "-q", cache], check=True)
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--actor", "a1", "--skip-cluster",
                            "--skip-assets", "--skip-images", "--skip-control-plane",
                            "--counter-image", "localhost:5001/ate-counter@" + STUB_DIGEST,
                            "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                            "--router-port", str(free_port()),
                            env={"SUBSTRATE_REPO": "file://" + src}, check=True)
        self.assertIn("not a complete checkout", r.stdout)
        head = subprocess.run(["git", "-C", cache, "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        self.assertEqual(head, commit)
        self.assertFalse(os.path.exists(cache + ".partial"))

    def test_wrong_substrate_commit_is_refused(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--skip-cluster", "--skip-images",
                            "--counter-image", "r/c@" + STUB_DIGEST, "--substrate-dir", sub,
                            env={"SUBSTRATE_COMMIT": "0" * 40}, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not the pinned", r.stderr)

    def test_server_config_goes_to_the_cluster_script(self):
        cfg = os.path.join(self.tmp, "server.conf")
        with open(cfg, "w") as f:
            f.write("log-level = debug\n")
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-microvm-demo.sh", "--dry-run", "--actor", "a1",
                            "--substrate-dir", sub, "--server-config", cfg, check=True)
        self.assertIn("hack/kind/create-cluster.sh --name kind --server-config %s --dry-run"
                      % os.path.realpath(cfg), commands(r.stdout))
        self.assertTrue([c for c in commands(r.stdout) if "ateom-microvm/config" in c])

    def test_bad_arguments(self):
        for args in (["--actor", "Bad_Name"], ["--skip-images"], ["--arch", "x86"],
                     ["--router-port", "0"], ["--control-plane-timeout", "0"]):
            r = self.run_script("hack/kind/run-microvm-demo.sh", "--dry-run", *args, check=False)
            self.assertNotEqual(r.returncode, 0, args)


class RunOpenshellTest(ScriptTestCase):
    def test_image_is_required_and_pinned(self):
        r = self.run_script("hack/kind/run-openshell-e2e.sh", "--dry-run", check=False)
        self.assertIn("not public", r.stderr)
        r = self.run_script("hack/kind/run-openshell-e2e.sh", "--dry-run", "--openshell-image",
                            "reg/oshl:latest", check=False)
        self.assertIn("must be pinned", r.stderr)

    def test_dry_run_sequence(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-openshell-e2e.sh", "--dry-run", "--actor", "h1",
                            "--substrate-dir", sub, "--openshell-source-image", "oshl:local",
                            check=True)
        self.assertInOrder(commands(r.stdout), [
            "hack/kind/create-cluster.sh --name kind --dry-run",
            "./hack/install-ate-kind.sh --deploy-ate-system",
            "docker push localhost:5001/ateom-microvm:dev",
            "docker tag oshl:local localhost:5001/oshl-helpdesk:e2e",
            "docker push localhost:5001/oshl-helpdesk:e2e",
            "hack/microvm-assets/stage-to-rustfs.sh",
            "apply --selector app.kubernetes.io/component=microvm-runtime -f ",
            "apply -f %s/openshell.yaml" % self.work,
            "wait --for=condition=Ready actortemplate/openshell-microvm --timeout=1800s",
            "create actor h1 --template ate-demo-openshell-microvm/openshell-microvm",
            "resume actor h1",
            "--request GET --header Host:\\ h1.actors.resources.substrate.ate.dev",
            "suspend actor h1",
            "resume actor h1",
            "--request GET",
        ])
        with open(os.path.join(self.work, "openshell.yaml")) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        tmpl = next(d for d in docs if d["kind"] == "ActorTemplate")
        self.assertEqual(tmpl["spec"]["containers"][0]["image"],
                         "localhost:5001/oshl-helpdesk@sha256:" + "d" * 64)
        self.assertEqual(tmpl["spec"]["snapshotsConfig"]["location"],
                         "s3://ate-snapshots/ate-demo-openshell-microvm/")
        with open(os.path.join(self.work, "runtime.yaml")) as f:
            runtime = [d for d in yaml.safe_load_all(f) if d and d["metadata"].get("labels", {})
                       .get("app.kubernetes.io/component") == "microvm-runtime"]
        self.assertEqual(sorted(d["kind"] for d in runtime), [
            "SandboxConfig", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"])

    def test_stubbed_run_passes(self):
        sub = self.make_substrate_checkout()
        r = self.run_script("hack/kind/run-openshell-e2e.sh", "--actor", "h1", "--skip-cluster",
                            "--skip-assets", "--skip-images", "--openshell-image",
                            "localhost:5001/oshl-helpdesk@" + STUB_DIGEST, "--substrate-dir", sub,
                            "--kubectl-ate", os.path.join(self.bin, "kubectl-ate"),
                            "--router-port", str(free_port()), check=True)
        self.assertIn("the agent process survived suspend/resume", r.stdout)
        self.assertIn("PASS: golden snapshot Ready", r.stdout)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
