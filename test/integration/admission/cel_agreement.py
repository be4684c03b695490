#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""CEL agreement test: the committed ValidatingAdmissionPolicy against libateadmission.

For every case of cases.yaml, every SandboxConfig the policy would see (it
matches the policy's resource rules and the library finds no CRD-schema
violation in it, so the apiserver would reach admission) is evaluated twice:

  - by the policy's CEL expressions, read from
    deploy/kustomize/base/policy/sandboxconfig-assets.yaml (with the
    require-virtiofsd component's patch applied for cases with that flag),
    run by @bufbuild/cel under node, after the apiserver's defaulting;
  - by `ate-admission validate --output json` (the C library).

The set of denial messages must be identical.  A case's `vap` marking must
say whether it holds such an object.  When kubectl is present, the policy as
built by `kubectl kustomize` (with and without the component) must carry the
same expressions as the ones used here.

Exit 77 (skip) only when node or @bufbuild/cel is missing.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ATE_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BUILD = os.environ.get("ATE_BUILD_DIR", os.path.join(SRC, "build"))
CLI = os.path.join(BUILD, "bin", "ate-admission")
POLICY_DIR = os.path.join(SRC, "deploy", "kustomize", "base", "policy")
POLICY = os.path.join(POLICY_DIR, "sandboxconfig-assets.yaml")
COMPONENT = os.path.join(POLICY_DIR, "require-virtiofsd", "kustomization.yaml")
CASES = os.path.join(HERE, "cases.yaml")
NODE_DIR = os.environ.get("ATE_NODE_DIR", "/opt/ateom-test-node")
RESOURCES = {"SandboxConfig": "sandboxconfigs", "WorkerPool": "workerpools",
             "ActorTemplate": "actortemplates"}

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def find_node():
    node = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
    pkg = os.path.join(NODE_DIR, "node_modules", "@bufbuild", "cel", "package.json")
    if node is None:
        print("SKIP: node is not installed (hack/install-deps.sh installs it)")
        sys.exit(SKIP)
    if not os.path.exists(pkg):
        print("SKIP: @bufbuild/cel is not installed in %s (hack/install-deps.sh installs it)"
              % NODE_DIR)
        sys.exit(SKIP)
    return node


def json_pointer_apply(doc, op):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    key = int(last) if isinstance(parent, list) else last
    if op["op"] == "test":
        if parent[key] != op["value"]:
            raise ValueError("patch test failed at %s" % op["path"])
    elif op["op"] in ("replace", "add"):
        parent[key] = op["value"]
    else:
        raise ValueError("unsupported patch op %s" % op["op"])


def load_policy():
    """The policy as committed, and with the require-virtiofsd component."""
    with open(POLICY) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    vap = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    binding = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    if len(vap) != 1 or len(binding) != 1:
        raise SystemExit("%s: expected one policy and one binding" % POLICY)
    vap = vap[0]
    b = binding[0]["spec"]
    if b.get("policyName") != vap["metadata"]["name"] or b.get("validationActions") != ["Deny"]:
        fail("the binding must bind %s with validationActions [Deny]" % vap["metadata"]["name"])
    if vap["spec"].get("failurePolicy") != "Fail":
        fail("the policy must fail closed (failurePolicy: Fail)")
    with open(COMPONENT) as f:
        comp = yaml.safe_load(f)
    head = copy.deepcopy(vap)
    for patch in comp["patches"]:
        for op in yaml.safe_load(patch["patch"]):
            json_pointer_apply(head, op)
    return {"": vap, "require-virtiofsd": head}


def kustomize_check(policies):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("note: kubectl not found; kustomize build of the policy not checked")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rel = os.path.relpath(POLICY_DIR, tmp)
        for variant, components in (("", []), ("require-virtiofsd", [rel + "/require-virtiofsd"])):
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                yaml.safe_dump({"resources": [rel], "components": components}, f)
            out = subprocess.run([kubectl, "kustomize", tmp], capture_output=True, text=True,
                                 check=False)
            if out.returncode != 0:
                fail("kubectl kustomize (%s): %s" % (variant or "base", out.stderr.strip()))
                continue
            built = [d for d in yaml.safe_load_all(out.stdout)
                     if d and d["kind"] == "ValidatingAdmissionPolicy"][0]
            norm = [(" ".join(v["expression"].split()), " ".join(v["message"].split()))
                    for v in built["spec"]["validations"]]
            want = [(" ".join(v["expression"].split()), " ".join(v["message"].split()))
                    for v in policies[variant]["spec"]["validations"]]
            if norm != want:
                fail("kustomize build (%s) differs from the policy used here" % (variant or "base"))


def vap_matches(vap, obj, operation):
    api = obj.get("apiVersion", "")
    if "/" not in api:
        return False
    group, version = api.split("/", 1)
    for rule in vap["spec"]["matchConstraints"]["resourceRules"]:
        if (group in rule["apiGroups"] and version in rule["apiVersions"]
                and RESOURCES.get(obj.get("kind")) in rule["resources"]
                and operation in rule["operations"]):
            return True
    return False


def prune_nulls(v):
    if isinstance(v, dict):
        return {k: prune_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [prune_nulls(x) for x in v]
    return v


def apiserver_view(obj):
    """What admission sees: nulls pruned, CRD defaults applied."""
    o = copy.deepcopy(obj)
    if isinstance(o.get("spec"), dict):
        o["spec"] = prune_nulls(o["spec"])
        o["spec"].setdefault("sandboxClass", "gvisor")
    return o


def objects_of(text):
    out = []
    for d in yaml.safe_load_all(text):
        if not isinstance(d, dict):
            continue
        if str(d.get("kind", "")).endswith("List") and isinstance(d.get("items"), list):
            out.extend(i for i in d["items"] if isinstance(i, dict))
        else:
            out.append(d)
    return out


def run_library(case, tmp):
    path = os.path.join(tmp, case["name"] + ".yaml")
    with open(path, "w") as f:
        f.write(case["input"])
    cmd = [CLI, "validate", "--output", "json", path]
    if "require-virtiofsd" in case.get("flags", []):
        cmd.append("--require-virtiofsd")
    if case.get("old"):
        old = os.path.join(tmp, case["name"] + ".old.yaml")
        with open(old, "w") as f:
            f.write(case["old"])
        cmd += ["--old", old]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return out.returncode, out.stdout, out.stderr


def main():
    node = find_node()
    if not os.access(CLI, os.X_OK):
        raise SystemExit("%s not built" % CLI)
    policies = load_policy()
    kustomize_check(policies)
    with open(CASES) as f:
        cases = yaml.safe_load(f)["cases"]

    pending = []  # (case name, object name, library denials, validations)
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            variant = "require-virtiofsd" if "require-virtiofsd" in case.get("flags", []) else ""
            vap = policies[variant]
            rc, out, err = run_library(case, tmp)
            expect = case["expect"]
            if isinstance(expect, dict) and "parse-error" in expect:
                if rc != 2:
                    fail("%s: ate-admission exit %d on a parse error, want 2" % (case["name"], rc))
                if case["vap"]:
                    fail("%s: a parse-error case cannot be vap: true" % case["name"])
                continue
            if rc not in (0, 1):
                fail("%s: ate-admission exit %d: %s" % (case["name"], rc, err.strip()))
                continue
            report = json.loads(out)
            compared = 0
            operation = "UPDATE" if case.get("old") else "CREATE"
            for obj in objects_of(case["input"]):
                if not vap_matches(vap, obj, operation):
                    continue
                name = (obj.get("metadata") or {}).get("name")
                mine = [v for v in report["violations"]
                        if v["kind"] == obj["kind"] and v["name"] == name]
                if any(v["origin"] == "schema" for v in mine):
                    continue  # the apiserver rejects it before admission
                compared += 1
                denials = sorted({v["message"] for v in mine if v["origin"] == "policy"})
                view = apiserver_view(obj)
                vals = vap["spec"]["validations"]
                pending.append((case["name"], name, denials, vals, len(items)))
                items.extend({"expression": v["expression"], "object": view} for v in vals)
            if bool(case["vap"]) != (compared > 0):
                fail("%s: marked vap: %s but %d object(s) reach the policy"
                     % (case["name"], case["vap"], compared))

    env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
    res = subprocess.run([node, os.path.join(HERE, "cel_eval.cjs")], input=json.dumps(items),
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit("cel_eval.cjs failed: %s" % res.stderr)
    results = json.loads(res.stdout)

    agreed_denials = 0
    for case_name, obj_name, lib, vals, base in pending:
        cel = []
        for i, v in enumerate(vals):
            r = results[base + i]
            if "error" in r:
                fail("%s: %s: CEL error on a schema-valid object: %s (%s)"
                     % (case_name, obj_name, r["error"], v["expression"]))
            elif not r["value"]:
                cel.append(v["message"])
        cel = sorted(set(cel))
        if cel != lib:
            fail("%s: SandboxConfig/%s: CEL denies %s, the library %s"
                 % (case_name, obj_name, cel, lib))
        else:
            agreed_denials += len(cel)

    print("%d cases, %d SandboxConfigs compared with CEL (%d expressions), %d denials agreed"
          % (len(cases), len(pending), len(items), agreed_denials))
    if len(pending) == 0:
        fail("no object was compared")
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
