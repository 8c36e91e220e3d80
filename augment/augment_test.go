package augment_test

import (
	"math"
	"testing"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/model"
)

func testViews(t *testing.T) *augment.Views {
	c, err := config.Load(config.Options{Preset: "edge-small"})
	if err != nil {
		t.Fatal(err)
	}
	return &c.Views
}

func ramp(w, h, c int) *capture.Image {
	im := &capture.Image{W: w, H: h, C: c, Pix: make([]uint8, w*h*c), Label: -1}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < c; k++ {
				im.Pix[(y*w+x)*c+k] = uint8((x*255)/(w-1)) ^ uint8(k*40)
			}
		}
	}
	return im
}

func TestFillIsDeterministicAndInRange(t *testing.T) {
	v := testViews(t)
	imgs := []*capture.Image{ramp(28, 28, 1), ramp(28, 28, 1), ramp(20, 30, 3)}
	a, b, c := v.NewBatch(3), v.NewBatch(3), v.NewBatch(3)
	for _, x := range []struct {
		batch *model.Batch
		seed  uint64
	}{{a, 7}, {b, 7}, {c, 8}} {
		if err := v.Fill(x.batch, imgs, x.seed); err != nil {
			t.Fatal(err)
		}
	}
	same, differs := true, false
	for i := range a.Global {
		same = same && a.Global[i] == b.Global[i]
		differs = differs || a.Global[i] != c.Global[i]
	}
	if !same || !differs {
		t.Fatalf("same seed same views: %v; other seed other views: %v", same, differs)
	}
	lo, hi := float32((0-0.5)/0.25), float32((1-0.5)/0.25)
	for _, d := range [][]float32{a.Global, a.Local} {
		for i, x := range d {
			if x < lo-1e-5 || x > hi+1e-5 || math.IsNaN(float64(x)) {
				t.Fatalf("value %d = %v outside [%v, %v]", i, x, lo, hi)
			}
		}
	}
	if err := v.Fill(a, imgs[:2], 1); err == nil {
		t.Error("a batch filled with the wrong number of images")
	}
	if err := v.Fill(a, []*capture.Image{imgs[0], imgs[1], {W: 2, H: 2, C: 1}}, 1); err == nil {
		t.Error("an image with no pixels was accepted")
	}
}

func TestResizeIdentityAndConstant(t *testing.T) {
	v := testViews(t)
	im := ramp(8, 8, 1)
	out := make([]float32, 3*8*8)
	v.Resize(out, 1, 0, 8, im)
	for i := 0; i < 64; i++ {
		want := (float32(im.Pix[i])/255 - 0.5) / 0.25
		for c := 0; c < 3; c++ {
			if d := out[c*64+i] - want; d > 1e-5 || d < -1e-5 {
				t.Fatalf("identity resize: pixel %d channel %d = %v, want %v", i, c, out[c*64+i], want)
			}
		}
	}
	flat := &capture.Image{W: 28, H: 28, C: 1, Pix: make([]uint8, 28*28)}
	for i := range flat.Pix {
		flat.Pix[i] = 51
	}
	for _, s := range []int{32, 16, 7} {
		out := make([]float32, 3*s*s)
		v.Resize(out, 1, 0, s, flat)
		for i, x := range out {
			if d := x - (0.2-0.5)/0.25; d > 1e-5 || d < -1e-5 {
				t.Fatalf("constant image resized to %d: value %d = %v", s, i, x)
			}
		}
	}
}

func TestFitConvertsSizeAndChannels(t *testing.T) {
	rgb := ramp(40, 30, 3)
	g := augment.Fit(rgb, 28, 1)
	if g.W != 28 || g.H != 28 || g.C != 1 || g.Validate() != nil {
		t.Fatalf("Fit gave %dx%dx%d", g.W, g.H, g.C)
	}
	c := augment.Fit(ramp(28, 28, 1), 28, 3)
	if c.C != 3 || c.Pix[3*5] != c.Pix[3*5+1] {
		t.Fatalf("gray to RGB did not replicate")
	}
	same := ramp(28, 28, 1)
	if augment.Fit(same, 28, 1) != same {
		t.Error("Fit copied an image that already fits")
	}
}
