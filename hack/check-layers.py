#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check the include and call graph rules of docs/architecture.md ("Layers").

Usage: hack/check-layers.py [--build-dir DIR] [--self-test]

1. Modules (runtime/{ch,kata,net,rootfs,snapshot}, k8s/) include only their
   own headers and runtime/util/ (plus system, generated and api headers);
   runtime/util/ includes only its own.
2. runtime/actor/ is layered: a file includes the header of its own unit or
   of a lower layer (LAYERS below), never of a peer or a higher one.
   server/ includes runtime/actor/actor.h (and types.h), runtime/util/ and
   k8s/ only.
3. No cycles between the files of one module, neither between headers
   that include each other nor through calls (x.c calls y.c while y.c
   calls x.c, from the symbols the module's static libraries define and
   use, with --build-dir: a shared header such as internal.h cannot hide
   one).  In runtime/actor/ the calls follow the layers as well.

Exits 1 and names every violation; 0 when the tree is clean.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODULES = ["runtime/ch", "runtime/kata", "runtime/net", "runtime/rootfs", "runtime/snapshot",
           "k8s", "runtime/util"]
ACTOR = "runtime/actor"
# Bottom (0-2): the request types, the actor model, its files and timings;
# middle (3): the vm, guest, disk and network job layers; top (4): the RPCs.
LAYERS = {
    "types": 0,
    "model": 1,
    "state": 2,
    "timing": 2,
    "vm": 3,
    "guest": 3,
    "disk": 3,
    "netjob": 3,
    "actor": 4,
}
# Known cycles, each to be removed by the change that breaks it (the check
# reports an entry that is no longer needed).  None left.
ALLOWED_CYCLES = {}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def unit(name):
    return os.path.splitext(os.path.basename(name))[0]


def sources(root, mod):
    d = os.path.join(root, mod)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f.endswith((".c", ".h")))


def resolve(root, mod, inc):
    """The module (folder relative to root) an include names, or None for a
    system, generated or api header."""
    for base in (os.path.join(root, mod), os.path.join(root, "runtime"), root):
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(p):
            return os.path.relpath(os.path.dirname(p), root)
    return None


