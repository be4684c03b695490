#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every overlay rendered by the real `kubectl kustomize`: yamllint-clean,
accepted by ate-admission, and internally consistent (class, names, images,
pinned asset hashes, object-store URLs).

Run with "admission" as the first argument to run only the ate-admission
check (skipped, exit 77, when ate-admission is not built)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

from deploytest import (ASSET_FILES, BUILD, SOURCE, SPEC_PINS, skip_whole_test, main)

KUBECTL = "/usr/bin/kubectl"
OVERLAYS = {
    "kind": {"scheme": "s3", "bucket": "ate-snapshots",
             "worker": "localhost:5001/ateom-microvm:dev",
             "counter": "localhost:5001/ate-counter", "default": True,
             "requests": {"cpu": "250m", "memory": "2560Mi"}},
    "gke": {"scheme": "gs", "bucket": "ate-snapshots",
            "worker": "us-central1-docker.pkg.dev/my-project/ate/ateom-microvm:0.1.0",
            "counter": "us-central1-docker.pkg.dev/my-project/ate/ate-counter", "default": False,
            "requests": {"cpu": "1", "memory": "3Gi"}},
}
POLICY = "ateom-microvm-sandboxconfig-assets"
PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}
PAUSE = ("registry.k8s.io/pause:3.10.2@sha256:"
         "f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4")

if not os.access(KUBECTL, os.X_OK):
    skip_whole_test("kubectl (with kustomize) is not installed at %s" % KUBECTL)


