#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests of the ateom-snapshot CLI.

Runs the built binary on sparse files in a temporary directory: pack, unpack
and inspect through files and pipes, exit statuses and messages, refusal to
overwrite, interop with the zstd CLI in both directions, interruption
cleanup and the terminal progress line.

    test_cli.py [BUILD_DIR]      (default: $ATE_BUILD_DIR)
"""
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ATE_BUILD_DIR", "build")
BIN = os.path.join(BUILD, "bin", "ateom-snapshot")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def make_sparse(path, size, regions):
    """regions: (offset, length, fill byte or None for random bytes)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, length, fill in regions:
            data = os.urandom(length) if fill is None else bytes([fill]) * length
            os.pwrite(f.fileno(), data, off)


def data_map(path):
    """[(start, end)] of data extents as SEEK_DATA/SEEK_HOLE report them."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            pos = end
    finally:
        os.close(fd)
    return out


def same_content(a, b):
    """Compare two possibly huge sparse files by reading only data extents."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in data_map(a) + data_map(b):
            fa.seek(start)
            fb.seek(start)
            while start < end:
                n = min(end - start, 4 * MiB)
                if fa.read(n) != fb.read(n):
                    return False
                start += n
    return True


def run(*args, stdin=None, input_bytes=None, stdout=subprocess.PIPE, timeout=60):
    return subprocess.run([BIN, *args], stdin=stdin, input=input_bytes, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=timeout, check=False)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ate-snapshot-cli-", dir="/var/tmp")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def p(self, name):
        return os.path.join(self.dir, name)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))

    def assert_fails(self, r, message, status=1):
        self.assertEqual(r.returncode, status, r.stderr)
        self.assertIn(message, r.stderr.decode(errors="replace"))

    def assert_only(self, *names):
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(names))

    def sample(self, name="src", size=40 * MiB):
        make_sparse(self.p(name), size,
                    [(0, 4096, 0x11), (3 * MiB, 70000, None), (20 * MiB, 2 * MiB, None),
                     (size - 100, 100, 0x7F)])
        return self.p(name)

    # ---- usage ----
    def test_usage(self):
        r = run("--help")
        self.assert_ok(r)
        for word in (b"pack", b"unpack", b"inspect", b"--level", b"--threads", b"Exit status"):
            self.assertIn(word, r.stdout)
        self.assert_ok(run("pack", "--help"))
        self.assert_ok(run("--version"))
        self.assert_fails(run(), "missing command", 2)
        self.assert_fails(run("frobnicate"), "unknown command", 2)
        self.assert_fails(run("pack", "a"), "expected INPUT and OUTPUT", 2)
        self.assert_fails(run("inspect"), "expected one INPUT", 2)
        self.assert_fails(run("pack", "--bogus", "a", "b"), "unknown option", 2)
        self.assert_fails(run("pack", "--level", "x", "a", "b"), "invalid level", 2)
        self.assert_fails(run("pack", "--threads", "999", "a", "b"), "invalid thread count", 2)
        self.assert_fails(run("pack", "--format", "zip", "a", "b"), "invalid format", 2)
        self.assert_fails(run("unpack", "--level", "3", "a", "b"), "does not apply", 2)
        self.assert_fails(run("unpack", "--max-size", "12Q", "a", "b"), "invalid size", 2)
        self.assert_fails(run("inspect", "--force", "a"), "does not apply", 2)
        self.assert_fails(run("pack", "--level"), "needs a value", 2)

    # ---- round trips ----
    def test_pack_unpack_inspect_files(self):
        src = self.sample()
        self.assert_ok(run("pack", src, self.p("snap")))
        self.assertEqual(run("pack", src, self.p("snap")).returncode, 1)  # exists
        r = run("inspect", "--json", self.p("snap"))
        self.assert_ok(r)
        info = json.loads(r.stdout)
        want_bytes = sum(e - s for s, e in data_map(src))
        self.assertEqual(info["format"], "sparse-v2")
        self.assertEqual(info["logical_size"], 40 * MiB)
        self.assertEqual(info["populated_bytes"], want_bytes)
        self.assertEqual(info["extent_count"], len(data_map(src)))
        self.assertEqual(info["compressed_bytes"], os.path.getsize(self.p("snap")))
        self.assertGreater(info["ratio"], 0.9)
        r = run("inspect", self.p("snap"))
        self.assert_ok(r)
        for line in (b"format:", b"logical size:     41943040", b"populated bytes:",
                     b"extents:", b"compressed size:", b"ratio:"):
            self.assertIn(line, r.stdout)
        self.assert_ok(run("unpack", self.p("snap"), self.p("out")))
        self.assertTrue(same_content(src, self.p("out")))
        self.assertEqual(data_map(src), data_map(self.p("out")))
        self.assertEqual(os.stat(self.p("out")).st_mode & 0o777, 0o600)
        self.assertEqual(r.stderr, b"")  # no progress or summary off a terminal

    def test_levels_and_threads(self):
        src = self.sample(size=8 * MiB)
        for i, opts in enumerate((["--level", "3"], ["-l", "19", "-T", "1"], ["--level=-5"],
                                  ["--threads", "0"], ["--format", "sparse"])):
            out = self.p("snap%d" % i)
            self.assert_ok(run("pack", *opts, src, out))
            self.assert_ok(run("unpack", out, self.p("out%d" % i)))
            self.assertTrue(same_content(src, self.p("out%d" % i)), opts)

    def test_stdin_stdout(self):
        src = self.sample()
        # stdin redirected from a file is still a regular file: sparse.
        with open(src, "rb") as f:
            r = run("pack", "-", "-", stdin=f)
        self.assert_ok(r)
        self.assertEqual(r.stdout[:12], b"ATESPRSE\x02\x00\x00\x00")
        # unpack from a pipe into a file, and from a file to stdout.
        self.assert_ok(run("unpack", "-", self.p("out"), input_bytes=r.stdout))
        self.assertTrue(same_content(src, self.p("out")))
        with open(self.p("snap"), "wb") as f:
            f.write(r.stdout)
        with open(self.p("dense"), "wb") as f:
            self.assert_ok(run("unpack", self.p("snap"), "-", stdout=f))
        self.assertTrue(same_content(src, self.p("dense")))
        # A pipe on stdin has no size up front: plain zstd, like atelet.
        cat = subprocess.Popen(["cat", src], stdout=subprocess.PIPE)
        r = run("pack", "-", self.p("plain"), stdin=cat.stdout)
        cat.stdout.close()
        self.assertEqual(cat.wait(), 0)
        self.assert_ok(r)
        info = json.loads(run("inspect", "--json", self.p("plain")).stdout)
        self.assertEqual(info["format"], "plain-zstd")
        self.assert_ok(run("unpack", self.p("plain"), self.p("out2")))
        self.assertTrue(same_content(src, self.p("out2")))
        # inspect reads stdin too.
        with open(self.p("snap"), "rb") as f:
            self.assert_ok(run("inspect", "-", stdin=f))

    def test_force_and_existing_outputs(self):
        src = self.sample(size=MiB)
        self.assert_ok(run("pack", src, self.p("snap")))
        with open(self.p("out"), "w") as f:
            f.write("precious")
        self.assert_fails(run("unpack", self.p("snap"), self.p("out")), "use --force")
        with open(self.p("out")) as f:
            self.assertEqual(f.read(), "precious")
        self.assert_ok(run("unpack", "-f", self.p("snap"), self.p("out")))
        self.assertTrue(same_content(src, self.p("out")))
        self.assert_ok(run("pack", "--force", src, self.p("snap")))
        self.assert_fails(run("unpack", self.p("snap"), self.dir + "/"), "exists")
        self.assert_fails(run("pack", self.p("missing"), self.p("x")), "No such file")
        self.assert_only("src", "snap", "out")

    def test_malformed_leaves_nothing(self):
        src = self.sample()
        self.assert_ok(run("pack", src, self.p("snap")))
        with open(self.p("snap"), "rb") as f:
            data = f.read()
        cases = {
            "truncated": (data[: len(data) // 2], "truncated stream"),
            "garbage": (data + b"trailing", "trailing garbage"),
            "version": (data[:8] + b"\x03\x00\x00\x00" + data[12:], "format version 3"),
            "magic": (b"XTESPRSE" + data[8:], "unknown format"),
        }
        for name, (blob, message) in cases.items():
            with self.subTest(name):
                with open(self.p("bad"), "wb") as f:
                    f.write(blob)
                self.assert_fails(run("unpack", self.p("bad"), self.p("out")), message)
                self.assert_fails(run("inspect", self.p("bad")), message)
                self.assert_fails(run("unpack", "-", self.p("out"), input_bytes=blob), message)
                self.assert_only("src", "snap", "bad")
        # Empty input is an empty plain stream (klauspost writes nothing for
        # empty content), not an error.
        self.assert_ok(run("unpack", "-", self.p("empty"), input_bytes=b""))
        self.assertEqual(os.path.getsize(self.p("empty")), 0)
        os.unlink(self.p("empty"))
        r = run("unpack", "--max-size", "1M", self.p("snap"), self.p("out"))
        self.assert_fails(r, "exceeds the limit of 1048576 bytes")
        self.assert_ok(run("unpack", "--max-size", "40M", self.p("snap"), self.p("out")))

    # ---- interop with the zstd CLI ----
    def test_zstd_cli_interop(self):
        if shutil.which("zstd") is None:
            self.skipTest("zstd CLI not installed")
        src = self.sample()
        self.assert_ok(run("pack", src, self.p("snap")))
        with open(self.p("snap"), "rb") as f:
            f.seek(12)
            inner = subprocess.run(["zstd", "-d", "-c"], stdin=f, stdout=subprocess.PIPE,
                                   check=True).stdout
        self.assertEqual(struct.unpack("<q", inner[:8])[0], 40 * MiB)
        self.assertEqual(struct.unpack("<q", inner[-8:])[0], -1)
        off, length = struct.unpack("<qq", inner[8:24])
        self.assertEqual((off, length), data_map(src)[0])
        self.assertEqual(off + length, data_map(src)[0][1])
        # zstd-compressed plain streams (single- and multi-threaded, several
        # frames) decode through the fallback; our plain output decodes with zstd.
        for i, opts in enumerate((["-1"], ["-3", "-T2"], ["-19", "--long=27"])):
            out = self.p("z%d" % i)
            subprocess.run(["zstd", "-q", *opts, src, "-o", out], check=True)
            self.assert_ok(run("unpack", out, self.p("u%d" % i)))
            self.assertTrue(same_content(src, self.p("u%d" % i)), opts)
        with open(self.p("twoframes"), "wb") as f:
            for part in (b"hello ", b"world"):
                f.write(subprocess.run(["zstd", "-q", "-c"], input=part, stdout=subprocess.PIPE,
                                       check=True).stdout)
        r = run("unpack", self.p("twoframes"), "-")
        self.assert_ok(r)
        self.assertEqual(r.stdout, b"hello world")
        self.assert_ok(run("pack", "--format", "plain", src, self.p("ours.zst")))
        subprocess.run(["zstd", "-q", "-d", self.p("ours.zst"), "-o", self.p("fromzstd")],
                       check=True)
        self.assertTrue(same_content(src, self.p("fromzstd")))

    # ---- signals and terminals ----
    def test_interrupt_removes_temporary(self):
        rfd, wfd = os.pipe()
        with open(self.sample(size=MiB), "rb") as f:
            head = subprocess.run([BIN, "pack", "-", "-"], stdin=f, stdout=subprocess.PIPE,
                                  check=True).stdout
        proc = subprocess.Popen([BIN, "unpack", "-", self.p("out")], stdin=rfd,
                                stderr=subprocess.PIPE)
        os.close(rfd)
        os.write(wfd, head[:100])  # a valid start, then the writer stalls
        deadline = time.monotonic() + 10
        while not any(n.startswith(".out.tmp-") for n in os.listdir(self.dir)):
            self.assertLess(time.monotonic(), deadline, "no temporary file appeared")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        os.close(wfd)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"interrupted", err)
        self.assert_only("src")

    def run_on_pty(self, args, want_stdout_tty=False):
        """Run with stderr (and optionally stdout) on a pseudo-terminal."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL, stderr=slave,
                                    stdout=slave if want_stdout_tty else subprocess.DEVNULL)
            os.close(slave)
            seen = b""
            while True:
                ready, _, _ = select.select([master], [], [], 30)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            return proc.wait(timeout=30), seen
        finally:
            os.close(master)

    def test_progress_on_terminal(self):
        src = self.sample(size=200 * MiB)
        rc, seen = self.run_on_pty(["pack", src, self.p("snap")])
        self.assertEqual(rc, 0, seen)
        self.assertIn(b"packing", seen)
        self.assertIn(b"packed", seen)  # the summary line
        rc, seen = self.run_on_pty(["unpack", "--no-progress", self.p("snap"), self.p("out")])
        self.assertEqual(rc, 0, seen)
        self.assertNotIn(b"unpacking ", seen)
        self.assertIn(b"unpacked", seen)
        rc, seen = self.run_on_pty(["pack", src, "-"], want_stdout_tty=True)
        self.assertEqual(rc, 1)
        self.assertIn(b"refusing to write binary data to a terminal", seen)


if __name__ == "__main__":
    if not os.access(BIN, os.X_OK):
        print("ateom-snapshot not built at %s" % BIN, file=sys.stderr)
        sys.exit(1)
    unittest.main(argv=[sys.argv[0], "-v"])
