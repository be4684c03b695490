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

from deploytest import (ASSET_FILES, BUILD, SOURCE, SPEC_PINS, ZERO_DIGEST, skip_whole_test,
                        main)

KUBECTL = "/usr/bin/kubectl"
OVERLAYS = {
    "kind": {"scheme": "s3", "bucket": "ate-snapshots",
             "worker": "localhost:5001/ateom-microvm:dev",
             "counter": "localhost:5001/ate-counter@" + ZERO_DIGEST},
    "gke": {"scheme": "gs", "bucket": "ate-snapshots",
            "worker": "us-central1-docker.pkg.dev/my-project/ate/ateom-microvm:0.1.0",
            "counter": "us-central1-docker.pkg.dev/my-project/ate/ate-counter@" + ZERO_DIGEST},
}
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
        text = render("deploy/demo/openshell-microvm")
        path = os.path.join(cls.tmp, "openshell.yaml")
        with open(path, "w") as f:
            f.write(text)
        cls.rendered["openshell"] = (path, objects(text))

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
                ("ValidatingAdmissionPolicy", "sandboxconfig-assets"),
                ("ValidatingAdmissionPolicyBinding", "sandboxconfig-assets"),
                ("WorkerPool", "counter-microvm"),
            ], name)
            self.assertFalse([d for d in docs if d["kind"] == "ConfigMap"],
                             "the local-config settings must not be installed")

    def test_sandboxconfigs_pin_the_spec_assets(self):
        for name, want in OVERLAYS.items():
            configs = by_kind(self.rendered[name][1], "SandboxConfig")
            self.assertIs(configs["microvm"]["spec"].get("default"), True)
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

    def test_gke_worker_resources(self):
        pool = by_kind(self.rendered["gke"][1], "WorkerPool")["counter-microvm"]
        self.assertEqual(pool["spec"]["template"]["resources"]["requests"],
                         {"cpu": "1", "memory": "3Gi"})
        kind_pool = by_kind(self.rendered["kind"][1], "WorkerPool")["counter-microvm"]
        self.assertNotIn("template", kind_pool["spec"])

    def test_openshell_objects(self):
        docs = self.rendered["openshell"][1]
        pool = by_kind(docs, "WorkerPool")["openshell-microvm"]
        tmpl = by_kind(docs, "ActorTemplate")["openshell-microvm"]
        self.assertEqual(pool["spec"]["sandboxClass"], "microvm")
        self.assertNotIn("sandboxConfigName", pool["spec"], "uses the default microvm config")
        self.assertEqual(pool["spec"]["ateomImage"], OVERLAYS["kind"]["worker"])
        self.assertEqual(tmpl["spec"]["sandboxClass"], "microvm")
        self.assertEqual(tmpl["spec"]["workerSelector"]["matchLabels"],
                         {"workload": "openshell-microvm"})
        self.assertEqual(pool["metadata"]["labels"]["workload"], "openshell-microvm")
        (c,) = tmpl["spec"]["containers"]
        self.assertEqual(c["command"][0], "/usr/local/bin/openshell-sandbox")
        self.assertIn({"name": "OPENSHELL_BEST_EFFORT_FAILURES", "value": "1"}, c["env"])

    def test_counter_digest_is_the_unset_marker(self):
        """The committed overlays carry the all-zero digest that
        run-microvm-demo.sh replaces and refuses to apply."""
        for name in OVERLAYS:
            with open(self.rendered[name][0]) as f:
                self.assertEqual(f.read().count(ZERO_DIGEST), 1)
        with open(os.path.join(SOURCE, "hack/kind/run-microvm-demo.sh")) as f:
            self.assertIn("still has the unset counter digest", f.read())


class AdmissionTest(unittest.TestCase):
    """The k8s/ library's view of the same manifests (task F's CLI)."""

    def test_overlays_pass_ate_admission(self):
        cli = os.path.join(BUILD, "bin", "ate-admission")
        tmp = tempfile.mkdtemp(prefix="ate-e2e-admission-")
        try:
            files = []
            for path in ["deploy/kustomize/overlays/" + n for n in OVERLAYS] + [
                    "deploy/demo/openshell-microvm"]:
                f = os.path.join(tmp, path.replace("/", "_") + ".yaml")
                text = render(path)
                if path.endswith("openshell-microvm"):
                    # The helpdesk image is pinned at deploy time.
                    text = text.replace("image: openshell-helpdesk",
                                        "image: r/oshl@sha256:" + "1" * 64)
                with open(f, "w") as fh:
                    fh.write(text)
                files.append(f)
            r = subprocess.run([cli, "validate"] + files, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # And it does look: an unpinned counter image is refused.
            bad = os.path.join(tmp, "bad.yaml")
            with open(files[0]) as fh, open(bad, "w") as out:
                out.write(fh.read().replace("@" + ZERO_DIGEST, ":latest"))
            r = subprocess.run([cli, "validate", bad], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("ActorTemplate/counter-microvm", r.stdout + r.stderr)
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