def render(path):
    r = subprocess.run([KUBECTL, "kustomize", os.path.join(SOURCE, path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed: %s" % (path, r.stderr))
    return r.stdout


def objects(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


class RenderedManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ate-e2e-manifests-")
        cls.rendered = {}
        for name in OVERLAYS:
            text = render("deploy/kustomize/overlays/" + name)
            path = os.path.join(cls.tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            cls.rendered[name] = (path, objects(text))
        for name, src in (("openshell", "deploy/demo/openshell-microvm"),
                          ("kind-runtime", "deploy/kustomize/overlays/kind-runtime"),
                          ("node-config", "deploy/kustomize/node-config")):
            text = render(src)
            path = os.path.join(cls.tmp, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            cls.rendered[name] = (path, objects(text))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_yamllint_rendered(self):
        if not shutil.which("yamllint"):
            self.skipTest("yamllint missing")
        config = os.path.join(SOURCE, ".yamllint")
        args = ["-c", config] if os.path.exists(config) else [
            "-d", "{extends: default, rules: {line-length: {max: 160}, document-start: disable, "
                  "indentation: {indent-sequences: consistent}}}"]
        paths = [p for p, _ in self.rendered.values()]
        r = subprocess.run(["yamllint", "--strict"] + args + paths, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_objects_present(self):
        for name in OVERLAYS:
            docs = self.rendered[name][1]
            kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
            self.assertEqual(kinds, [
                ("ActorTemplate", "counter-microvm"),
                ("Namespace", "ate-demo-counter-microvm"),
                ("SandboxConfig", "counter-microvm"),
                ("SandboxConfig", "microvm"),
                ("ServiceAccount", "default"),
                ("ValidatingAdmissionPolicy", POLICY),
                ("ValidatingAdmissionPolicyBinding", POLICY),
                ("WorkerPool", "counter-microvm"),
            ], name)
            self.assertFalse([d for d in docs if d["kind"] == "ConfigMap"],
                             "the local-config settings must not be installed")

    def test_node_config_reaches_the_worker_pods(self):
        """The node-config DaemonSet runs where the worker pods run and
        writes the file into the hostPath they mount, at the path the
        server reads (<base-path>/ateom-microvm/config)."""
        docs = self.rendered["node-config"][1]
        ds = by_kind(docs, "DaemonSet")["ateom-microvm-node-config"]
        with open(os.path.join(SOURCE, "deploy/rendered/counter-microvm-deployment.yaml")) as f:
            worker = objects(f.read())[0]["spec"]["template"]["spec"]
        pod = ds["spec"]["template"]["spec"]
        self.assertEqual(pod["nodeSelector"], worker["nodeSelector"])
        self.assertEqual(pod["tolerations"], worker["tolerations"])
        (state,) = [v for v in pod["volumes"] if "hostPath" in v]
        (worker_state,) = [v for v in worker["volumes"] if v["name"] == "run-ateom"]
        self.assertEqual(state["hostPath"]["path"], worker_state["hostPath"]["path"])
        (c,) = pod["containers"]
        mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == state["name"])
        script = c["args"][0]
        self.assertIn('d=%s/ateom-microvm' % mount, script)
        self.assertIn('mv "$d/config.new" "$d/config"', script)
        self.assertIn('chmod 0644 "$d/config.new"', script)
        self.assertIs(pod["automountServiceAccountToken"], False)
        ns = by_kind(docs, "Namespace")["ateom-microvm-system"]
        self.assertEqual(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                         "privileged")
        (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
        self.assertEqual(next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["name"],
                         cm["metadata"]["name"])

    def test_node_config_file_is_accepted_by_the_server(self):
        server = os.path.join(BUILD, "bin", "ateom-microvm")
        if not os.access(server, os.X_OK):
            self.skipTest("ateom-microvm is not built")
        conf = os.path.join(self.tmp, "config")
        shutil.copy(os.path.join(SOURCE, "deploy/kustomize/node-config/config"), conf)
        os.chmod(conf, 0o644)
        # Without --pod-uid the server stops right after reading the file:
        # it gets that far only when the file is valid.
        r = subprocess.run([server, "--config=" + conf], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--pod-uid is required", r.stderr)
        with open(conf, "a") as f:
            f.write("no-such-flag = 1\n")
        r = subprocess.run([server, "--config=" + conf], capture_output=True, text=True)
        self.assertIn("config:10: unknown key", r.stderr)

    def test_kind_runtime_is_the_runtime_part_of_kind(self):
        """What run-openshell-e2e.sh installs: exactly the runtime objects
        of the kind overlay, byte for byte."""
        runtime = self.rendered["kind-runtime"][1]
        kind = [d for d in self.rendered["kind"][1] if d["metadata"].get("labels", {})
                .get("app.kubernetes.io/component") == "microvm-runtime"]
        self.assertEqual(sorted(d["kind"] for d in runtime), [
            "SandboxConfig", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"])
        self.assertEqual(runtime, kind)

    def test_sandboxconfigs_pin_the_spec_assets(self):
        for name, want in OVERLAYS.items():
            configs = by_kind(self.rendered[name][1], "SandboxConfig")
            self.assertIs(configs["microvm"]["spec"].get("default", False), want["default"],
                          name)
            self.assertNotIn("default", configs["counter-microvm"]["spec"])
            for cname, cfg in configs.items():
                spec = cfg["spec"]
                self.assertEqual(spec["sandboxClass"], "microvm")
                self.assertEqual(sorted(spec["assets"]), ["amd64", "arm64"])
                for arch, assets in spec["assets"].items():
                    self.assertEqual({a: v["sha256"] for a, v in assets.items()}, SPEC_PINS[arch],
                                     (name, cname, arch))
                    for asset, v in assets.items():
                        self.assertEqual(v["url"], "%s://%s/kata-assets/%s/%s" % (
                            want["scheme"], want["bucket"], arch, ASSET_FILES[asset]))

    def test_demo_objects_agree(self):
        for name, want in OVERLAYS.items():
            docs = self.rendered[name][1]
            ns = by_kind(docs, "Namespace")["ate-demo-counter-microvm"]["metadata"]["name"]
            pool = by_kind(docs, "WorkerPool")["counter-microvm"]
            tmpl = by_kind(docs, "ActorTemplate")["counter-microvm"]
            configs = by_kind(docs, "SandboxConfig")
            self.assertEqual(pool["metadata"]["namespace"], ns)
            self.assertEqual(tmpl["metadata"]["namespace"], ns)
            # One class everywhere; the pool's SandboxConfig exists with it.
            self.assertEqual(pool["spec"]["sandboxClass"], "microvm")
            self.assertEqual(tmpl["spec"]["sandboxClass"], "microvm")
            sc = configs[pool["spec"]["sandboxConfigName"]]
            self.assertEqual(sc["spec"]["sandboxClass"], pool["spec"]["sandboxClass"])
            # The template selects exactly this pool.
            sel = tmpl["spec"]["workerSelector"]["matchLabels"]
            self.assertTrue(sel)
            for k, v in sel.items():
                self.assertEqual(pool["metadata"]["labels"].get(k), v)
            # Our images.
            self.assertEqual(pool["spec"]["ateomImage"], want["worker"], name)
            self.assertGreaterEqual(pool["spec"]["replicas"], 2)
            (c,) = tmpl["spec"]["containers"]
            self.assertEqual(c["image"], want["counter"], name)
            self.assertEqual(c["command"], ["/ate-counter"])
            self.assertEqual(tmpl["spec"]["pauseImage"], PAUSE)
            self.assertEqual(tmpl["spec"]["snapshotsConfig"]["location"], "%s://%s/%s/" % (
                want["scheme"], want["bucket"], ns))

    def test_worker_resources(self):
        for name, want in OVERLAYS.items():
            pool = by_kind(self.rendered[name][1], "WorkerPool")["counter-microvm"]
            self.assertEqual(pool["spec"]["template"], {"resources": {"requests": want["requests"]}},
                             "requests only (no limit that OOM-kills a busy guest): " + name)
        pool = by_kind(self.rendered["openshell"][1], "WorkerPool")["openshell-microvm"]
        self.assertEqual(set(pool["spec"]["template"]["resources"]), {"requests"})

    def test_policy_coexists_with_upstream(self):
        """Upstream's installer applies a policy and binding named
        sandboxconfig-assets: ours must never carry that name (applying
        ours would replace theirs, deleting ours would delete theirs)."""
        for name in OVERLAYS:
            docs = self.rendered[name][1]
            names = [d["metadata"]["name"] for d in docs
                     if d["kind"].startswith("ValidatingAdmissionPolicy")]
            self.assertEqual(names, [POLICY, POLICY], name)
            binding = by_kind(docs, "ValidatingAdmissionPolicyBinding")[POLICY]
            self.assertEqual(binding["spec"]["policyName"], POLICY)
            policy = by_kind(docs, "ValidatingAdmissionPolicy")[POLICY]
            url_rule = policy["spec"]["validations"][2]["expression"]
            self.assertTrue(url_rule.startswith("object.spec.sandboxClass != 'microvm' ||"),
                            "our URL rule judges microvm configs only")

    def test_privileged_namespaces(self):
        """The worker pods are privileged: a baseline Pod Security default
        would refuse them, visible only as ReplicaSet events.  Their unused
        service-account token is not mounted."""
        for name, ns in [("kind", "ate-demo-counter-microvm"), ("gke", "ate-demo-counter-microvm"),
                         ("openshell", "ate-demo-openshell-microvm")]:
            docs = self.rendered[name][1]
            labels = by_kind(docs, "Namespace")[ns]["metadata"]["labels"]
            self.assertEqual(labels["pod-security.kubernetes.io/enforce"], "privileged", name)
            sa = by_kind(docs, "ServiceAccount")["default"]
            self.assertEqual(sa["metadata"]["namespace"], ns)
            self.assertIs(sa["automountServiceAccountToken"], False, name)

    def test_examples_agree_with_the_scripts(self):
        """deploy/examples uses the per-arch staging of stage-to-gcs.sh and
        build-image.sh's default worker tag."""
        with open(os.path.join(SOURCE, "deploy/examples/counter-microvm.yaml")) as f:
            docs = objects(f.read())
        sc = by_kind(docs, "SandboxConfig")["counter-microvm"]
        for arch, assets in sc["spec"]["assets"].items():
            for asset, v in assets.items():
                self.assertEqual(v["url"], "gs://ate-snapshots/kata-assets/%s/%s"
                                 % (arch, ASSET_FILES[asset]))
        pool = by_kind(docs, "WorkerPool")["counter-microvm"]
        self.assertEqual(pool["spec"]["ateomImage"], "localhost:5001/ateom-microvm:dev")
        with open(os.path.join(SOURCE, "hack/build-image.sh")) as f:
            self.assertIn("localhost:5001/ateom-microvm:dev", f.read())
        ns = by_kind(docs, "Namespace")["ate-demo-counter-microvm"]
        self.assertEqual(ns["metadata"]["labels"], PRIVILEGED)

    def test_openshell_objects(self):
        docs = self.rendered["openshell"][1]
        pool = by_kind(docs, "WorkerPool")["openshell-microvm"]
        tmpl = by_kind(docs, "ActorTemplate")["openshell-microvm"]
        self.assertEqual(pool["spec"]["sandboxClass"], "microvm")
        self.assertEqual(pool["spec"]["sandboxConfigName"], "microvm",
                         "names the runtime's config: works whether or not it is the default")
        self.assertEqual(pool["spec"]["ateomImage"], OVERLAYS["kind"]["worker"])
        self.assertEqual(tmpl["spec"]["sandboxClass"], "microvm")
        self.assertEqual(tmpl["spec"]["workerSelector"]["matchLabels"],
                         {"workload": "openshell-microvm"})
        self.assertEqual(pool["metadata"]["labels"]["workload"], "openshell-microvm")
        (c,) = tmpl["spec"]["containers"]
        self.assertEqual(c["command"][0], "/usr/local/bin/openshell-sandbox")
        self.assertIn({"name": "OPENSHELL_BEST_EFFORT_FAILURES", "value": "1"}, c["env"])

    def test_no_placeholder_digests(self):
        """No committed manifest carries a made-up digest (an all-zero
        "not built yet" digest passes the CRD rule and creates an immutable
        ActorTemplate that can never pull): the counter image stays
        unpinned until a pushed digest is set, so a cluster refuses it."""
        for name in list(OVERLAYS) + ["openshell"]:
            with open(self.rendered[name][0]) as f:
                text = f.read()
            self.assertNotRegex(text, r"sha256:0{64}")
            self.assertNotRegex(text, r"sha256:(.)\1{63}\b")
        for name, want in OVERLAYS.items():
            tmpl = by_kind(self.rendered[name][1], "ActorTemplate")["counter-microvm"]
            self.assertNotIn("@", tmpl["spec"]["containers"][0]["image"])


class AdmissionTest(unittest.TestCase):
    """The k8s/ library's view of the same manifests (task F's CLI)."""

    def test_overlays_pass_ate_admission(self):
        """Rendered as committed, the overlays have exactly one violation:
        the counter image is not pinned yet (so a cluster refuses the
        template); with a pushed digest set, as the demo script does, every
        object passes."""
        cli = os.path.join(BUILD, "bin", "ate-admission")
        pushed = "@sha256:" + "5e" * 32
        tmp = tempfile.mkdtemp(prefix="ate-e2e-admission-")
        try:
            files = []
            for path in ["deploy/kustomize/overlays/" + n for n in OVERLAYS] + [
                    "deploy/kustomize/overlays/kind-runtime", "deploy/demo/openshell-microvm"]:
                f = os.path.join(tmp, path.replace("/", "_") + ".yaml")
                text = render(path)
                if path.endswith("kind-runtime"):
                    pass
                elif path.endswith("openshell-microvm"):
                    # The helpdesk image is pinned at deploy time.
                    text = text.replace("image: openshell-helpdesk",
                                        "image: r/oshl@sha256:" + "1" * 64)
                else:
                    r = subprocess.run([cli, "validate", "-"], input=text, capture_output=True,
                                       text=True)
                    self.assertEqual(r.returncode, 1, path + r.stdout + r.stderr)
                    lines = [l for l in r.stdout.splitlines() if l.strip()]
                    self.assertEqual(len(lines), 1, r.stdout)
                    self.assertIn("ActorTemplate/counter-microvm", lines[0])
                    self.assertIn("must be pinned", lines[0])
                    text = text.replace("/ate-counter\n", "/ate-counter" + pushed + "\n")
                with open(f, "w") as fh:
                    fh.write(text)
                files.append(f)
            r = subprocess.run([cli, "validate"] + files, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "admission":
        if not os.access(os.path.join(BUILD, "bin", "ate-admission"), os.X_OK):
            skip_whole_test("ate-admission is not built in %s (k8s/)" % BUILD)
        sys.argv = [sys.argv[0], "AdmissionTest"]
    else:
        sys.argv = [sys.argv[0], "RenderedManifestsTest"] + sys.argv[1:]
    main()
