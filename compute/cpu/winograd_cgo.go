//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "winograd.h"
import "C"

const haveWinograd = true

// winogradConv computes y = conv(x, w) for a 3x3 convolution with stride 1
// and padding 1 (so Ho = H, Wo = W): the filters and each chunk of images
// are transformed (winograd.c), the 16 products per chunk are [Co x C] by
// [C x tiles] on the SGEMM, and the results are transformed back.
func (b *Backend) winogradConv(y, x, w []float32, g convGeom) {
	if len(w) < g.Co*g.C*9 || len(x) < g.C*g.N*g.H*g.W || len(y) < g.Co*g.N*g.H*g.W || g.Ho != g.H || g.Wo != g.W {
		panic("cpu: winograd convolution of mismatched buffers")
	}
	tiles := ((g.H + 1) / 2) * ((g.W + 1) / 2)
	u := b.get([]int{16 * g.Co * g.C})
	defer b.Release(u)
	C.swav_wino_filter(fptr(u.data), fptr(w), C.int(g.Co), C.int(g.C))
	chunk := max(1, min(g.N, (winogradBudget/16-32)/((g.C+g.Co)*tiles)))
	// The 16 planes of a transform are written (read) together, tile by
	// tile: planes a power of two apart would share cache sets, so each
	// is padded by a cache line.
	planeV, planeM := g.C*chunk*tiles+16, g.Co*chunk*tiles+16
	buf := b.get([]int{pooledLength(16*(planeV+planeM), winogradBudget)})
	defer b.Release(buf)
	v, m := buf.data[:16*planeV], buf.data[16*planeV:16*(planeV+planeM)]
	for n0 := 0; n0 < g.N; n0 += chunk {
		n1 := min(g.N, n0+chunk)
		T := (n1 - n0) * tiles
		parallel(g.C, 1, func(lo, hi int) {
			C.swav_wino_input(fptr(v), C.size_t(planeV), fptr(x), C.int(g.C), C.int(g.N), C.int(g.H), C.int(g.W), C.int(n0), C.int(n1), C.int(lo), C.int(hi))
		})
		for e := 0; e < 16; e++ {
			gemm(false, false, g.Co, T, g.C, 1, u.data[e*g.Co*g.C:], g.C, v[e*planeV:], T, 0, m[e*planeM:], T)
		}
		parallel(g.Co, 1, func(lo, hi int) {
			C.swav_wino_output(fptr(y), fptr(m), C.size_t(planeM), C.int(g.Co), C.int(g.N), C.int(g.H), C.int(g.W), C.int(n0), C.int(n1), C.int(lo), C.int(hi))
		})
	}
}
