#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check that the tree explains itself: no file cites a document that is not
in this repository.

Usage: hack/check-citations.py [--root DIR] [--self-test]

Comments, scripts, tests and docs cite docs/ of this repository (see
docs/architecture.md).  Refused, in every tracked file:

  - a section of an outside behaviour document: "spec 6.2", "Spec 12 item 8",
    "spec section 8", "spec §4.11", "§1.3", "Appendix A";
  - the folder beside the checkout that held it: "../shared";
  - its names: "ateom-microvm.md", "protocols-and-anchors";
  - its revision tags used as citations: "[PR]", "[HEAD]", "[MID]",
    "[SEED-FU]".

Other specifications keep their names ("the OCI runtime spec", "the qcow2
specification").  Exits 1 and names every hit; 0 when the tree is clean.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

PATTERNS = [
    ("a section of an outside document",
     re.compile(r"(?<![Rr]untime[ -])(?<!OCI )\bspec(?:ification)?\s*"
                r"(?:sections?\s*)?§?\s*\d+(?:\.\d+)*", re.I)),
    ("a section sign", re.compile(r"§\s*\d")),
    ("an appendix of an outside document", re.compile(r"\bAppendix [A-Z]\b")),
    ("the folder beside the checkout", re.compile(r"\.\./shared\b")),
    ("an outside document by name",
     re.compile(r"ateom-microvm\.md|protocols-and-anchors|build-machine-notes")),
    ("a revision tag as a citation", re.compile(r"\[(?:PR|HEAD|MID|SEED-FU)\]")),
]

SELF = os.path.join("hack", "check-citations.py")


def tracked_files(root):
    """The files git tracks (and the untracked ones it does not ignore), or
    every file outside build directories when root is not a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout
        return sorted(set(p for p in out.decode().split("\0") if p))
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return sorted(files)


def check(root, files):
    hits = []
    for rel in files:
        if rel == SELF:
            continue
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue  # binary, or gone
        for no, line in enumerate(lines, 1):
            for what, rx in PATTERNS:
                m = rx.search(line)
                if m:
                    hits.append(f"{rel}:{no}: cites {what} ({m.group(0).strip()!r}); "
                                "cite or write a docs/ page of this repository instead")
    return hits


def self_test():
    bad = {
        "runtime/a.c": "/* the actor network (spec 6.2) */\n",
        "runtime/b.h": " * Spec 12 item 8: state survives a restart\n",
        "docs/c.md": "Decision (spec §12 item 19): ...\n",
        "test/d.py": "# skipped without ../shared\n",
        "k8s/e.c": "/* the [HEAD] asset set */\n",
        "test/f.c": "/* Spec Appendix A: the bytes */\n",
        "test/g.sh": "# see protocols-and-anchors §1.3\n",
        "docs/h.md": "layouts of spec section 8\n",
    }
    good = {
        "runtime/ok.c": "/* docs/networking.md, \"Per activation\"; the OCI runtime spec 1.0 */\n",
        "runtime/ok2.h": "/* The qcow2 specification's limit; the spec is sent */\n",
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in {**bad, **good}.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as fh:
                fh.write(text)
        hits = check(root, tracked_files(root))
    failed = False
    for rel in bad:
        if not any(h.startswith(rel + ":") for h in hits):
            print(f"self-test: {rel} was not caught", file=sys.stderr)
            failed = True
    for rel in good:
        if any(h.startswith(rel + ":") for h in hits):
            print(f"self-test: {rel} was refused: {hits}", file=sys.stderr)
            failed = True
    if not failed:
        print(f"self-test: {len(bad)} citations caught, {len(good)} clean files passed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    hits = check(args.root, tracked_files(args.root))
    for h in hits:
        print(h)
    if hits:
        print(f"{len(hits)} citation(s) of documents outside the repository", file=sys.stderr)
        return 1
    print("no citations of documents outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
