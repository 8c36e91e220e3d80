package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DecodeFile decodes a PNG, JPEG, PGM or PPM file (chosen by extension).
func DecodeFile(path string) (*Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var im *Image
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		im, err = decodeStd(b, png.Decode)
	case ".jpg", ".jpeg":
		im, err = decodeStd(b, jpeg.Decode)
	case ".pgm", ".ppm", ".pnm":
		im, err = DecodePNM(b, MaxPixels)
	default:
		return nil, fmt.Errorf("%s: unknown image type", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

func decodeStd(b []byte, dec func(io.Reader) (image.Image, error)) (*Image, error) {
	m, err := dec(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return FromImage(m), nil
}

// ErrTooLarge marks an image whose declared size is over the limit a
// decoder was given; nothing was decoded.
var ErrTooLarge = errors.New("image over the pixel limit")

// DecodeBytes decodes a PNG, JPEG, PGM or PPM image, recognized by its
// first bytes. An image declaring more than maxPixels pixels is refused
// from its header, before anything is allocated (ErrTooLarge).
func DecodeBytes(b []byte, maxPixels int) (*Image, error) {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("PNG: %w", err)
		}
		if err := checkPixels("PNG", cfg.Width, cfg.Height, maxPixels); err != nil {
			return nil, err
		}
		im, err := decodeStd(b, png.Decode)
		if err != nil {
			return nil, fmt.Errorf("PNG: %w", err)
		}
		return im, nil
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8}):
		return decodeJPEG(b, maxPixels)
	case len(b) > 2 && b[0] == 'P' && b[1] >= '2' && b[1] <= '6' && b[1] != '4':
		return DecodePNM(b, maxPixels)
	}
	return nil, fmt.Errorf("not a PNG, JPEG, PGM or PPM image")
}

// checkPixels refuses a declared size over maxPixels (or not positive).
func checkPixels(kind string, w, h, maxPixels int) error {
	if w <= 0 || h <= 0 || w > maxPixels || h > maxPixels || w*h > maxPixels {
		return fmt.Errorf("%s of %dx%d is over the %d-pixel limit: %w", kind, w, h, maxPixels, ErrTooLarge)
	}
	return nil
}

// FromImage converts a Go image to 8-bit gray (if it is gray) or RGB.
func FromImage(m image.Image) *Image {
	r := m.Bounds()
	w, h := r.Dx(), r.Dy()
	if g, ok := m.(*image.Gray); ok {
		im := &Image{W: w, H: h, C: 1, Pix: make([]uint8, w*h), Label: -1}
		for y := 0; y < h; y++ {
			copy(im.Pix[y*w:(y+1)*w], g.Pix[y*g.Stride:y*g.Stride+w])
		}
		return im
	}
	im := &Image{W: w, H: h, C: 3, Pix: make([]uint8, w*h*3), Label: -1}
	if yc, ok := m.(*image.YCbCr); ok { // JPEG and MJPEG: skip the per-pixel interface calls
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := yc.YOffset(r.Min.X+x, r.Min.Y+y), yc.COffset(r.Min.X+x, r.Min.Y+y)
				o := (y*w + x) * 3
				im.Pix[o], im.Pix[o+1], im.Pix[o+2] = color.YCbCrToRGB(yc.Y[yi], yc.Cb[ci], yc.Cr[ci])
			}
		}
		return im
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			cr, cg, cb, _ := m.At(r.Min.X+x, r.Min.Y+y).RGBA()
			o := (y*w + x) * 3
			im.Pix[o], im.Pix[o+1], im.Pix[o+2] = uint8(cr>>8), uint8(cg>>8), uint8(cb>>8)
		}
	}
	return im
}

