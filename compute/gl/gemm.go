package gl

import (
	"fmt"

	"github.com/swavd/swavd/compute"
)

// gemmTile is the part of C one matmul workgroup computes.
type gemmTile struct{ bm, bn int }

// gemmTiles are the compiled shapes (BM must be a multiple of 8, BN of 64):
// 64x128 for most products, 32x128 for products with few rows (32-channel
// layers), which would leave half of a 64-row tile empty.
var gemmTiles = []gemmTile{{64, 128}, {32, 128}}

// tileFor is the index in gemmTiles of the tile for a product of m rows.
func tileFor(m int) int {
	if m <= 32 {
		return 1
	}
	return 0
}

const (
	gemmBK = 16 // the shader's K step
	// splitTarget is how many workgroups a product should have before K
	// is split: enough to fill a GPU's compute units a few times over.
	splitTarget = 128
	// minSlice keeps each K slice long enough that its partial product
	// (written out and summed again) costs little next to it.
	minSlice = 256
)

// product is C[m, n] (row stride ldc) = alpha*A*B + beta*C, with k the
// inner dimension. noSplit keeps K whole: the input gradient's columns are
// scattered in C, which the pass that sums split slices does not know.
type product struct {
	m, n, k, ldc int
	alpha, beta  float32
	noSplit      bool
}

// kSplit returns the K slice length and the number of slices for a
// product with tiles output tiles.
func kSplit(k, tiles, maxZ int) (chunk, splits int) {
	splits = min((splitTarget+tiles-1)/tiles, k/minSlice, maxZ)
	if splits <= 1 {
		return k, 1
	}
	chunk = (k + splits - 1) / splits
	chunk = (chunk + gemmBK - 1) / gemmBK * gemmBK
	return chunk, (k + chunk - 1) / chunk
}

// gemm runs the tiled product mode with the mode's own uniforms us. When
// the output has too few tiles to keep the GPU busy, K is split over
// workgroups into a pooled scratch and summed by a second pass.
func (b *Backend) gemm(mode string, c, a, bm compute.Tensor, p product, us ...uni) {
	ti := tileFor(p.m)
	t, id := gemmTiles[ti], progID{"matmul", mode, ti}
	gx, gy := (p.n+t.bn-1)/t.bn, (p.m+t.bm-1)/t.bm
	lim := b.ctx.info.Limits.MaxGroupCount
	if gx > lim[0] || gy > lim[1] {
		panic(fmt.Sprintf("gl: product of %dx%d exceeds the dispatch limits %v", p.m, p.n, lim))
	}
	chunk, splits := kSplit(p.k, gx*gy, lim[2])
	if p.noSplit {
		chunk, splits = p.k, 1
	}
	us = append(us, ui("M", p.m), ui("N", p.n), ui("K", p.k), ui("kChunk", chunk), uf("alpha", p.alpha))
	if splits == 1 {
		us = append(us, uf("beta", p.beta), ui("ldc", p.ldc), ui("splitStride", 0))
		b.dispatch(id, gx, gy, 1, ts(c, a, bm), us)
		return
	}
	part := b.scratch(splits * p.m * p.n)
	defer b.Release(part)
	us = append(us, uf("beta", 0), ui("ldc", p.n), ui("splitStride", p.m*p.n))
	b.dispatch(id, gx, gy, splits, ts(part, a, bm), us)
	n := p.m * p.n
	b.run("elementwise", "SUM_SPLITS", n, ts(c, part), ui("n", n), ui("cols", p.n), ui("ldc", p.ldc),
		ui("splits", splits), uf("beta", p.beta))
}
