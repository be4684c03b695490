#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerate test/fuzz/corpus/snapshot_decode/ (the committed seed corpus).

Each file starts with the mode byte of fuzz_snapshot_decode.c:
  0 = the rest is an encoded stream, 1 = the rest is a sparse payload (the
  harness compresses it), 2 = the rest is plain content.
The vectors are hand-assembled from the layout of docs/snapshot-format.md;
zstd frames are either assembled by hand (raw blocks) or made with the zstd
CLI.  Deterministic: running it twice gives the same files.

    make_fuzz_corpus.py [OUT_DIR]
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "fuzz", "corpus", "snapshot_decode")
PREFIX = b"ATESPRSE" + struct.pack("<I", 2)


def q(*values):
    return b"".join(struct.pack("<q", v) for v in values)


def raw_frame(content, checksum=False):
    """A zstd frame of one raw block, assembled by hand (content < 256 bytes)."""
    assert len(content) < 256 and not checksum
    return (b"\x28\xb5\x2f\xfd" + bytes([0x20, len(content)])
            + struct.pack("<I", len(content) << 3 | 1)[:3] + content)


def zstd(content, *opts):
    return subprocess.run(["zstd", "-q", "-c", *opts], input=content,
                          stdout=subprocess.PIPE, check=True).stdout


def payload(size, extents, sentinel=True, fill=b"\xee"):
    out = q(size)
    for off, length in extents:
        out += q(off, length) + (fill * length if 0 < length < 4096 else b"")
    return out + (q(-1) if sentinel else b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    simple = q(16, 4, 3) + b"abc" + q(-1)
    vectors = {
        # mode 1: sparse payloads
        "p-simple": b"\x01" + simple,
        "p-empty-file": b"\x01" + payload(0, []),
        "p-all-hole": b"\x01" + payload(1 << 20, []),
        "p-many-extents": b"\x01" + payload(4096, [(i * 64, 32) for i in range(64)]),
        "p-adjacent": b"\x01" + payload(100, [(0, 10), (10, 10), (20, 80)]),
        "p-overlap": b"\x01" + payload(100, [(0, 10), (5, 10)]),
        "p-unsorted": b"\x01" + payload(100, [(50, 10), (0, 10)]),
        "p-empty-extent": b"\x01" + payload(100, [(10, 0)]),
        "p-negative-size": b"\x01" + payload(-1, []),
        "p-out-of-range": b"\x01" + payload(100, [(50, 100)]),
        "p-negative-offset": b"\x01" + payload(100, [(-5, 1)]),
        "p-length-overflow": b"\x01" + q(100, 10, (1 << 63) - 1),
        "p-missing-sentinel": b"\x01" + payload(100, [(0, 10)], sentinel=False),
        "p-short-extent": b"\x01" + q(100, 0, 50) + b"x" * 8,
        "p-trailing-data": b"\x01" + simple + b"tail",
        "p-huge-size": b"\x01" + payload((1 << 62), [((1 << 62) - 4, 4)]),
        "p-short-size": b"\x01" + b"\x10\x00\x00",
        # mode 2: plain content
        "c-text": b"\x02" + b"hello world\n" * 10,
        "c-zero-block-then-data": b"\x02" + bytes(65536) + b"data" + bytes(100),
        "c-empty": b"\x02",
        # mode 0: encoded streams
        "s-raw-frame": b"\x00" + PREFIX + raw_frame(simple),
        "s-two-frames": b"\x00" + PREFIX + raw_frame(simple[:25]) + raw_frame(simple[25:]),
        "s-zstd-cli": b"\x00" + PREFIX + zstd(payload(8192, [(0, 100), (4096, 200)])),
        "s-zstd-cli-checksum": b"\x00" + PREFIX + zstd(simple, "--check"),
        "s-plain-raw-frame": b"\x00" + raw_frame(b"\x00" * 4 + b"abc" + b"\x00" * 9),
        "s-plain-zstd-cli": b"\x00" + zstd(b"plain " * 100),
        "s-skippable-after": b"\x00" + PREFIX + raw_frame(simple)
                             + b"\x50\x2a\x4d\x18\x04\x00\x00\x00abcd",
        "s-garbage-after": b"\x00" + PREFIX + raw_frame(simple) + b"garbage!",
        "s-truncated": b"\x00" + PREFIX + zstd(payload(8192, [(0, 100)]))[:-5],
        "s-magic-only": b"\x00" + b"ATESPRSE",
        "s-version-3": b"\x00" + b"ATESPRSE" + struct.pack("<I", 3) + raw_frame(simple),
        "s-prefix-only": b"\x00" + PREFIX,
        "s-unknown": b"\x00" + b"not a snapshot at all",
        "s-empty": b"\x00",
    }
    for name, blob in vectors.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
    print("%d corpus files in %s" % (len(vectors), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
