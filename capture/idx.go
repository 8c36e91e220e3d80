package capture

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// IDX magic numbers: unsigned bytes with 3 dimensions (images) or 1 (labels).
const (
	idxImages = 0x00000803
	idxLabels = 0x00000801
)

// openMaybeGzip opens path and transparently decompresses it when it
// starts with the gzip magic.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	head, err := br.Peek(2)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, errTruncated(err))
	}
	if head[0] != 0x1f || head[1] != 0x8b {
		return br, f.Close, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: corrupt gzip: %w", path, err)
	}
	return zr, func() error { zr.Close(); return f.Close() }, nil
}

// ErrTruncated marks a file that ends before its header says it does.
var ErrTruncated = errors.New("file is truncated")

func errTruncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// openIDX opens an IDX file of unsigned bytes with the given magic, reads
// its header and leaves r at the first data byte.
func openIDX(path string, magic uint32) (r io.Reader, dims []int, total int, closeFn func() error, err error) {
	r, closeFn, err = openMaybeGzip(path)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	fail := func(err error) (io.Reader, []int, int, func() error, error) { closeFn(); return nil, nil, 0, nil, err }
	var m uint32
	if err := binary.Read(r, binary.BigEndian, &m); err != nil {
		return fail(fmt.Errorf("%s: %w", path, errTruncated(err)))
	}
	if m != magic {
		return fail(fmt.Errorf("%s: not an IDX file of the expected kind (magic %#08x, want %#08x)", path, m, magic))
	}
	total = 1
	for i := 0; i < int(m&0xff); i++ {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return fail(fmt.Errorf("%s: header: %w", path, errTruncated(err)))
		}
		if d == 0 || d > 1<<24 {
			return fail(fmt.Errorf("%s: implausible dimension %d", path, d))
		}
		dims = append(dims, int(d))
		total *= int(d)
		if total > 1<<32 {
			return fail(fmt.Errorf("%s: data set too large (%v)", path, dims))
		}
	}
	return r, dims, total, closeFn, nil
}

// readIDX reads an IDX file of unsigned bytes with the given magic and
// returns its dimensions and data.
func readIDX(path string, magic uint32) (dims []int, data []byte, err error) {
	r, dims, total, closeFn, err := openIDX(path, magic)
	if err != nil {
		return nil, nil, err
	}
	defer closeFn()
	data = make([]byte, total)
	if got, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%s: file is truncated: %d of %d data bytes", path, got, total)
		}
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return dims, data, nil
}

// idxPaths finds the images file and (if any) the labels file for a prefix.
func idxPaths(prefix string) (img, lbl string, err error) {
	img, ok := firstExisting(prefix, prefix+"-images-idx3-ubyte", prefix+"-images-idx3-ubyte.gz")
	if !ok {
		return "", "", fmt.Errorf("capture: no IDX images at %s (tried %[1]s, %[1]s-images-idx3-ubyte[.gz])", prefix)
	}
	if lp, ok := firstExisting(prefix+"-labels-idx1-ubyte", prefix+"-labels-idx1-ubyte.gz"); ok && lp != img {
		lbl = lp
	}
	return img, lbl, nil
}

// firstExisting returns the first of the paths that exists.
func firstExisting(paths ...string) (string, bool) {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// LoadIDX loads an IDX image set. prefix is either an images file, or a
// prefix P such that P-images-idx3-ubyte[.gz] exists (Fashion-MNIST's
// naming, e.g. /usr/share/datasets/fashion-mnist/train); labels are read
// from P-labels-idx1-ubyte[.gz] when present. limit > 0 keeps the first
// limit images.
func LoadIDX(prefix string, limit int) ([]*Image, error) {
	imgPath, lp, err := idxPaths(prefix)
	if err != nil {
		return nil, err
	}
	dims, pix, err := readIDX(imgPath, idxImages)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	n, h, w := dims[0], dims[1], dims[2]
	var labels []byte
	if lp != "" {
		ld, l, err := readIDX(lp, idxLabels)
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if ld[0] != n {
			return nil, fmt.Errorf("capture: %s has %d labels for %d images", lp, ld[0], n)
		}
		labels = l
	}
	if limit > 0 && limit < n {
		n = limit
	}
	imgs := make([]*Image, n)
	for i := range imgs {
		im := &Image{W: w, H: h, C: 1, Pix: pix[i*w*h : (i+1)*w*h : (i+1)*w*h], Label: -1}
		if labels != nil {
			im.Label = int(labels[i])
		}
		imgs[i] = im
	}
	return imgs, nil
}
