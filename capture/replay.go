package capture

import (
	"errors"
	"fmt"
	"io"
)

// Replays stream recorded frames from disk one at a time and loop, so a
// replay of a large set costs one frame of memory, not the whole set.

// idxReplay streams an IDX image set (and its labels, if any), keeping
// only the labels in keep when that is set.
type idxReplay struct {
	imgPath, lblPath string
	img, lbl         io.Reader
	closers          []func() error
	w, h, n, i       int
	keep             map[int]bool
	kept             int // images kept in this pass
}

func newIDXReplay(spec string) (*idxReplay, error) {
	prefix, keep, err := parseIDXSpec(spec)
	if err != nil {
		return nil, err
	}
	img, lbl, err := idxPaths(prefix)
	if err != nil {
		return nil, err
	}
	if keep != nil && lbl == "" {
		return nil, fmt.Errorf("capture: idx:%s: labels= needs the set's labels file", spec)
	}
	r := &idxReplay{imgPath: img, lblPath: lbl, keep: keep}
	if err := r.open(); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	return r, nil
}

func (r *idxReplay) close() {
	for _, c := range r.closers {
		c()
	}
	r.closers, r.img, r.lbl = nil, nil, nil
}

func (r *idxReplay) open() error {
	r.close()
	img, dims, _, c, err := openIDX(r.imgPath, idxImages)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, c)
	r.img, r.n, r.h, r.w, r.i = img, dims[0], dims[1], dims[2], 0
	if r.lblPath != "" {
		lbl, ld, _, c, err := openIDX(r.lblPath, idxLabels)
		if err != nil {
			r.close()
			return err
		}
		r.closers = append(r.closers, c)
		if ld[0] != r.n {
			r.close()
			return fmt.Errorf("%s has %d labels for %d images", r.lblPath, ld[0], r.n)
		}
		r.lbl = lbl
	}
	return nil
}

func (r *idxReplay) next() (*Image, error) {
	for {
		im, err := r.read()
		if err != nil || r.keep == nil || r.keep[im.Label] {
			if err == nil {
				r.kept++
			}
			return im, err
		}
		if r.i == r.n && r.kept == 0 {
			return nil, fmt.Errorf("%s: no image has the labels asked for", r.lblPath)
		}
	}
}

func (r *idxReplay) read() (*Image, error) {
	if r.img == nil || r.i == r.n {
		if err := r.open(); err != nil {
			return nil, err
		}
		r.kept = 0
	}
	im := &Image{W: r.w, H: r.h, C: 1, Pix: make([]uint8, r.w*r.h), Label: -1}
	if _, err := io.ReadFull(r.img, im.Pix); err != nil {
		r.close()
		err = fmt.Errorf("%s: image %d of %d: %w", r.imgPath, r.i, r.n, errTruncated(err))
		if errors.Is(err, ErrTruncated) { // counted as corrupt, and the replay starts over
			err = fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, err
	}
	if r.lbl != nil {
		var l [1]byte
		if _, err := io.ReadFull(r.lbl, l[:]); err != nil {
			r.close()
			return nil, fmt.Errorf("%s: label %d: %w", r.lblPath, r.i, errTruncated(err))
		}
		im.Label = int(l[0])
	}
	r.i++
	return im, nil
}

// dirReplay decodes the images of a directory one by one, in name order.
type dirReplay struct {
	paths []string
	i     int
}

func newDirReplay(dir string) (*dirReplay, error) {
	paths, err := imagePaths(dir)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("capture: no images (png, jpg, pgm, ppm) under %s", dir)
	}
	return &dirReplay{paths: paths}, nil
}

func (r *dirReplay) next() (*Image, error) {
	p := r.paths[r.i%len(r.paths)]
	r.i++
	im, err := DecodeFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	return im, nil
}
