#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check api/kata/*.proto against the kata 3.31.0 reference protos.

Both sets are compiled with protoc into descriptor sets; every message,
field, enum value and service method that we declare must exist in the
reference with the same name, number, type, label, type name and oneof.
The reference agent.proto uses proto3 `optional` (unsupported by
protoc-c 1.4.1), so it is compiled from a temporary copy without the
keyword: the wire form of the fields does not change.

Exit 77 (skipped) when the reference folder is absent.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

REF_FILES = ["agent.proto", "oci.proto", "types.proto", "csi.proto", "health.proto"]
OUR_FILES = ["kata/types.proto", "kata/oci.proto", "kata/agent.proto", "kata/health.proto"]


def compile_set(protoc, includes, files, out):
    cmd = [protoc] + ["-I" + i for i in includes] + [
        "--include_imports", "--descriptor_set_out=" + out] + files
    subprocess.run(cmd, check=True)
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def index(fds, only_files=None):
    msgs, enums, services = {}, {}, {}

    def walk_msg(prefix, m):
        name = prefix + "." + m.name
        msgs[name] = m
        for n in m.nested_type:
            walk_msg(name, n)
        for e in m.enum_type:
            enums[name + "." + e.name] = e

    for f in fds.file:
        if only_files is not None and f.name not in only_files:
            continue
        pkg = "." + f.package if f.package else ""
        for m in f.message_type:
            walk_msg(pkg, m)
        for e in f.enum_type:
            enums[pkg + "." + e.name] = e
        for s in f.service:
            services[pkg + "." + s.name] = s
    return msgs, enums, services


def oneof_name(msg, field):
    if field.HasField("oneof_index") and not field.proto3_optional:
        return msg.oneof_decl[field.oneof_index].name
    return None


def compare(ours, ref):
    errors = []
    checked = 0
    o_msgs, o_enums, o_svcs = ours
    r_msgs, r_enums, r_svcs = ref
    for name, m in sorted(o_msgs.items()):
        rm = r_msgs.get(name)
        if rm is None:
            errors.append("message %s: not in the reference" % name)
            continue
        if m.options.map_entry != rm.options.map_entry:
            errors.append("message %s: map entry mismatch" % name)
        rfields = {f.name: f for f in rm.field}
        for f in m.field:
            checked += 1
            rf = rfields.get(f.name)
            if rf is None:
                errors.append("%s.%s: field not in the reference" % (name, f.name))
                continue
            for attr in ("number", "type", "label", "type_name"):
                a, b = getattr(f, attr), getattr(rf, attr)
                if a != b:
                    errors.append("%s.%s: %s is %r, reference has %r" % (name, f.name, attr, a, b))
            if oneof_name(m, f) != oneof_name(rm, rf):
                errors.append("%s.%s: oneof %r, reference %r" % (
                    name, f.name, oneof_name(m, f), oneof_name(rm, rf)))
    for name, e in sorted(o_enums.items()):
        re_ = r_enums.get(name)
        if re_ is None:
            errors.append("enum %s: not in the reference" % name)
            continue
        rvals = {v.name: v.number for v in re_.value}
        for v in e.value:
            checked += 1
            if rvals.get(v.name) != v.number:
                errors.append("enum %s.%s = %d: reference has %r" % (name, v.name, v.number, rvals.get(v.name)))
    for name, s in sorted(o_svcs.items()):
        rs = r_svcs.get(name)
        if rs is None:
            errors.append("service %s: not in the reference" % name)
            continue
        rmeth = {mm.name: mm for mm in rs.method}
        for mm in s.method:
            checked += 1
            r = rmeth.get(mm.name)
            if r is None:
                errors.append("%s/%s: method not in the reference" % (name, mm.name))
                continue
            for attr in ("input_type", "output_type", "client_streaming", "server_streaming"):
                if getattr(mm, attr) != getattr(r, attr):
                    errors.append("%s/%s: %s is %r, reference has %r" % (
                        name, mm.name, attr, getattr(mm, attr), getattr(r, attr)))
    return checked, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protoc", required=True)
    ap.add_argument("--ours", required=True, help="the api/ folder")
    ap.add_argument("--include", default="/usr/include")
    ap.add_argument("--reference", help="default: $ATE_SHARED_DIR/reference/kata-3.31.0")
    args = ap.parse_args()

    ref_dir = args.reference
    if ref_dir is None:
        shared = os.environ.get("ATE_SHARED_DIR", "")
        ref_dir = os.path.join(shared, "reference", "kata-3.31.0") if shared else ""
    if not ref_dir or not all(os.path.isfile(os.path.join(ref_dir, f)) for f in REF_FILES):
        print("SKIP: kata 3.31.0 reference protos not found (ATE_SHARED_DIR=%r)" %
              os.environ.get("ATE_SHARED_DIR"))
        return 77

    with tempfile.TemporaryDirectory(prefix="ate-kata-conf-") as tmp:
        refcopy = os.path.join(tmp, "ref")
        os.mkdir(refcopy)
        for f in REF_FILES:
            with open(os.path.join(ref_dir, f)) as src:
                text = src.read()
            # proto3 `optional` -> plain field (protoc-c 1.4.1 parity).
            text = re.sub(r"^(\s*)optional\s+", r"\1", text, flags=re.M)
            with open(os.path.join(refcopy, f), "w") as dst:
                dst.write(text)
        ref = compile_set(args.protoc, [refcopy, args.include],
                          ["agent.proto", "health.proto"], os.path.join(tmp, "ref.pb"))
        ours = compile_set(args.protoc, [args.ours, args.include], OUR_FILES,
                           os.path.join(tmp, "ours.pb"))
        checked, errors = compare(index(ours, set(OUR_FILES)),
                                  index(ref, set(REF_FILES)))
    for e in errors:
        print("MISMATCH: " + e)
    print("%d declarations checked against %s, %d mismatches" % (checked, ref_dir, len(errors)))
    if checked == 0:
        print("nothing was compared")
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
