// Package capture provides frame sources: V4L2 cameras, replays of IDX
// data sets and directories of images, and a test pattern, with the MJPEG
// and YUYV decoding cameras need. It knows nothing of models.
package capture

import "fmt"

// Image is an 8-bit image, row-major, channels interleaved (1 = gray, 3 = RGB).
type Image struct {
	W, H, C int
	Pix     []uint8
	// Label is the class from a labelled data set, or -1.
	Label int
}

// Validate checks that the pixel buffer matches the dimensions.
func (im *Image) Validate() error {
	if im.W <= 0 || im.H <= 0 || (im.C != 1 && im.C != 3) || len(im.Pix) != im.W*im.H*im.C {
		return fmt.Errorf("capture: bad image %dx%dx%d with %d bytes", im.W, im.H, im.C, len(im.Pix))
	}
	return nil
}

// ToRGB returns the image with three channels (a gray image replicated).
func (im *Image) ToRGB() *Image {
	if im.C == 3 {
		return im
	}
	out := &Image{W: im.W, H: im.H, C: 3, Pix: make([]uint8, im.W*im.H*3), Label: im.Label}
	for i, v := range im.Pix {
		out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
	}
	return out
}
