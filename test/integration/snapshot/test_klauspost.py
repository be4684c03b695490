#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Interop with klauspost/compress, the zstd library atelet is built with.

Builds klauspost/main.go (an independent Go implementation of the format on
klauspost's encoder and decoder, SpeedFastest and all CPUs like atelet) and
checks, over the layouts of docs/snapshot-format.md, that:
  - streams written the atelet way decode with ateom-snapshot, and
  - streams written by ateom-snapshot decode with klauspost,
for the sparse-extent format and for plain zstd.

Exits 77 (skipped) when Go or Debian's golang-github-klauspost-compress-dev
is not installed.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli import BIN, BUILD, GiB, KiB, MiB, data_map, make_sparse, same_content  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOPATH = "/usr/share/gocode"

LAYOUTS = {
    "empty": (0, []),
    "all-hole": (4 * MiB, []),
    "all-data": (256 * KiB, [(0, 256 * KiB, 0xAB)]),
    "leading-hole": (2 * MiB, [(1 * MiB, 64 * KiB, None)]),
    "trailing-hole": (2 * MiB, [(0, 64 * KiB, 0x22)]),
    "multi-extent": (40 * MiB, [(0, 4096, 0x44), (2 * MiB, 100000, None),
                                (5 * MiB, 8 * MiB, None), (40 * MiB - 10, 10, 1)]),
    "beyond-4gib": (5 * GiB + 4097, [(4 * GiB - 8 * KiB, 16 * KiB, None),
                                     (5 * GiB, 4097, 0x5A)]),
}


def build_helper(out_dir):
    go = shutil.which("go")
    if go is None or not os.path.isdir(
            os.path.join(GOPATH, "src/github.com/klauspost/compress/zstd")):
        print("SKIP: needs go and golang-github-klauspost-compress-dev")
        sys.exit(77)
    env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="",
               GOCACHE=os.path.join(out_dir, "gocache"))
    exe = os.path.join(out_dir, "klauspost-snapshot")
    subprocess.run([go, "build", "-o", exe, "."], cwd=os.path.join(HERE, "klauspost"),
                   env=env, check=True)
    return exe


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def main():
    out_dir = os.path.join(BUILD, "snapshot-klauspost")
    os.makedirs(out_dir, exist_ok=True)
    ks = build_helper(out_dir)
    tmp = tempfile.mkdtemp(prefix="ate-snapshot-ks-", dir="/var/tmp")
    passed = 0
    try:
        for name, (size, regions) in LAYOUTS.items():
            src = os.path.join(tmp, name)
            make_sparse(src, size, regions)

            def p(suffix, src=src):
                return src + "." + suffix

            # atelet-style writer -> our reader (sparse and plain).
            subprocess.run([ks, "pack", src, p("ks")], check=True)
            subprocess.run([BIN, "unpack", p("ks"), p("ours-from-ks")], check=True)
            check(same_content(src, p("ours-from-ks")), name + ": klauspost pack -> unpack")
            check(data_map(src) == data_map(p("ours-from-ks")), name + ": holes recreated")
            if size <= 64 * MiB:  # klauspost's plain writer reads every hole
                subprocess.run([ks, "plain", src, p("ksplain")], check=True)
                subprocess.run([BIN, "unpack", p("ksplain"), p("ours-from-ksplain")], check=True)
                check(same_content(src, p("ours-from-ksplain")), name + ": klauspost plain")
            # our writer -> klauspost reader.
            subprocess.run([BIN, "pack", src, p("ours")], check=True)
            subprocess.run([ks, "unpack", p("ours"), p("ks-from-ours")], check=True)
            check(same_content(src, p("ks-from-ours")), name + ": pack -> klauspost unpack")
            if size <= 64 * MiB:  # klauspost writes plain output densely
                subprocess.run([BIN, "pack", "--format", "plain", src, p("oursplain")], check=True)
                subprocess.run([ks, "unpack", p("oursplain"), p("ks-from-oursplain")], check=True)
                check(same_content(src, p("ks-from-oursplain")), name + ": plain -> klauspost")
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            print("ok: %s" % name)
            passed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, 0 failed" % passed)


if __name__ == "__main__":
    main()
