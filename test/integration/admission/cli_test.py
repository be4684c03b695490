#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of the ate-admission CLI.

  cli_test.py cli      exit codes, the violation line format, standard input,
                       json/yaml output, cross-file rules, --old, limits
  cli_test.py golden   the rendered worker Deployments against their golden
                       files (deploy/rendered/ and golden/ here), and the
                       examples in deploy/examples/ pass validation.
                       ATE_UPDATE_GOLDEN=1 rewrites the golden files.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ATE_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BUILD = os.environ.get("ATE_BUILD_DIR", os.path.join(SRC, "build"))
CLI = os.path.join(BUILD, "bin", "ate-admission")
LINE = re.compile(r"^(?P<file>[^:]+): (?P<kind>[A-Za-z<>]+)/(?P<name>[^:]+): "
                  r"(?P<path>[^ :]+(?: [^ :]+)*): (?P<msg>.+)$")
SHA = "a397be1abc2420d26bce6c70e6e2ff96c73aaaab929756c56f5e2089ea842b63"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(*args, stdin=None):
    p = subprocess.run([CLI] + list(args), input=stdin, capture_output=True, text=True,
                       check=False)
    return p.returncode, p.stdout, p.stderr


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def sandboxconfig(name, cls, assets):
    return ("apiVersion: ate.dev/v1alpha1\nkind: SandboxConfig\nmetadata: {name: %s}\n"
            "spec:\n  sandboxClass: %s\n  assets:\n    amd64:\n%s"
            % (name, cls, "".join("      %s: {url: 'gs://b/%s', sha256: %s}\n" % (a, a, SHA)
                                  for a in assets)))


def pool(name, cls="gvisor", replicas=1, extra=""):
    return ("apiVersion: ate.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: %s}\n"
            "spec:\n  replicas: %d\n  ateomImage: img\n  sandboxClass: %s\n%s"
            % (name, replicas, cls, extra))


def test_usage():
    rc, out, _ = run("--help")
    check(rc == 0 and out.startswith("Usage: ate-admission"), "--help exits 0 with usage")
    rc, out, _ = run("--version")
    check(rc == 0 and out.startswith("ate-admission "), "--version")
    for args, what in (((), "no command"), (("frobnicate", "x"), "unknown command"),
                       (("validate",), "validate without FILE"),
                       (("validate", "--bogus", "x"), "unknown option"),
                       (("validate", "-o", "xml", "x"), "unknown output format"),
                       (("render-workerpool", "-o", "text", "x"), "render as text")):
        rc, _, err = run(*args)
        check(rc == 2 and err.strip() != "", "%s: exit 2 with a message (got %d)" % (what, rc))


def test_validate(tmp):
    good = write(tmp, "good.yaml", sandboxconfig("ok", "microvm",
                                                 ["cloud-hypervisor", "kata-kernel",
                                                  "kata-image", "kata-config"]))
    rc, out, err = run("validate", good)
    check(rc == 0 and out == "" and err == "", "a valid file: exit 0, no output")
    rc, _, err = run("validate", "-v", good)
    check(rc == 0 and "1 objects checked" in err, "--verbose prints a summary")

    bad = write(tmp, "bad.yaml", sandboxconfig("bad", "microvm", ["kata-kernel"])
                + "---\n" + pool("neg", replicas=-1))
    rc, out, _ = run("validate", bad)
    lines = out.splitlines()
    check(rc == 1 and len(lines) == 2, "violations: exit 1, one line each (got %d, %r)"
          % (rc, lines))
    for line in lines:
        m = LINE.match(line)
        check(m is not None and m.group("file") == bad, "line format FILE: KIND/NAME: path: "
              "message: %r" % line)
    check(any(l.startswith(bad + ": SandboxConfig/bad: spec.assets.amd64: a microvm "
                           "SandboxConfig must define") for l in lines), "policy line")
    check(any(l.startswith(bad + ": WorkerPool/neg: spec.replicas: Invalid value: -1") for l in lines),
          "schema line")

    # Options after the files, and JSON / YAML reports.
    rc, out, _ = run("validate", bad, "--output", "json")
    rep = json.loads(out)
    check(rc == 1 and rep["objects"] == 2 and len(rep["violations"]) == 2
          and {v["origin"] for v in rep["violations"]} == {"policy", "schema"}, "json report")
    rc, out, _ = run("validate", "-o", "yaml", bad)
    check(rc == 1 and yaml.safe_load(out)["objects"] == 2, "yaml report")

    # Standard input, named <stdin>.
    with open(bad) as f:
        rc, out, _ = run("validate", "-", stdin=f.read())
    check(rc == 1 and out.startswith("<stdin>: "), "validate - reads standard input")

    # Unreadable and unparsable files: exit 2, the other files still checked.
    rc, out, err = run("validate", bad, os.path.join(tmp, "missing.yaml"))
    check(rc == 2 and "missing.yaml" in err and len(out.splitlines()) == 2,
          "a missing file: exit 2, violations of the others still printed")
    broken = write(tmp, "broken.yaml", "a: [1,\n")
    rc, out, err = run("validate", good, broken)
    check(rc == 2 and "broken.yaml: line" in err and out == "", "a YAML error: exit 2 with line")
    big = write(tmp, "big.yaml", "# " + "x" * (9 << 20) + "\n")
    rc, _, err = run("validate", big)
    check(rc == 2 and "limit" in err, "input over the size limit: exit 2")


