//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "winograd.h"
import "C"

const haveWinograd = true

// winogradConv computes y = conv(x, w) for a 3x3 convolution with stride 1
// and padding 1 (so Ho = H, Wo = W): the filters and each chunk of images
// are transformed (winograd.c), the 16 products per chunk are [Co x C] by
// [C x tiles] on the SGEMM, and the results are transformed back. Where
// the batch allows, each core takes whole blocks of images through all
// three steps (fused); else each step is split over the cores. Where e is
// not nil, the output transform applies it (swav_wino_output).
func (b *Backend) winogradConv(y, x, w []float32, g convGeom, e *normEpilogue) {
	if len(w) < g.Co*g.C*9 || len(x) < g.C*g.N*g.H*g.W || len(y) < g.Co*g.N*g.H*g.W || g.Ho != g.H || g.Wo != g.W {
		panic("cpu: winograd convolution of mismatched buffers")
	}
	u := b.get([]int{16 * g.Co * g.C})
	defer b.Release(u)
	C.swav_wino_filter(fptr(u.data), fptr(w), C.int(g.Co), C.int(g.C))
	if bl, ok := b.blocking(g); ok {
		b.eachBlock(g, bl, func(c wChunk) {
			c.input(x, g, 0, g.C)
			for e := 0; e < 16; e++ {
				gemmSerial(false, false, g.Co, c.T, g.C, 1, u.data[e*g.Co*g.C:], g.C, c.v[e*c.planeV:], c.T, 0, c.m[e*c.planeM:], c.T)
			}
			c.output(y, g, 0, g.Co, e)
		})
		return
	}
	b.winogradChunks(g, func(c wChunk) {
		winogradInput(x, g, c)
		for e := 0; e < 16; e++ {
			gemm(false, false, g.Co, c.T, g.C, 1, u.data[e*g.Co*g.C:], g.C, c.v[e*c.planeV:], c.T, 0, c.m[e*c.planeM:], c.T)
		}
		parallel(g.Co, 1, func(lo, hi int) { c.output(y, g, lo, hi, e) })
	})
}

// winogradGradFilter computes dw = beta*dw + dL/dw for the convolution
// winogradConv computes: for each of the 16 transform positions, the
// gradient of the transformed filter is the product of the transformed
// output gradient [Co x tiles] and the transformed input [C x tiles]
// transposed, summed over chunks; the adjoint of the filter transform takes
// it back to 3x3. 16 products of Co*C*tiles instead of Co*C*9*pixels.
func (b *Backend) winogradGradFilter(dw, dy, x []float32, g convGeom, beta float32) {
	if len(dw) < g.Co*g.C*9 || len(x) < g.C*g.N*g.H*g.W || len(dy) < g.Co*g.N*g.H*g.W || g.Ho != g.H || g.Wo != g.W {
		panic("cpu: winograd filter gradient of mismatched buffers")
	}
	du := b.get([]int{16 * g.Co * g.C})
	defer b.Release(du)
	first := true
	b.winogradChunks(g, func(c wChunk) {
		winogradInput(x, g, c)
		parallel(g.Co, 1, func(lo, hi int) { c.outgrad(dy, g, lo, hi) })
		acc := float32(1)
		if first {
			acc, first = 0, false
		}
		// The 16 products are small ([Co x C]) and deep (tiles): one
		// per core at a time, so no two cores pack the same operands.
		parallel(16, 1, func(lo, hi int) {
			for e := lo; e < hi; e++ {
				gemmSerial(false, true, g.Co, g.C, c.T, 1, c.m[e*c.planeM:], c.T, c.v[e*c.planeV:], c.T, acc, du.data[e*g.Co*g.C:], g.C)
			}
		})
	})
	C.swav_wino_filter_grad(fptr(dw), fptr(du.data), C.int(g.Co), C.int(g.C), C.float(beta))
}

// winogradInput transforms the chunk's input tiles into c.v, split over
// the cores by channel.
func winogradInput(x []float32, g convGeom, c wChunk) {
	parallel(g.C, 1, func(lo, hi int) { c.input(x, g, lo, hi) })
}

// input transforms channels [lo, hi) of the chunk's input tiles into c.v.
func (c wChunk) input(x []float32, g convGeom, lo, hi int) {
	C.swav_wino_input(fptr(c.v), C.size_t(c.planeV), fptr(x), C.int(g.C), C.int(g.N), C.int(g.H), C.int(g.W), C.int(c.n0), C.int(c.n1), C.int(lo), C.int(hi))
}

// output transforms output channels [lo, hi) of the chunk's products c.m
// back into y, applying e where it is not nil.
func (c wChunk) output(y []float32, g convGeom, lo, hi int, e *normEpilogue) {
	var mu, scale, shift, res *C.float
	relu := false
	if e != nil {
		mu, scale, shift, relu = fptr(e.mu), fptr(e.scale), fptr(e.shift), e.relu
		if e.res != nil {
			if len(e.res) < len(y) {
				panic("cpu: winograd residual shorter than the output")
			}
			res = fptr(e.res)
		}
		if len(e.mu) < g.Co || len(e.scale) < g.Co || len(e.shift) < g.Co {
			panic("cpu: winograd epilogue shorter than the output channels")
		}
	}
	C.swav_wino_output(fptr(y), fptr(c.m), C.size_t(c.planeM), C.int(g.Co), C.int(g.N), C.int(g.H), C.int(g.W), C.int(c.n0), C.int(c.n1), C.int(lo), C.int(hi),
		mu, scale, shift, res, cbool(relu))
}

// outgrad transforms channels [lo, hi) of the chunk's output gradient
// tiles into c.m.
func (c wChunk) outgrad(dy []float32, g convGeom, lo, hi int) {
	C.swav_wino_outgrad(fptr(c.m), C.size_t(c.planeM), fptr(dy), C.int(g.Co), C.int(g.N), C.int(g.H), C.int(g.W), C.int(c.n0), C.int(c.n1), C.int(lo), C.int(hi))
}
