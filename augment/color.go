package augment

import (
	"math"
	"math/rand/v2"
)

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

// gray is ITU-R 601 luma, as torchvision's rgb_to_grayscale; a single
// plane is its own gray.
func gray(pl [][]float32) []float32 {
	if len(pl) == 1 {
		return pl[0]
	}
	g := make([]float32, len(pl[0]))
	for i := range g {
		g[i] = 0.299*pl[0][i] + 0.587*pl[1][i] + 0.114*pl[2][i]
	}
	return g
}

// blend computes a*f + b*(1-f), clamped, in place in a.
func blend(a, b []float32, f float32) {
	for i := range a {
		a[i] = clamp01(a[i]*f + b[i]*(1-f))
	}
}

// jitter applies torchvision's ColorJitter: the enabled adjustments in a
// random order, each with a random factor.
func (v *Views) jitter(pl [][]float32, rng *rand.Rand) {
	factor := func(x float64) float32 { return float32(1 - x + rng.Float64()*2*x) }
	for _, op := range rng.Perm(4) {
		switch {
		case op == 0 && v.Brightness > 0:
			f := factor(v.Brightness)
			for _, p := range pl {
				for i := range p {
					p[i] = clamp01(p[i] * f)
				}
			}
		case op == 1 && v.Contrast > 0:
			f := factor(v.Contrast)
			var mean float64
			for _, g := range gray(pl) {
				mean += float64(g)
			}
			mean /= float64(len(pl[0]))
			m := float32(mean)
			for _, p := range pl {
				for i := range p {
					p[i] = clamp01(p[i]*f + m*(1-f))
				}
			}
		case op == 2 && v.Saturation > 0 && len(pl) == 3:
			f := factor(v.Saturation)
			g := append([]float32(nil), gray(pl)...)
			for _, p := range pl {
				blend(p, g, f)
			}
		case op == 3 && v.Hue > 0 && len(pl) == 3:
			shiftHue(pl, float32((rng.Float64()*2-1)*v.Hue))
		}
	}
}

// shiftHue rotates the hue of every pixel by h (fraction of a turn).
func shiftHue(pl [][]float32, h float32) {
	for i := range pl[0] {
		r, g, b := pl[0][i], pl[1][i], pl[2][i]
		mx, mn := max(r, g, b), min(r, g, b)
		d := mx - mn
		if d == 0 {
			continue
		}
		var hue float32
		switch mx {
		case r:
			hue = (g - b) / d / 6
		case g:
			hue = (2 + (b-r)/d) / 6
		default:
			hue = (4 + (r-g)/d) / 6
		}
		hue += h
		hue -= float32(math.Floor(float64(hue)))
		s := d / mx
		pl[0][i], pl[1][i], pl[2][i] = hsvToRGB(hue, s, mx)
	}
}

func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	i := int(h6) % 6
	f := h6 - float32(int(h6))
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch i {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

// gaussianBlur blurs a w x h plane in place with a separable kernel of
// radius 3 sigma, edges clamped.
func gaussianBlur(p []float32, w, h int, sigma float64) {
	rad := max(1, int(math.Ceil(3*sigma)))
	k := make([]float32, 2*rad+1)
	var sum float64
	for i := range k {
		x := float64(i - rad)
		e := math.Exp(-x * x / (2 * sigma * sigma))
		k[i] = float32(e)
		sum += e
	}
	for i := range k {
		k[i] /= float32(sum)
	}
	tmp := make([]float32, len(p))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for i, kv := range k {
				xx := min(max(x+i-rad, 0), w-1)
				s += kv * p[y*w+xx]
			}
			tmp[y*w+x] = s
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for i, kv := range k {
				yy := min(max(y+i-rad, 0), h-1)
				s += kv * tmp[yy*w+x]
			}
			p[y*w+x] = s
		}
	}
}
