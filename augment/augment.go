// Package augment builds SwAV's multi-crop views: random resized crops,
// flips and colour distortions of each image, written straight into the
// channel-major batches the model takes.
package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/model"
)

// Crops is one resolution group of views.
type Crops struct {
	Count    int     `mapstructure:"count"`
	Size     int     `mapstructure:"size"`
	ScaleMin float64 `mapstructure:"scale_min"`
	ScaleMax float64 `mapstructure:"scale_max"`
}

// Views configures the augmentation.
type Views struct {
	Global   Crops   `mapstructure:"global"`
	Local    Crops   `mapstructure:"local"`
	RatioMin float64 `mapstructure:"ratio_min"`
	RatioMax float64 `mapstructure:"ratio_max"`
	FlipP    float64 `mapstructure:"flip_p"`
	// With probability JitterP, brightness, contrast, saturation and hue
	// are jittered in random order: factors uniform in [1-x, 1+x], hue
	// shift uniform in [-Hue, Hue] (fraction of a turn).
	JitterP    float64    `mapstructure:"jitter_p"`
	Brightness float64    `mapstructure:"brightness"`
	Contrast   float64    `mapstructure:"contrast"`
	Saturation float64    `mapstructure:"saturation"`
	Hue        float64    `mapstructure:"hue"`
	GrayscaleP float64    `mapstructure:"grayscale_p"`
	BlurP      float64    `mapstructure:"blur_p"`
	BlurSigma  [2]float64 `mapstructure:"blur_sigma"`
	// Mean and Std normalize each of the 3 output channels after [0,1] scaling.
	Mean [3]float64 `mapstructure:"mean"`
	Std  [3]float64 `mapstructure:"std"`
}

// channels is the number of channels every view has.
const channels = 3

// NewBatch returns an empty batch shaped for b samples.
func (v *Views) NewBatch(b int) *model.Batch {
	return &model.Batch{
		B:       b,
		NGlobal: v.Global.Count, NLocal: v.Local.Count,
		GlobalSize: v.Global.Size, LocalSize: v.Local.Size,
		Global: make([]float32, channels*v.Global.Count*b*v.Global.Size*v.Global.Size),
		Local:  make([]float32, channels*v.Local.Count*b*v.Local.Size*v.Local.Size),
	}
}

// Fill writes the views of imgs into batch (made by NewBatch(len(imgs))).
// The result depends only on seed and the images, not on scheduling: each
// sample draws from its own generator.
func (v *Views) Fill(batch *model.Batch, imgs []*capture.Image, seed uint64) error {
	if len(imgs) != batch.B {
		return fmt.Errorf("augment: %d images for a batch of %d", len(imgs), batch.B)
	}
	for _, im := range imgs {
		if err := im.Validate(); err != nil {
			return err
		}
	}
	forEach(len(imgs), func(b int) {
		rng := rand.New(rand.NewPCG(seed, uint64(b)))
		p := newPlanes(imgs[b])
		for c := 0; c < v.Global.Count; c++ {
			v.view(batch.Global, batch.B*v.Global.Count, c*batch.B+b, v.Global, p, rng)
		}
		for c := 0; c < v.Local.Count; c++ {
			v.view(batch.Local, batch.B*v.Local.Count, c*batch.B+b, v.Local, p, rng)
		}
	})
	return nil
}