// DecodePNM decodes binary (P5, P6) and plain (P2, P3) PGM and PPM images;
// 16-bit samples are scaled to 8 bits. The declared size must be within
// maxPixels and the body long enough for it before anything is allocated.
func DecodePNM(b []byte, maxPixels int) (*Image, error) {
	body := bytes.NewReader(b)
	r := bufio.NewReader(body)
	magic, err := pnmToken(r)
	if err != nil {
		return nil, fmt.Errorf("pnm: %w", err)
	}
	var c int
	plain := false
	switch magic {
	case "P5":
		c = 1
	case "P6":
		c = 3
	case "P2":
		c, plain = 1, true
	case "P3":
		c, plain = 3, true
	default:
		return nil, fmt.Errorf("pnm: unsupported magic %q", magic)
	}
	var vals [3]int
	for i := range vals {
		tok, err := pnmToken(r)
		if err != nil {
			return nil, fmt.Errorf("pnm: header: %w", err)
		}
		v, err := strconv.Atoi(tok)
		if err != nil || v <= 0 || v > 1<<16 {
			return nil, fmt.Errorf("pnm: bad header value %q", tok)
		}
		vals[i] = v
	}
	w, h, maxv := vals[0], vals[1], vals[2]
	if maxv > 65535 {
		return nil, fmt.Errorf("pnm: implausible maximum %d", maxv)
	}
	if err := checkPixels("pnm", w, h, maxPixels); err != nil {
		return nil, err
	}
	// The smallest body that can hold the samples: 1 or 2 bytes each in
	// binary, a digit and a separator each in plain text.
	need := w * h * c
	if plain || maxv > 255 {
		need *= 2
	}
	if rest := r.Buffered() + body.Len(); plain && rest < need-1 || !plain && rest < need {
		return nil, fmt.Errorf("pnm: header declares %dx%dx%d, the body of %d bytes cannot hold it", w, h, c, rest)
	}
	im := &Image{W: w, H: h, C: c, Pix: make([]uint8, w*h*c), Label: -1}
	scale := func(v int) (uint8, error) {
		if v > maxv {
			return 0, fmt.Errorf("pnm: sample %d above maximum %d", v, maxv)
		}
		return uint8(v * 255 / maxv), nil
	}
	for i := range im.Pix {
		var v int
		switch {
		case plain:
			tok, err := pnmToken(r)
			if err != nil {
				return nil, fmt.Errorf("pnm: truncated after %d of %d samples", i, len(im.Pix))
			}
			if v, err = strconv.Atoi(tok); err != nil {
				return nil, fmt.Errorf("pnm: bad sample %q", tok)
			}
		case maxv < 256:
			x, err := r.ReadByte()
			if err != nil {
				return nil, fmt.Errorf("pnm: truncated after %d of %d samples", i, len(im.Pix))
			}
			v = int(x)
		default:
			hi, err1 := r.ReadByte()
			lo, err2 := r.ReadByte()
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("pnm: truncated after %d of %d samples", i, len(im.Pix))
			}
			v = int(hi)<<8 | int(lo)
		}
		if im.Pix[i], err = scale(v); err != nil {
			return nil, err
		}
	}
	return im, nil
}

// pnmToken reads one whitespace-separated header token, skipping comments.
// After the last header token exactly one whitespace byte is consumed, as
// the format requires before binary data.
func pnmToken(r *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if len(tok) > 0 {
				return string(tok), nil
			}
			return "", fmt.Errorf("unexpected end of file")
		}
		switch {
		case c == '#' && len(tok) == 0:
			if _, err := r.ReadString('\n'); err != nil {
				return "", fmt.Errorf("unexpected end of file")
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			tok = append(tok, c)
			if len(tok) > 32 {
				return "", fmt.Errorf("header token too long")
			}
		}
	}
}

// DirResult is what LoadDir read: the images, and the files it skipped.
type DirResult struct {
	Images  []*Image
	Skipped []error // one per unreadable image file, naming it
}

// imageExt reports whether a file name looks like an image LoadDir reads.
func imageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm":
		return true
	}
	return false
}

// imagePaths lists the image files under dir, recursively, in name order.
func imagePaths(dir string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && imageExt(d.Name()) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	sort.Strings(paths)
	return paths, nil
}

// LoadDir reads every image under dir (recursively, in name order),
// skipping and counting the ones that fail to decode. limit > 0 stops
// after limit images.
func LoadDir(dir string, limit int) (*DirResult, error) {
	paths, err := imagePaths(dir)
	if err != nil {
		return nil, err
	}
	res := &DirResult{}
	for _, p := range paths {
		if limit > 0 && len(res.Images) >= limit {
			break
		}
		im, err := DecodeFile(p)
		if err != nil {
			res.Skipped = append(res.Skipped, err)
			continue
		}
		res.Images = append(res.Images, im)
	}
	if len(res.Images) == 0 {
		return res, fmt.Errorf("capture: no readable images in %s (%d skipped)", dir, len(res.Skipped))
	}
	return res, nil
}
