//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "winograd.h"
import "C"

const haveWinograd = true

// The tile conv.go sizes its buffers by is the one winograd.c transforms:
// a compile error (a negative constant made unsigned) where they differ.
const _ = uint(C.WINO_M-winoTile) + uint(winoTile-C.WINO_M) + uint(C.WINO_PLANES-winoPlanes) + uint(winoPlanes-C.WINO_PLANES)

// winogradConv computes y = conv(x, w) for a 3x3 convolution with stride 1
// and padding 1 (so Ho = H, Wo = W): the filters and each chunk of images
// are transformed (winograd.c), the 36 products per chunk are [Co x C] by
// [C x tiles] on the SGEMM, and the results are transformed back. Where
// the batch allows, each core takes whole blocks of images through all
// three steps (fused); else each step is split over the cores. Where e is
// not nil, the output transform applies it (swav_wino_output).
func (b *Backend) winogradConv(y, x, w []float32, g convGeom, e *normEpilogue) {
	if len(w) < g.Co*g.C*9 || len(x) < g.C*g.N*g.H*g.W || len(y) < g.Co*g.N*g.H*g.W || g.Ho != g.H || g.Wo != g.W {
		panic("cpu: winograd convolution of mismatched buffers")
	}
	u := b.get([]int{winoPlanes * g.Co * g.C})
	defer b.Release(u)
	C.swav_wino_filter(fptr(u.data), fptr(w), C.int(g.Co), C.int(g.C))
	shift, budget := 0, winogradBlockBudget
	if b.packedInput(g) {
		shift, budget = gemmPanelShift(), winogradPackedBlockBudget
	}
	if bl, ok := b.blocking(g, budget); ok {
		b.eachBlock(g, bl, budget, anyCore, func(c wChunk) {
			c.input(x, g, 0, g.C, shift)
			for p := 0; p < winoPlanes; p++ {
				if shift > 0 {
					gemmPackedB(g.Co, c.T, g.C, u.data[p*g.Co*g.C:], g.C, c.v[p*c.planeV:], 0, c.m[p*c.planeM:], c.T)
				} else {
					gemmSerial(false, false, g.Co, c.T, g.C, 1, u.data[p*g.Co*g.C:], g.C, c.v[p*c.planeV:], c.T, 0, c.m[p*c.planeM:], c.T)
				}
			}
			c.output(y, g, 0, g.Co, e)
		})
		return
	}
	b.winogradChunks(g, func(c wChunk) {
		winogradInput(x, g, c)
		for e := 0; e < winoPlanes; e++ {
			gemm(false, false, g.Co, c.T, g.C, 1, u.data[e*g.Co*g.C:], g.C, c.v[e*c.planeV:], c.T, 0, c.m[e*c.planeM:], c.T)
		}
		parallel(g.Co, 1, func(lo, hi int) { c.output(y, g, lo, hi, e) })
	})
}

// winogradGradFilter computes dw = beta*dw + dL/dw for the convolution
// winogradConv computes: for each of the 36 transform positions, the
// gradient of the transformed filter is the product of the transformed
// output gradient [Co x tiles] and the transformed input [C x tiles]
// transposed, summed over chunks; the adjoint of the filter transform takes
// it back to 3x3. 36 products of Co*C*tiles (pixels/16) instead of
// Co*C*9*pixels.
func (b *Backend) winogradGradFilter(dw, dy, x []float32, g convGeom, beta float32) {
	if len(dw) < g.Co*g.C*9 || len(x) < g.C*g.N*g.H*g.W || len(dy) < g.Co*g.N*g.H*g.W || g.Ho != g.H || g.Wo != g.W {
		panic("cpu: winograd filter gradient of mismatched buffers")
	}
	du := b.get([]int{winoPlanes * g.Co * g.C})
	defer b.Release(du)
	if bl, ok := b.blocking(g, winogradBlockBudget); ok && (g.W+winoTile-1)/winoTile > smallTileWidth {
		// Each core takes its blocks through both transforms and the 36
		// products, summing them in its own part. Images narrow enough
		// to be transformed side by side stay on the planes path, where
		// the groups are whole (F(2x2): at 4x4, 128 channels, 1.17x slower
		// fused; F(4x4), fused at 4x4 and 8x8 too: a step at batch 64
		// 472 -> 523 ms).
		sums := newCoreSums(b, winoPlanes*g.Co*g.C)
		b.eachBlock(g, bl, winogradBlockBudget, fixedCores, func(c wChunk) {
			part, acc := sums.part(c.core)
			c.input(x, g, 0, g.C, 0)
			c.outgrad(dy, g, 0, g.Co)
			for e := 0; e < winoPlanes; e++ {
				gemmSerial(false, true, g.Co, g.C, c.T, 1, c.m[e*c.planeM:], c.T, c.v[e*c.planeV:], c.T, acc, part[e*g.Co*g.C:], g.C)
			}
		})
		sums.addTo(du.data, 0)
		C.swav_wino_filter_grad(fptr(dw), fptr(du.data), C.int(g.Co), C.int(g.C), C.float(beta))
		return
	}
	first := true
	b.winogradChunks(g, func(c wChunk) {
		winogradInput(x, g, c)
		parallel(g.Co, 1, func(lo, hi int) { c.outgrad(dy, g, lo, hi) })
		acc := float32(1)
		if first {
			acc, first = 0, false
		}
		// The 36 products are small ([Co x C]) and deep (tiles): one
		// per core at a time, so no two cores pack the same operands.
		parallel(winoPlanes, 1, func(lo, hi int) {
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
	parallel(g.C, 1, func(lo, hi int) { c.input(x, g, lo, hi, 0) })
}

// smallTileWidth is winograd.c's SMALL_TW: images at most this many tiles
// wide are transformed side by side, GROUP of them at a time.
const smallTileWidth = C.SMALL_TW

// packedInput says whether the fused path's input transform writes its
// planes packed for the products (gemmPackedB), sparing them the packing
// pass: where rows of tiles are whole groups of four (widths of 16, 32
// ... pixels) and the channels one block of the product's depth.
func (b *Backend) packedInput(g convGeom) bool {
	return !b.unpackedInput && (g.W+winoTile-1)/winoTile%4 == 0 && g.C <= packedK
}

// input transforms channels [lo, hi) of the chunk's input tiles into c.v,
// packed in panels of 1<<shift tiles where shift > 0 (packedInput).
func (c wChunk) input(x []float32, g convGeom, lo, hi, shift int) {
	C.swav_wino_input(fptr(c.v), C.size_t(c.planeV), fptr(x), C.int(g.C), C.int(g.N), C.int(g.H), C.int(g.W), C.int(c.n0), C.int(c.n1), C.int(lo), C.int(hi), C.int(shift))
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