// forEach runs fn(i) for i in [0,n) on all cores.
func forEach(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// planes is an image as float planes in [0,1].
type planes struct {
	w, h, c int
	p       [][]float32
}

func newPlanes(im *capture.Image) planes {
	p := planes{w: im.W, h: im.H, c: im.C, p: make([][]float32, im.C)}
	for c := range p.p {
		pl := make([]float32, im.W*im.H)
		for i := range pl {
			pl[i] = float32(im.Pix[i*im.C+c]) / 255
		}
		p.p[c] = pl
	}
	return p
}

// box picks a random crop of the image as torchvision's
// RandomResizedCrop.get_params does: ten tries at a random area and aspect
// ratio, then a centre crop of clamped ratio.
func (v *Views) box(w, h int, scale [2]float64, rng *rand.Rand) (x, y, cw, ch int) {
	area := float64(w * h)
	lr0, lr1 := math.Log(v.RatioMin), math.Log(v.RatioMax)
	for try := 0; try < 10; try++ {
		target := area * (scale[0] + rng.Float64()*(scale[1]-scale[0]))
		ratio := math.Exp(lr0 + rng.Float64()*(lr1-lr0))
		cw = int(math.Round(math.Sqrt(target * ratio)))
		ch = int(math.Round(math.Sqrt(target / ratio)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			return rng.IntN(w - cw + 1), rng.IntN(h - ch + 1), cw, ch
		}
	}
	ratio := float64(w) / float64(h)
	switch {
	case ratio < v.RatioMin:
		cw, ch = w, int(math.Round(float64(w)/v.RatioMin))
	case ratio > v.RatioMax:
		ch, cw = h, int(math.Round(float64(h)*v.RatioMax))
	default:
		cw, ch = w, h
	}
	return (w - cw) / 2, (h - ch) / 2, cw, ch
}

// view writes one augmented view as image n of a [3, N, s, s] batch.
func (v *Views) view(dst []float32, N, n int, cr Crops, src planes, rng *rand.Rand) {
	s := cr.Size
	x, y, cw, ch := v.box(src.w, src.h, [2]float64{cr.ScaleMin, cr.ScaleMax}, rng)
	flip := rng.Float64() < v.FlipP
	cols := filterTaps(s, float64(x), float64(cw), src.w, flip)
	rows := filterTaps(s, float64(y), float64(ch), src.h, false)
	out := make([][]float32, src.c)
	tmp := make([]float32, src.h*s)
	for c := range out {
		out[c] = make([]float32, s*s)
		resample(out[c], src.p[c], src.w, cols, rows, tmp)
	}
	if rng.Float64() < v.JitterP {
		v.jitter(out, rng)
	}
	if src.c == 3 && rng.Float64() < v.GrayscaleP {
		g := gray(out)
		out = [][]float32{g, g, g}
	}
	if v.BlurP > 0 && rng.Float64() < v.BlurP {
		sigma := v.BlurSigma[0] + rng.Float64()*(v.BlurSigma[1]-v.BlurSigma[0])
		for c := range out {
			gaussianBlur(out[c], s, s, sigma)
		}
	}
	writeNormalized(dst, N, n, s, out, v.Mean, v.Std)
}

// writeNormalized stores planes (1 or 3) as image n of a [3, N, s, s]
// batch, replicating gray to 3 channels and normalizing.
func writeNormalized(dst []float32, N, n, s int, pl [][]float32, mean, std [3]float64) {
	for c := 0; c < channels; c++ {
		src := pl[min(c, len(pl)-1)]
		out := dst[(c*N+n)*s*s : (c*N+n+1)*s*s]
		m, inv := float32(mean[c]), float32(1/std[c])
		for i, val := range src {
			out[i] = (val - m) * inv
		}
	}
}

// Resize writes img resized to s x s (bilinear, no augmentation),
// normalized, as image n of a [3, N, s, s] batch: the evaluation and
// inference view.
func (v *Views) Resize(dst []float32, N, n, s int, img *capture.Image) {
	p := newPlanes(img)
	cols := filterTaps(s, 0, float64(p.w), p.w, false)
	rows := filterTaps(s, 0, float64(p.h), p.h, false)
	out := make([][]float32, p.c)
	tmp := make([]float32, p.h*s)
	for c := range out {
		out[c] = make([]float32, s*s)
		resample(out[c], p.p[c], p.w, cols, rows, tmp)
	}
	writeNormalized(dst, N, n, s, out, v.Mean, v.Std)
}

// Fit returns img at size x size with the given channel count (1 or 3),
// resized with the antialiased filter and converted gray<->RGB as needed;
// img itself when it already fits. Sources are brought to the working
// resolution once, so augmentation never works on full camera frames.
func Fit(img *capture.Image, size, ch int) *capture.Image {
	if img.W == size && img.H == size && img.C == ch {
		return img
	}
	p := newPlanes(img)
	cols := filterTaps(size, 0, float64(p.w), p.w, false)
	rows := filterTaps(size, 0, float64(p.h), p.h, false)
	tmp := make([]float32, p.h*size)
	out := make([][]float32, p.c)
	for c := range out {
		out[c] = make([]float32, size*size)
		resample(out[c], p.p[c], p.w, cols, rows, tmp)
	}
	if ch == 1 && len(out) == 3 {
		out = [][]float32{gray(out)}
	}
	res := &capture.Image{W: size, H: size, C: ch, Pix: make([]uint8, size*size*ch), Label: img.Label}
	for i := 0; i < size*size; i++ {
		for c := 0; c < ch; c++ {
			v := out[min(c, len(out)-1)][i]
			res.Pix[i*ch+c] = uint8(math.Round(float64(clamp01(v)) * 255))
		}
	}
	return res
}
