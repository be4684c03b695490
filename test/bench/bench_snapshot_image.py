#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write a sparse guest-memory-like image for bench_snapshot.sh.

    bench_snapshot_image.py PATH [--size BYTES] [--populated FRACTION] [--seed N]

Data extents of random length (4 KiB..2 MiB, 4 KiB aligned) are spread with
random gaps (holes) over the file until FRACTION of it is populated.  Each
extent holds a mix like resident guest memory: zeroed pages, text, small
integers/pointers (structured), and random bytes (already compressed or
encrypted data).  Deterministic for a given seed.
"""
import argparse
import os
import random

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PAGE = 4 * KiB

WORDS = ("the of and to in is was for on that with as by at from kernel memory page "
         "process thread socket buffer request response error status container "
         "snapshot restore checkpoint actor worker network device virtio vsock "
         "agent json value key name id time level info debug warn").split()


def text_pool(rng, size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        line = '{"ts":%d,"msg":"%s","n":%d}\n' % (rng.randint(1, 1 << 40), line,
                                                  rng.randint(0, 99999))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def structured(rng, n):
    # Arrays of small counters and pointer-like 64-bit values.
    words = []
    base = 0xFFFF888000000000 + rng.randrange(1 << 30) * PAGE
    for _ in range(n // 8):
        r = rng.random()
        if r < 0.5:
            words.append(rng.randrange(256))
        elif r < 0.8:
            words.append(base + rng.randrange(1 << 20) * 64)
        else:
            words.append(0)
    return b"".join(w.to_bytes(8, "little") for w in words)


def extent_content(rng, n, pool, struct_pool):
    """n bytes made of page-sized runs of the four kinds."""
    parts = []
    left = n
    while left > 0:
        run = min(left, PAGE * rng.randint(1, 64))
        kind = rng.random()
        if kind < 0.30:
            parts.append(bytes(run))
        elif kind < 0.60:
            off = rng.randrange(len(pool) - run)
            parts.append(pool[off:off + run])
        elif kind < 0.85:
            off = rng.randrange(len(struct_pool) - run) // 8 * 8
            parts.append(struct_pool[off:off + run])
        else:
            parts.append(rng.randbytes(run))
        left -= run
    return b"".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--size", type=int, default=2 * GiB)
    ap.add_argument("--populated", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    target = int(args.size * args.populated)
    lengths = []
    while sum(lengths) < target:
        lengths.append(rng.randint(1, 2 * MiB // PAGE) * PAGE)
    # Spread the extents: random (page-aligned, non-empty) gaps between them.
    free_pages = (args.size - sum(lengths)) // PAGE - len(lengths)
    cuts = sorted(rng.randrange(max(free_pages, 1)) for _ in range(len(lengths)))
    pool = text_pool(rng, 4 * MiB)
    struct_pool = structured(rng, 4 * MiB)
    with open(args.path, "wb") as f:
        f.truncate(args.size)
        pos, prev = 0, 0
        for length, cut in zip(lengths, cuts):
            pos += (cut - prev + 1) * PAGE
            prev = cut
            os.pwrite(f.fileno(), extent_content(rng, length, pool, struct_pool), pos)
            pos += length
        assert pos <= args.size
    print("%s: %d bytes, %d extents, %d populated (%.1f%%)"
          % (args.path, args.size, len(lengths), sum(lengths),
             100.0 * sum(lengths) / args.size))


if __name__ == "__main__":
    main()
