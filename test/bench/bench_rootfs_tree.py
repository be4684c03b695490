#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generate a synthetic container rootfs for bench_rootfs.sh: many small
files in a directory tree (like /usr) plus a few large ones, with
incompressible, non-zero content (mkfs skips zero blocks)."""
import argparse
import os
import random
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dir", help="directory to create (must not exist)")
    p.add_argument("--small-files", type=int, default=30000)
    p.add_argument("--small-bytes", type=int, default=200 << 20,
                   help="total bytes of the small files")
    p.add_argument("--large-files", type=int, default=4)
    p.add_argument("--large-bytes", type=int, default=824 << 20,
                   help="total bytes of the large files")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    rng = random.Random(a.seed)
    os.makedirs(a.dir)
    pool = os.urandom(8 << 20)  # content source, sliced at random offsets
    per_dir = 200
    avg = max(1, a.small_bytes // max(1, a.small_files))
    for i in range(a.small_files):
        d = os.path.join(a.dir, "usr", f"d{i // per_dir:04d}")
        if i % per_dir == 0:
            os.makedirs(d)
        size = rng.randint(1, 2 * avg)
        off = rng.randrange(0, len(pool) - size)
        with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
            f.write(pool[off:off + size])
        if i % 1000 == 0:
            os.symlink(f"f{i:06d}", os.path.join(d, f"l{i:06d}"))
    big = os.path.join(a.dir, "opt")
    os.makedirs(big)
    each = a.large_bytes // max(1, a.large_files)
    chunk = 8 << 20
    for k in range(a.large_files):
        with open(os.path.join(big, f"large{k}.bin"), "wb") as f:
            left = each
            while left > 0:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    return 0


if __name__ == "__main__":
    sys.exit(main())
