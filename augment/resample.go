package augment

import "math"

// taps are the input positions and weights of one output position.
type taps struct {
	first int
	w     []float32
}

// filterTaps computes, for each of out output positions covering the input
// interval [start, start+length) of an axis of size in, the triangle
// (bilinear) filter taps. When shrinking, the filter is widened by the
// scale factor so every input pixel contributes (antialiasing, as PIL and
// torchvision's antialias=True do); weights falling outside the image are
// dropped and the rest renormalized.
func filterTaps(out int, start, length float64, in int, flip bool) []taps {
	scale := length / float64(out)
	support := math.Max(scale, 1)
	res := make([]taps, out)
	for o := 0; o < out; o++ {
		oo := o
		if flip {
			oo = out - 1 - o
		}
		center := start + (float64(oo)+0.5)*scale
		lo := int(math.Floor(center - support))
		hi := int(math.Ceil(center + support))
		lo, hi = max(lo, 0), min(hi, in-1)
		var ws []float32
		var sum float64
		for i := lo; i <= hi; i++ {
			w := 1 - math.Abs((float64(i)+0.5-center)/support)
			if w < 0 {
				w = 0
			}
			ws = append(ws, float32(w))
			sum += w
		}
		if sum == 0 { // degenerate: nearest pixel
			i := min(max(int(center), 0), in-1)
			res[o] = taps{first: i, w: []float32{1}}
			continue
		}
		for i := range ws {
			ws[i] = float32(float64(ws[i]) / sum)
		}
		res[o] = taps{first: lo, w: ws}
	}
	return res
}

// resample resizes one plane (sw x sh) through the given column and row
// taps into dst (len(cols) x len(rows)), using tmp as scratch.
func resample(dst, src []float32, sw int, cols, rows []taps, tmp []float32) {
	ow := len(cols)
	// Horizontal pass over the rows that the vertical taps touch.
	r0, r1 := rows[0].first, rows[0].first
	for _, t := range rows {
		r0 = min(r0, t.first)
		r1 = max(r1, t.first+len(t.w))
	}
	tmp = tmp[:(r1-r0)*ow]
	for r := r0; r < r1; r++ {
		srow := src[r*sw : (r+1)*sw]
		trow := tmp[(r-r0)*ow : (r-r0+1)*ow]
		for o, t := range cols {
			var s float32
			for k, w := range t.w {
				s += w * srow[t.first+k]
			}
			trow[o] = s
		}
	}
	for o, t := range rows {
		drow := dst[o*ow : (o+1)*ow]
		clear(drow)
		for k, w := range t.w {
			trow := tmp[(t.first+k-r0)*ow : (t.first+k-r0+1)*ow]
			for i, v := range trow {
				drow[i] += w * v
			}
		}
	}
}
