# SPDX-License-Identifier: Apache-2.0
"""api/ateom.proto is wire-identical to the reference proto: same package,
service, methods, messages, fields (name, number, type, label, type name),
map entries and enum values.  Skips (77) when the reference is absent."""

import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

SOURCE = os.environ.get("ATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("ATE_SHARED_DIR", os.path.join(SOURCE, "..", "shared"))
REF = os.path.join(SHARED, "reference", "agent-substrate", "ateom.proto")
OURS = os.path.join(SOURCE, "api", "ateom.proto")


def descriptor(path):
    with tempfile.NamedTemporaryFile(suffix=".pb") as out:
        subprocess.run(["protoc", "-I", os.path.dirname(path), "--descriptor_set_out=" + out.name,
                        os.path.basename(path)], check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(open(out.name, "rb").read())
        return fds.file[0]


def flatten(fd):
    """Every wire-relevant fact as a set of tuples."""
    facts = {("package", fd.package)}
    for s in fd.service:
        for m in s.method:
            facts.add(("method", s.name, m.name, m.input_type, m.output_type,
                       m.client_streaming, m.server_streaming))

    def msg(prefix, m):
        facts.add(("message", prefix + m.name, m.options.map_entry))
        for f in m.field:
            facts.add(("field", prefix + m.name, f.name, f.number, f.type, f.label, f.type_name,
                       f.json_name))
        for e in m.enum_type:
            enum(prefix + m.name + ".", e)
        for n in m.nested_type:
            msg(prefix + m.name + ".", n)

    def enum(prefix, e):
        for v in e.value:
            facts.add(("enum", prefix + e.name, v.name, v.number))

    for m in fd.message_type:
        msg("", m)
    for e in fd.enum_type:
        enum("", e)
    return facts


def main():
    if not os.path.exists(REF):
        print("SKIP: reference %s not present (conformance needs ATE_SHARED_DIR)" % REF)
        return 77
    ref, ours = flatten(descriptor(REF)), flatten(descriptor(OURS))
    missing, extra = sorted(ref - ours), sorted(ours - ref)
    for f in missing:
        print("missing in api/ateom.proto:", f)
    for f in extra:
        print("not in the reference:", f)
    if missing or extra:
        return 1
    ref_go = descriptor(REF).options.go_package
    if descriptor(OURS).options.go_package != ref_go:
        print("go_package differs: want", ref_go)
        return 1
    print("api/ateom.proto matches the reference: %d facts" % len(ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
