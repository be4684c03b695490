#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Conformance: the requests our cloud-hypervisor driver sends, as ch-sim
recorded them (CH_SIM_RECORD), against the real CH OpenAPI documents of the
version each simulator personality imitates.

Usage: check_openapi.py <test_ch_sim binary>
       check_openapi.py --record FILE   (check a recording another test made)

Runs the driver's lifecycle tests with recording on, then checks every
recorded body: types, enums, required fields, no unknown fields except the
ones CH accepts without documenting them (docs/cloud-hypervisor.md:
vm.restore net_fds, vm.add-net num_fds), no body on action endpoints, and
fd counts that match what the body announces.  Exits 77 (skipped) without
the reference copies ($ATE_SHARED_DIR/reference) or python3-yaml.
"""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77
UNDOCUMENTED = {"RestoreConfig": {"net_fds"}, "NetConfig": {"num_fds", "fds"}}
BODY_SCHEMA = {
    "vm.create": "VmConfig",
    "vm.add-net": "NetConfig",
    "vm.snapshot": "VmSnapshotConfig",
    "vm.restore": "RestoreConfig",
}
PERSONALITY_DOC = {"v51.1": "openapi-v51.1.yaml", "v52.0": "openapi-v52.0.yaml",
                   "v53.0": "openapi-v53.0.yaml"}
INT_RANGES = {"int16": (-2**15, 2**15 - 1), "uint8": (0, 255), "uint16": (0, 2**16 - 1),
              "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
              "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}


def skip(msg):
    print(f"skipped: {msg}")
    sys.exit(SKIP)


class Checker:
    def __init__(self, doc):
        self.schemas = doc["components"]["schemas"]
        self.errors = []

    def resolve(self, s):
        while "$ref" in s:
            s = self.schemas[s["$ref"].rsplit("/", 1)[1]]
        return s

    def check(self, value, schema, where, name=None):
        s = self.resolve(schema)
        t = s.get("type")
        ok = {
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }.get(t, True)
        if not ok:
            self.errors.append(f"{where}: expected {t}, got {json.dumps(value)}")
            return
        if "enum" in s and value not in s["enum"]:
            self.errors.append(f"{where}: {value!r} not in {s['enum']}")
        if t == "integer" and s.get("format") in INT_RANGES:
            lo, hi = INT_RANGES[s["format"]]
            if not lo <= value <= hi:
                self.errors.append(f"{where}: {value} outside {s['format']}")
        if "minimum" in s and isinstance(value, (int, float)) and value < s["minimum"]:
            self.errors.append(f"{where}: {value} < minimum {s['minimum']}")
        if t == "array":
            for i, item in enumerate(value):
                self.check(item, s.get("items", {}), f"{where}[{i}]")
        if t == "object" or "properties" in s:
            props = s.get("properties", {})
            for req in s.get("required", []):
                if req not in value:
                    self.errors.append(f"{where}: required field {req!r} missing")
            allowed = UNDOCUMENTED.get(name, set())
            for k, v in value.items():
                if k in props:
                    self.check(v, props[k], f"{where}.{k}")
                elif k not in allowed:
                    self.errors.append(f"{where}: field {k!r} is not in the schema")


def check_fds(rec, body, errors):
    ep, nfds = rec["path"].rsplit("/", 1)[1], rec["nfds"]
    if ep == "vm.add-net":
        if nfds < 1 or body.get("num_queues", 2) != 2 * nfds:
            errors.append(f"vm.add-net: {nfds} fds for num_queues {body.get('num_queues')}")
    elif ep == "vm.restore":
        want = sum(n["num_fds"] for n in body.get("net_fds", []))
        if nfds != want:
            errors.append(f"vm.restore: {nfds} fds sent, net_fds name {want}")
    elif nfds:
        errors.append(f"{ep}: {nfds} unexpected fds")


def check_record(rec, checkers, errors):
    path, method = rec["path"], rec["method"]
    ep = path.rsplit("/", 1)[1]
    where = f"{rec['personality']} {method} {path}"
    headers = {k.lower(): v for k, v in rec["headers"]}
    if headers.get("host") != "localhost":
        errors.append(f"{where}: Host header is {headers.get('host')!r}")
    if ep not in BODY_SCHEMA:
        if rec["body"]:
            errors.append(f"{where}: action endpoint with a body")
        return
    try:
        body = json.loads(rec["body"] or "")
    except ValueError as e:
        errors.append(f"{where}: body is not JSON: {e}")
        return
    if headers.get("content-type") != "application/json":
        errors.append(f"{where}: Content-Type {headers.get('content-type')!r}")
    c = checkers[rec["personality"]]
    c.errors = []
    c.check(body, {"$ref": f"#/components/schemas/{BODY_SCHEMA[ep]}"}, where, BODY_SCHEMA[ep])
    errors.extend(c.errors)
    check_fds(rec, body, errors)
    if ep == "vm.restore" and rec["personality"] == "v51.1" and "memory_restore_mode" in body:
        errors.append(f"{where}: memory_restore_mode sent to v51.1 (it ignores it)")


def load_checkers():
    ref = os.path.join(os.environ.get("ATE_SHARED_DIR", ""), "reference", "cloud-hypervisor")
    if not os.path.isdir(ref):
        skip(f"no cloud-hypervisor reference at {ref!r} (set ATE_SHARED_DIR)")
    try:
        import yaml
    except ImportError:
        skip("python3-yaml is not installed")
    checkers = {}
    for p, f in PERSONALITY_DOC.items():
        with open(os.path.join(ref, f), encoding="utf-8") as fh:
            checkers[p] = Checker(yaml.safe_load(fh))
    return checkers


def check_file(path):
    """--record FILE: check requests some other test recorded (e.g. the
    server's own Run/Checkpoint/Restore flows), whatever endpoints they hit."""
    checkers = load_checkers()
    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    errors = []
    for rec in records:
        check_record(rec, checkers, errors)
    for e in errors:
        print("FAIL:", e)
    print(f"{len(records)} requests checked, {len(errors)} problems")
    return 1 if errors or not records else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--record":
        return check_file(sys.argv[2])
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ref = os.path.join(os.environ.get("ATE_SHARED_DIR", ""), "reference", "cloud-hypervisor")
    if not os.path.isdir(ref):
        skip(f"no cloud-hypervisor reference at {ref!r} (set ATE_SHARED_DIR)")
    try:
        import yaml
    except ImportError:
        skip("python3-yaml is not installed")
    checkers = {}
    for p, f in PERSONALITY_DOC.items():
        with open(os.path.join(ref, f), encoding="utf-8") as fh:
            checkers[p] = Checker(yaml.safe_load(fh))

    with tempfile.TemporaryDirectory(prefix="ch-openapi.") as tmp:
        rec_path = os.path.join(tmp, "record.jsonl")
        env = dict(os.environ, ATE_CH_SIM_RECORD=rec_path, ATE_TEST_FILTER="test_lifecycle*")
        r = subprocess.run([sys.argv[1]], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, check=False)
        if r.returncode == SKIP:
            skip("the driver tests were skipped: " + r.stdout.strip()[-200:])
        if r.returncode != 0:
            print(r.stdout[-4000:])
            print("FAIL: the driver tests failed")
            return 1
        with open(rec_path, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh]

    errors = []
    seen = set()
    for rec in records:
        check_record(rec, checkers, errors)
        seen.add((rec["personality"], rec["path"].rsplit("/", 1)[1]))
    for p in PERSONALITY_DOC:
        for ep in ("vmm.ping", "vm.create", "vm.add-net", "vm.boot", "vm.pause", "vm.info",
                   "vm.snapshot", "vm.restore", "vm.resume", "vm.shutdown", "vmm.shutdown"):
            if (p, ep) not in seen:
                errors.append(f"{p}: no {ep} request was recorded")
    for e in errors:
        print("FAIL:", e)
    print(f"{len(records)} requests checked, {len(errors)} problems")
    print(f"{1 if not errors else 0} passed, {1 if errors else 0} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