def includes(root, mod, f):
    with open(os.path.join(root, mod, f), encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    for m in INCLUDE_RE.finditer(text):
        yield m.group(1), resolve(root, mod, m.group(1))


def sccs(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def archive_graph(build, mod, srcdir):
    """File -> files it calls, from the module's static libraries; None when
    none is built."""
    d = os.path.join(build, mod)
    if not os.path.isdir(d):
        return None
    archives = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".a")]
    if not archives:
        return None
    defined, used = {}, {}
    for a in archives:
        out = subprocess.run(["nm", "-A", "-P", a], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            m = re.match(r"^.*\[(.+?)\.o\]: (\S+) (\S)", line)
            if not m:
                continue
            member, sym, kind = m.groups()
            if not os.path.isfile(os.path.join(srcdir, member)):
                continue  # a test fixture built from another folder
            if kind == "U":
                used.setdefault(member, set()).add(sym)
            elif kind in "TDBRCVWGS":
                defined[sym] = member
    graph = {}
    for member, syms in used.items():
        graph[member] = {defined[s] for s in syms if s in defined and defined[s] != member}
    return graph


def check(root, build):
    errors = []

    # 1. modules include only themselves and util
    for mod in MODULES:
        for f in sources(root, mod):
            for inc, target in includes(root, mod, f):
                if target is None or target == mod or target == "runtime/util":
                    continue
                errors.append(f"{mod}/{f}: includes \"{inc}\" ({target}/): a module includes "
                              "only its own headers and runtime/util/")

    # the server uses the actor runtime through its API only
    for f in sources(root, "server"):
        for inc, target in includes(root, "server", f):
            if target in (None, "server", "runtime/util", "k8s"):
                continue
            if target == ACTOR and unit(inc) in ("actor", "types"):
                continue
            errors.append(f"server/{f}: includes \"{inc}\" ({target}/): the server includes "
                          "actor/actor.h, runtime/util/ and k8s/ only")

    # 2. the actor layers
    for f in sources(root, ACTOR):
        u = unit(f)
        if u not in LAYERS:
            errors.append(f"{ACTOR}/{f}: not in a layer: add it to LAYERS in "
                          "hack/check-layers.py and to docs/architecture.md")
            continue
        for inc, target in includes(root, ACTOR, f):
            if target == ACTOR:
                v = unit(inc)
                if v != u and LAYERS.get(v, 99) >= LAYERS[u]:
                    errors.append(f"{ACTOR}/{f}: includes \"{inc}\", a header of a peer or a "
                                  f"higher layer ({u}: {LAYERS[u]}, {v}: {LAYERS.get(v)})")
            elif target is not None and not (target.startswith("runtime/")):
                errors.append(f"{ACTOR}/{f}: includes \"{inc}\" ({target}/): the actor "
                              "runtime uses the runtime modules only")

    # 3. cycles inside a module (includes, then calls)
    seen_allowed = {}
    for mod in MODULES + [ACTOR]:
        graph = {}
        for f in sources(root, mod):
            for inc, target in includes(root, mod, f):
                if target == mod:
                    graph.setdefault(f, set()).add(os.path.basename(inc))
        for comp in sccs(graph):
            errors.append(f"{mod}/: include cycle between " + ", ".join(comp))
        if build is None:
            continue
        calls = archive_graph(build, mod, os.path.join(root, mod))
        if calls is None:
            continue
        for comp in sccs(calls):
            allowed = ALLOWED_CYCLES.get(mod, set())
            if set(comp) <= allowed:
                seen_allowed.setdefault(mod, set()).update(comp)
                continue
            errors.append(f"{mod}/: call cycle between " + ", ".join(comp))
        if mod == ACTOR:
            for src, dsts in sorted(calls.items()):
                for dst in sorted(dsts):
                    lu, lv = LAYERS.get(unit(src), 99), LAYERS.get(unit(dst), 99)
                    if lv >= lu:
                        errors.append(f"{ACTOR}/{src}: calls into {dst}, a peer or a higher "
                                      "layer")
    if build is not None:
        for mod, allowed in sorted(ALLOWED_CYCLES.items()):
            stale = allowed - seen_allowed.get(mod, set())
            if stale and os.path.isdir(os.path.join(build, mod)):
                errors.append(f"hack/check-layers.py: ALLOWED_CYCLES[{mod!r}] lists "
                              f"{', '.join(sorted(stale))}, no longer in a cycle: delete them")
    return errors


def self_test():
    """The check must fail on each kind of violation (in a copy of the
    tree, with small archives compiled for the call graph)."""
    src_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failures = 0

    def case(name, files, expect, objects=None):
        nonlocal failures
        with tempfile.TemporaryDirectory() as tmp:
            for mod in MODULES + [ACTOR, "server"]:
                shutil.copytree(os.path.join(src_root, mod), os.path.join(tmp, mod))
            for path, text in files.items():
                with open(os.path.join(tmp, path), "a", encoding="utf-8") as fh:
                    fh.write(text)
            build = None
            if objects:
                build = os.path.join(tmp, "build")
                for mod, members in objects.items():
                    d = os.path.join(build, mod)
                    os.makedirs(d)
                    objs = []
                    for member, code in members.items():
                        c = os.path.join(d, "stub_" + member)
                        with open(c, "w", encoding="utf-8") as fh:
                            fh.write(code)
                        objs.append(os.path.join(d, member + ".o"))
                        subprocess.run(["cc", "-c", "-o", objs[-1], c], check=True)
                    subprocess.run(["ar", "rc", os.path.join(d, "libstub.a")] + objs,
                                   check=True)
            errs = check(tmp, build)
            if any(expect in e for e in errs):
                print(f"self-test {name}: detected")
            else:
                print(f"self-test {name}: NOT detected (expected {expect!r}): {errs}")
                failures += 1

    case("peer include", {f"{ACTOR}/vm.c": '#include "actor/guest.h"\n'}, "peer or a higher")
    case("upward include", {f"{ACTOR}/state.c": '#include "actor/vm.h"\n'}, "peer or a higher")
    case("top include", {f"{ACTOR}/disk.h": '#include "actor/actor.h"\n'}, "peer or a higher")
    case("module include", {"runtime/ch/vmm.c": '#include "kata/agent.h"\n'},
         "only its own headers")
    case("util include", {"runtime/util/fs.c": '#include "net/net.h"\n'}, "only its own headers")
    case("k8s include", {"k8s/admission.c": '#include "rootfs/rootfs.h"\n'},
         "only its own headers")
    case("include cycle", {"runtime/ch/cyc_a.h": '#include "cyc_b.h"\n',
                           "runtime/ch/cyc_b.h": '#include "ch/cyc_a.h"\n'}, "include cycle")
    case("server include", {"server/main.c": '#include "actor/vm.h"\n'}, "the server includes")
    case("unknown actor file", {f"{ACTOR}/extra.c": "int x;\n"}, "not in a layer")
    case("call cycle", {"runtime/ch/cyc_a.c": "\n", "runtime/ch/cyc_b.c": "\n"},
         "call cycle", {"runtime/ch": {
             "cyc_a.c": "void b (void); void a (void) { b (); }\n",
             "cyc_b.c": "void a (void); void b (void) { a (); }\n"}})
    case("peer call", {}, "calls into guest.c", {ACTOR: {
        "vm.c": "void actor_guest_x (void); void actor_vm_x (void) { actor_guest_x (); }\n",
        "guest.c": "void actor_guest_x (void) {}\n"}})
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", help="also check the call graph of the built libraries")
    ap.add_argument("--self-test", action="store_true",
                    help="check that each kind of violation is detected")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    errors = check(root, args.build_dir)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layering violation(s); see docs/architecture.md, \"Layers\"")
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
