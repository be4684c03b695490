// SPDX-License-Identifier: Apache-2.0

// Command klauspost-snapshot is an independent Go implementation of the
// snapshot transfer format (docs/snapshot-format.md) on top of
// github.com/klauspost/compress/zstd, the zstd library atelet is built with.
// The interop test uses it to check that atelet-style streams decode with
// ateom-snapshot and that ateom-snapshot's streams decode with klauspost.
//
//	klauspost-snapshot pack  IN OUT   sparse-extent v2, SpeedFastest, all CPUs
//	klauspost-snapshot plain IN OUT   plain zstd, SpeedFastest
//	klauspost-snapshot unpack IN OUT  either format into a file
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

const magic = "ATESPRSE"

func newEncoder(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
}

func le64(w io.Writer, v int64) error {
	return binary.Write(w, binary.LittleEndian, v)
}

// extents returns the data ranges of f, as SEEK_DATA/SEEK_HOLE report them.
func extents(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	for pos := int64(0); pos < size; {
		start, err := unix.Seek(int(f.Fd()), pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		} else if err != nil {
			return nil, err
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]int64{start, end})
		pos = end
	}
	return out, nil
}

func pack(in *os.File, out io.Writer) error {
	st, err := in.Stat()
	if err != nil {
		return err
	}
	hdr := append([]byte(magic), 2, 0, 0, 0)
	if _, err := out.Write(hdr); err != nil {
		return err
	}
	enc, err := newEncoder(out)
	if err != nil {
		return err
	}
	if err := packExtents(in, st.Size(), enc); err != nil {
		enc.Close()
		return err
	}
	// Close exactly once: klauspost 1.15 appends the frame checksum again
	// on a second Close (atelet closes once).
	return enc.Close()
}

func packExtents(in *os.File, size int64, enc io.Writer) error {
	list, err := extents(in, size)
	if err != nil {
		return err
	}
	if err := le64(enc, size); err != nil {
		return err
	}
	for _, e := range list {
		if err := le64(enc, e[0]); err != nil {
			return err
		}
		if err := le64(enc, e[1]-e[0]); err != nil {
			return err
		}
		if _, err := io.Copy(enc, io.NewSectionReader(in, e[0], e[1]-e[0])); err != nil {
			return err
		}
	}
	return le64(enc, -1)
}

func plain(in io.Reader, out io.Writer) error {
	enc, err := newEncoder(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, in); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// atWriter writes sequentially from an offset (io.OffsetWriter needs Go 1.20).
type atWriter struct {
	f   *os.File
	off int64
}

func (w *atWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

func unpackSparse(r io.Reader, out *os.File) error {
	var version uint32
	if err := binary.Read(r, binary.LittleEndian, &version); err != nil {
		return err
	}
	if version != 2 {
		return fmt.Errorf("version %d", version)
	}
	dec, err := zstd.NewReader(r)
	if err != nil {
		return err
	}
	defer dec.Close()
	var size int64
	if err := binary.Read(dec, binary.LittleEndian, &size); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("size %d", size)
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	for {
		var off, n int64
		if err := binary.Read(dec, binary.LittleEndian, &off); err != nil {
			return err
		}
		if off == -1 {
			return nil
		}
		if err := binary.Read(dec, binary.LittleEndian, &n); err != nil {
			return err
		}
		if off < 0 || n < 0 || off > size || n > size-off {
			return fmt.Errorf("extent %d+%d out of range", off, n)
		}
		if _, err := io.CopyN(&atWriter{out, off}, dec, n); err != nil {
			return err
		}
	}
}

func unpack(in io.Reader, out *os.File) error {
	br := bufio.NewReader(in)
	head, _ := br.Peek(len(magic))
	if bytes.Equal(head, []byte(magic)) {
		br.Discard(len(magic))
		return unpackSparse(br, out)
	}
	dec, err := zstd.NewReader(br)
	if err != nil {
		return err
	}
	defer dec.Close()
	_, err = io.Copy(out, dec)
	return err
}

func run(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: klauspost-snapshot pack|plain|unpack IN OUT")
	}
	in, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(args[2])
	if err != nil {
		return err
	}
	switch args[0] {
	case "pack":
		err = pack(in, out)
	case "plain":
		err = plain(in, out)
	case "unpack":
		err = unpack(in, out)
	default:
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "klauspost-snapshot:", err)
		os.Exit(1)
	}
}