def test_cross_file_and_flags(tmp):
    cfg = write(tmp, "cfg.yaml", sandboxconfig("gv", "gvisor", ["runsc"]))
    wp = write(tmp, "wp.yaml", pool("p", cls="microvm", extra="  sandboxConfigName: gv\n"))
    rc, out, _ = run("validate", wp)
    check(rc == 0, "a reference outside the input is not checked")
    rc, out, _ = run("validate", cfg, wp)
    check(rc == 1 and 'SandboxConfig "gv" has class "gvisor" but WorkerPool default/p is class '
          '"microvm"' in out, "files of one invocation are one input")

    # The same object in two files: alternatives (two overlays), not an error;
    # twice in one file is.
    alt = write(tmp, "alt.yaml", sandboxconfig("gv", "gvisor", ["runsc"]))
    rc, out, _ = run("validate", cfg, alt)
    check(rc == 0, "the same object in two files is not a duplicate (%r)" % out)
    both = write(tmp, "both.yaml", sandboxconfig("gv", "gvisor", ["runsc"]) + "---\n"
                 + sandboxconfig("gv", "gvisor", ["runsc"]))
    rc, out, _ = run("validate", both)
    check(rc == 1 and "Duplicate value" in out, "the same object twice in one file")

    pr = write(tmp, "pr.yaml", sandboxconfig("m", "microvm", ["cloud-hypervisor", "kata-kernel",
                                                               "kata-image", "kata-config"]))
    rc, _, _ = run("validate", pr)
    check(rc == 0, "the contract revision's set passes by default")
    rc, out, _ = run("validate", "--require-virtiofsd", pr)
    check(rc == 1 and "(missing: virtiofsd)" in out, "--require-virtiofsd asks for virtiofsd")

    tmpl = ("apiVersion: ate.dev/v1alpha1\nkind: ActorTemplate\nmetadata: {name: t}\n"
            "spec:\n  pauseImage: p@sha256:1\n  sandboxClass: %s\n"
            "  snapshotsConfig: {location: gs://b/f}\n")
    old = write(tmp, "old.yaml", tmpl % "gvisor")
    new = write(tmp, "new.yaml", tmpl % "microvm")
    rc, out, _ = run("validate", "--old", old, new)
    check(rc == 1 and "ActorTemplate/t: spec: Invalid value: \"object\": Spec is immutable" in out,
          "--old: ActorTemplate spec is immutable")
    rc, _, _ = run("validate", "--old", old, old)
    check(rc == 0, "--old: an unchanged spec passes")


def test_render(tmp):
    two = write(tmp, "two.yaml", pool("a") + "---\n" + pool("b", cls="microvm"))
    rc, _, err = run("render-workerpool", two)
    check(rc == 2 and "2 WorkerPools" in err, "two pools without --name: exit 2")
    rc, out, _ = run("render-workerpool", "--name", "b", two)
    dep = yaml.safe_load(out)
    check(rc == 0 and dep["metadata"]["name"] == "b-deployment"
          and dep["spec"]["template"]["spec"]["nodeSelector"] == {"ate.dev/sandboxClass": "microvm"},
          "--name picks the pool")
    rc, out, _ = run("render-workerpool", "-n", "a", "-o", "json", two)
    check(rc == 0 and json.loads(out)["kind"] == "Deployment", "json output")
    invalid = write(tmp, "invalid.yaml", pool("neg", replicas=-3))
    rc, out, err = run("render-workerpool", invalid)
    check(rc == 1 and out == "" and "spec.replicas" in err, "an invalid pool: exit 1, nothing printed")
    rc, _, err = run("render-workerpool", write(tmp, "none.yaml", "apiVersion: v1\nkind: List\n"))
    check(rc == 2 and "no WorkerPool" in err, "no pool: exit 2")


def strip_header(text):
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def golden_pair(src, golden, *extra):
    rc, out, err = run("render-workerpool", *extra, src)
    check(rc == 0, "render %s: exit %d %s" % (src, rc, err.strip()))
    if os.environ.get("ATE_UPDATE_GOLDEN") == "1":
        header = ""
        if os.path.exists(golden):
            with open(golden) as f:
                text = f.read()
            header = text[:len(text) - len(strip_header(text))]
        with open(golden, "w") as f:
            f.write(header + out)
        print("updated " + golden)
        return
    with open(golden) as f:
        want = strip_header(f.read())
    check(out == want, "%s differs from the rendering of %s (ATE_UPDATE_GOLDEN=1 rewrites it)"
          % (golden, src))


def test_golden():
    examples = os.path.join(SRC, "deploy", "examples", "counter-microvm.yaml")
    rc, out, err = run("validate", "-v", examples)
    check(rc == 0 and out == "" and "3 objects checked" in err, "the examples pass validation")
    golden_pair(examples, os.path.join(SRC, "deploy", "rendered",
                                       "counter-microvm-deployment.yaml"))
    gdir = os.path.join(HERE, "golden")
    golden_pair(os.path.join(gdir, "workerpool-gvisor.yaml"),
                os.path.join(gdir, "workerpool-gvisor.deployment.yaml"))
    golden_pair(os.path.join(gdir, "workerpool-microvm-template.yaml"),
                os.path.join(gdir, "workerpool-microvm-template.deployment.yaml"))
    golden_pair(os.path.join(gdir, "workerpool-microvm-template.yaml"),
                os.path.join(gdir, "workerpool-microvm-template.deployment.json"), "-o", "json")


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("cli", "golden"):
        print(__doc__)
        return 2
    if not os.access(CLI, os.X_OK):
        print("%s not built" % CLI)
        return 1
    if sys.argv[1] == "golden":
        test_golden()
    else:
        test_usage()
        with tempfile.TemporaryDirectory() as tmp:
            test_validate(tmp)
            test_cross_file_and_flags(tmp)
            test_render(tmp)
    print("%s: %d failure(s)" % (sys.argv[1], len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
