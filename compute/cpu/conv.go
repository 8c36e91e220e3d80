package cpu

import (
	"fmt"
	"iter"
	"runtime"
	"unsafe"

	"github.com/swavd/swavd/compute"
)

func (b *Backend) MatMul(c, a, bm compute.Tensor, transA, transB bool, alpha, beta float32) {
	m, n, k := compute.MatMulDims(c, a, bm, transA, transB)
	gemm(transA, transB, m, n, k, alpha, data(a), a.Shape()[1], data(bm), bm.Shape()[1], beta, data(c), n)
}

// colBudget bounds the im2col buffer (in float32s): the batch is lowered a
// few images at a time so memory stays flat whatever the batch size, while
// each product still has thousands of columns to keep SGEMM efficient.
const colBudget = 1 << 22

// winogradBudget bounds the transformed input and output of one chunk of
// images (in float32s), as colBudget bounds the lowering.
const winogradBudget = 1 << 22

type convGeom struct {
	C, N, H, W, Co, Ho, Wo int
	p                      compute.ConvParams
}

func geometry(x, w compute.Tensor, p compute.ConvParams) convGeom {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 4 || len(ws) != 4 || ws[1] != xs[0] || ws[2] != p.Kernel || ws[3] != p.Kernel {
		panic(fmt.Sprintf("cpu: conv of %v with filter %v, %+v", xs, ws, p))
	}
	return convGeom{C: xs[0], N: xs[1], H: xs[2], W: xs[3], Co: ws[0], Ho: p.OutSize(xs[2]), Wo: p.OutSize(xs[3]), p: p}
}

func (g convGeom) pointwise() bool { return g.p.Kernel == 1 && g.p.Stride == 1 && g.p.Pad == 0 }

// winoTile is the side of Winograd's block of outputs, F(4x4, 3x3)
// (winograd.h's WINO_M), and winoPlanes the values of each transformed
// tile, (winoTile+2)^2.
const (
	winoTile   = 4
	winoPlanes = (winoTile + 2) * (winoTile + 2)
)

// winoTiles is the number of Winograd tiles of one h x w image.
func winoTiles(h, w int) int {
	return ((h + winoTile - 1) / winoTile) * ((w + winoTile - 1) / winoTile)
}

// winograd says whether the convolution goes through Winograd F(4x4,3x3).
func (b *Backend) winograd(g convGeom) bool {
	return haveWinograd && b.winogradMin > 0 && g.p.Kernel == 3 && g.p.Stride == 1 && g.p.Pad == 1 &&
		g.C >= b.winogradMin && g.Co >= b.winogradMin && g.N*g.H*g.W >= b.winogradMinPixels
}

// wChunk is one chunk of images [n0, n1) with T tiles, and the buffers of
// its transforms: the input's v (winoPlanes planes planeV apart) and the output's
// (or output gradient's) m (planeM apart).
type wChunk struct {
	core           int // which core runs it (eachBlock), for per-core sums
	n0, n1, T      int
	v, m           []float32
	planeV, planeM int
}

// winogradChunks runs f on the batch a chunk of images at a time, so the
// transforms stay within winogradBudget.
func (b *Backend) winogradChunks(g convGeom, f func(wChunk)) {
	tiles := winoTiles(g.H, g.W)
	chunk := max(1, min(g.N, (winogradBudget/winoPlanes-32)/((g.C+g.Co)*tiles)))
	// The planes of a transform are written (read) together, tile by
	// tile: planes a power of two apart would share cache sets, so each
	// is padded by a cache line.
	planeV, planeM := g.C*chunk*tiles+16, g.Co*chunk*tiles+16
	buf := b.get([]int{pooledLength(winoPlanes*(planeV+planeM), winogradBudget)})
	defer b.Release(buf)
	v, m := buf.data[:winoPlanes*planeV], buf.data[winoPlanes*planeV:winoPlanes*(planeV+planeM)]
	for n0 := 0; n0 < g.N; n0 += chunk {
		n1 := min(g.N, n0+chunk)
		f(wChunk{n0: n0, n1: n1, T: (n1 - n0) * tiles, v: v, m: m, planeV: planeV, planeM: planeM})
	}
}

// winogradBlockBudget bounds one core's block of images on the fused
// Winograd path, its transformed input and products together (in
// float32s). Measured on edge-small's 3x3 layers at batch 64: 2^19 and 2^21
// were no faster for the forward products; the filter gradient, fused,
// 1.1-1.25x faster than on the planes path at 8x8 to 32x32 (its products
// are deep in the block's tiles, so it keeps this budget). With F(4x4),
// 2^18 was slower again in the 4x4 and 8x8 layers (1.2x).
const winogradBlockBudget = 1 << 20

// winogradPackedBlockBudget is winogradBlockBudget where the input
// transform writes its planes packed for the products (packedInput): 2^18
// (1 MiB) and the planes' padding, so that a 32x32 image of 32 channels
// in and out makes a block, and the block's planes stay in the core's L2
// (2 MiB here) from the transform to the products, which then read them
// with no packing pass between. One core, the forward and input gradient
// of edge-small's 32x32 and 16x16 layers: 1.2-1.3x over packed planes at
// 2^20 (which go out to L3 and back), where neither change alone gained
// more than 1.09x. (2^17 had been much slower only because a 32x32 image
// no longer fit a block, so the path fell back to planes.)
const winogradPackedBlockBudget = 1<<18 + 1<<10

// blockCount is how a fused convolution splits the batch: images into n
// blocks of whole images, their sizes differing by one at most.
type blockCount struct{ images, n int }

// bounds is block i's images [n0,n1).
func (bl blockCount) bounds(i int) (n0, n1 int) {
	return bl.images * i / bl.n, bl.images * (i + 1) / bl.n
}

// per is the most images in one block.
func (bl blockCount) per() int { return (bl.images + bl.n - 1) / bl.n }

// blocking splits the batch for the fused Winograd path (splitBatch), each
// block's transforms within budget (winogradBlockBudget or
// winogradPackedBlockBudget).
func (b *Backend) blocking(g convGeom, budget int) (blockCount, bool) {
	if b.winogradPlanes {
		return blockCount{}, false
	}
	return splitBatch(g.N, (g.C+g.Co)*winoTiles(g.H, g.W), budget/winoPlanes-32)
}

// splitBatch splits n images into blocks of whole images, each of at most
// budget floats at perImage each, at least two blocks per core, and as
// many blocks on every core, so that each core has the same number of
// images, give or take one: blocks of up to per images, cut where they
// fall, had left one core 12-19% more images than the other in several
// layers at batch 16. It says false when there are too few images for
// every core to have a block (inference on a frame or two) or one image
// is larger than a block: then each step is split over the cores instead.
func splitBatch(n, perImage, budget int) (blockCount, bool) {
	per := budget / perImage
	workers := runtime.GOMAXPROCS(0)
	if per < 1 || n < workers {
		return blockCount{}, false
	}
	blocks := max((n+per-1)/per, 2*workers)
	blocks = min(n, (blocks+workers-1)/workers*workers)
	return blockCount{images: n, n: blocks}, true
}

// eachBlock runs fn on every block, the blocks shared out over the cores
// as order says, each core with its own scratch for the transforms. The
// input's planes are rounded up to whole panels of 32 tiles (the widest
// the packed products read) and start 64-byte aligned.
func (b *Backend) eachBlock(g convGeom, bl blockCount, budget int, order blockOrder, fn func(wChunk)) {
	tiles := winoTiles(g.H, g.W)
	planeV, planeM := g.C*((bl.per()*tiles+31)/32*32)+16, g.Co*bl.per()*tiles+16
	parallelBlocks(bl.n, order, func(core int, blocks iter.Seq[int]) {
		buf := b.get([]int{pooledLength(winoPlanes*(planeV+planeM)+16, budget)})
		defer b.Release(buf)
		v := aligned64(buf.data)[:winoPlanes*planeV]
		m := buf.data[len(buf.data)-winoPlanes*planeM:]
		for i := range blocks {
			n0, n1 := bl.bounds(i)
			fn(wChunk{core: core, n0: n0, n1: n1, T: (n1 - n0) * tiles, v: v, m: m, planeV: planeV, planeM: planeM})
		}
	})
}

// coreSums holds one partial sum per core (parallelCores' core index),
// each made on the core's first block, so that blocks on different cores
// add into different memory.
type coreSums struct {
	b     *Backend
	n     int
	parts []*Tensor
}

func newCoreSums(b *Backend, n int) *coreSums {
	return &coreSums{b: b, n: n, parts: make([]*Tensor, runtime.GOMAXPROCS(0))}
}

// part is core's partial sum and the beta its next product takes: 0 on
// the first (the part is fresh), 1 after.
func (s *coreSums) part(core int) ([]float32, float32) {
	if s.parts[core] == nil {
		s.parts[core] = s.b.get([]int{s.n})
		return s.parts[core].data, 0
	}
	return s.parts[core].data, 1
}

// addTo sets dst = beta*dst + the sum of the parts (dst overwritten,
// NaN or not, where beta is 0), and releases them.
func (s *coreSums) addTo(dst []float32, beta float32) {
	for _, p := range s.parts {
		if p == nil {
			continue
		}
		if beta == 0 {
			copy(dst, p.data)
		} else {
			for i, v := range p.data {
				dst[i] = beta*dst[i] + v
			}
		}
		beta = 1
		s.b.Release(p)
	}
}

// aligned64 is d from its first element on a 64-byte boundary, at most 15
// floats in.
func aligned64(d []float32) []float32 {
	off := 0
	for off < len(d) && uintptr(unsafe.Pointer(&d[off]))%64 != 0 {
		off++
	}
	return d[off:]
}

// pooledLength rounds a large scratch length up to budget, so the pool
// keeps one buffer for all large shapes, not one per layer; small ones
// (inference on one frame) stay small.
func pooledLength(n, budget int) int {
	if n > budget/4 {
		return max(n, budget)
	}
	return n
}

// rows is the height of the lowered matrix: one row per (channel, tap).
func (g convGeom) rows() int { return g.C * g.p.Kernel * g.p.Kernel }

// imagesPerChunk keeps a chunk's lowering, padded rows included, within
// colBudget, so that every large lowering takes a buffer of that one length.
func (g convGeom) imagesPerChunk() int {
	n := (colBudget/g.rows() - lowerPad) / (g.Ho * g.Wo)
	return max(1, min(n, g.N))
}

// lowerPad pads the rows of a lowered matrix by a cache line: the SGEMM's
// packing reads a few hundred rows at once, and rows a power of two apart
// (batch 64 of 32x32 images) would all fall in the same cache sets.
const lowerPad = 16

// lowerBlockBudget bounds one core's block of images on the fused lowered
// path (in float32s): the lowering stays in the core's L2 between im2col
// and the product that reads it, instead of going out to memory and back.
const lowerBlockBudget = 1 << 18

// lowerBlocks calls fn for each block of images [n0,n1) of the batch, the
// blocks shared out over the cores as order says (core: which one runs
// fn), each core with its own lowered buffer (rows ld floats apart). It
// says false, doing nothing, where the batch does not split (splitBatch):
// forChunks then.
func (b *Backend) lowerBlocks(g convGeom, order blockOrder, fn func(core, n0, n1 int, col []float32, ld int)) bool {
	bl, ok := splitBatch(g.N, g.rows()*g.Ho*g.Wo, lowerBlockBudget-g.rows()*lowerPad)
	if !ok || b.lowerChunks {
		return false
	}
	ld := bl.per()*g.Ho*g.Wo + lowerPad
	parallelBlocks(bl.n, order, func(core int, blocks iter.Seq[int]) {
		buf := b.get([]int{pooledLength(g.rows()*ld, lowerBlockBudget)})
		defer b.Release(buf)
		for i := range blocks {
			n0, n1 := bl.bounds(i)
			fn(core, n0, n1, buf.data[:g.rows()*ld], ld)
		}
	})
	return true
}

// forChunks calls fn for each group of images [n0,n1) with a lowered
// buffer large enough for it, its rows ld floats apart.
func (b *Backend) forChunks(g convGeom, fn func(n0, n1 int, col []float32, ld int)) {
	chunk := g.imagesPerChunk()
	ld := chunk*g.Ho*g.Wo + lowerPad
	buf := b.get([]int{pooledLength(g.rows()*ld, colBudget)})
	defer b.Release(buf)
	for n0 := 0; n0 < g.N; n0 += chunk {
		n1 := min(g.N, n0+chunk)
		fn(n0, n1, buf.data[:g.rows()*ld], ld)
	}
}

func (b *Backend) Conv2D(y, x, w compute.Tensor, p compute.ConvParams) {
	b.conv2D(y, x, w, p, nil)
}

// normEpilogue is inference batch norm, a residual add and ReLU, applied
// by a convolution to its output while it is in cache: channel c's
// values v become (v - mu[c]) * scale[c] + shift[c], plus res (shaped as
// the output) where res is not nil, then ReLU if relu (normalizeRow).
type normEpilogue struct {
	mu, scale, shift, res []float32
	relu                  bool
}

// apply applies the epilogue to images [n0, n1) of output channels
// [co0, co1) of y, [Co, N, hw].
func (e *normEpilogue) apply(y []float32, g convGeom, co0, co1, n0, n1 int) {
	hw := g.Ho * g.Wo
	for c := co0; c < co1; c++ {
		lo, hi := (c*g.N+n0)*hw, (c*g.N+n1)*hw
		var res []float32
		if e.res != nil {
			res = e.res[lo:hi]
		}
		normalizeRow(y[lo:hi], y[lo:hi], res, e.mu[c], e.scale[c], e.shift[c], e.relu)
	}
}

// Conv2DNormInfer is Conv2D, then BatchNormInfer, then (res not nil) the
// residual add, then (relu) ReLU, with the normalization applied where
// the convolution writes its output (compute.ConvNormInfer): in the
// Winograd output transform, row by row, or block by block after the
// product, while the block is in cache; the same expressions as the
// separate passes, so the same values.
func (b *Backend) Conv2DNormInfer(y, x, w compute.Tensor, p compute.ConvParams, gamma, beta, runMean, runVar compute.Tensor, eps float32, res compute.Tensor, relu bool) {
	co := w.Shape()[0]
	for _, t := range []compute.Tensor{gamma, beta, runMean, runVar} {
		compute.MustShape("conv batch norm parameter", t, co)
	}
	if res != nil {
		compute.MustShape("conv batch norm residual", res, y.Shape()...)
	}
	e := &normEpilogue{mu: data(runMean), scale: make([]float32, co), shift: data(beta), res: optionalData(res), relu: relu}
	gd, rv := data(gamma), data(runVar)
	for c := range co {
		e.scale[c] = inferScale(gd, rv, eps, c)
	}
	b.conv2D(y, x, w, p, e)
}

// conv2D is Conv2D, with the epilogue e applied to the output where e is
// not nil.
func (b *Backend) conv2D(y, x, w compute.Tensor, p compute.ConvParams, e *normEpilogue) {
	g := geometry(x, w, p)
	compute.MustShape("conv2d output", y, g.Co, g.N, g.Ho, g.Wo)
	total := g.N * g.Ho * g.Wo
	// applyAll applies e to all of y, split over the cores by channel.
	applyAll := func(n0, n1 int) {
		if e != nil {
			parallel(g.Co, 1, func(lo, hi int) { e.apply(data(y), g, lo, hi, n0, n1) })
		}
	}
	if g.pointwise() {
		gemm(false, false, g.Co, total, g.C, 1, data(w), g.C, data(x), total, 0, data(y), total)
		applyAll(0, g.N)
		return
	}
	if b.winograd(g) {
		b.winogradConv(data(y), data(x), data(w), g, e)
		return
	}
	hw := g.Ho * g.Wo
	if b.lowerBlocks(g, anyCore, func(_, n0, n1 int, col []float32, ld int) {
		im2colRows(col, ld, data(x), g, n0, n1, 0, g.rows())
		gemmSerial(false, false, g.Co, (n1-n0)*hw, g.rows(), 1, data(w), g.rows(), col, ld, 0, data(y)[n0*hw:], total)
		if e != nil {
			e.apply(data(y), g, 0, g.Co, n0, n1)
		}
	}) {
		return
	}
	b.forChunks(g, func(n0, n1 int, col []float32, ld int) {
		im2col(col, ld, data(x), g, n0, n1)
		gemm(false, false, g.Co, (n1-n0)*hw, g.rows(), 1, data(w), g.rows(), col, ld, 0, data(y)[n0*hw:], total)
		applyAll(n0, n1)
	})
}

func (b *Backend) Conv2DGradFilter(dw, dy, x compute.Tensor, p compute.ConvParams, beta float32) {
	g := geometry(x, dw, p)
	compute.MustShape("conv2d output gradient", dy, g.Co, g.N, g.Ho, g.Wo)
	total := g.N * g.Ho * g.Wo
	if g.pointwise() {
		gemm(false, true, g.Co, g.C, total, 1, data(dy), total, data(x), total, beta, data(dw), g.C)
		return
	}
	if b.winograd(g) {
		b.winogradGradFilter(data(dw), data(dy), data(x), g, beta)
		return
	}
	hw := g.Ho * g.Wo
	// Each core sums its blocks' products in its own part, and the parts
	// are added up at the end.
	sums := newCoreSums(b, g.Co*g.rows())
	if b.lowerBlocks(g, fixedCores, func(core, n0, n1 int, col []float32, ld int) {
		part, acc := sums.part(core)
		im2colRows(col, ld, data(x), g, n0, n1, 0, g.rows())
		gemmSerial(false, true, g.Co, g.rows(), (n1-n0)*hw, 1, data(dy)[n0*hw:], total, col, ld, acc, part, g.rows())
	}) {
		sums.addTo(data(dw), beta)
		return
	}
	b.forChunks(g, func(n0, n1 int, col []float32, ld int) {
		im2col(col, ld, data(x), g, n0, n1)
		gemm(false, true, g.Co, g.rows(), (n1-n0)*hw, 1, data(dy)[n0*hw:], total, col, ld, beta, data(dw), g.rows())
		beta = 1
	})
}

func (b *Backend) Conv2DGradInput(dx, dy, w compute.Tensor, p compute.ConvParams) {
	g := geometry(dx, w, p)
	compute.MustShape("conv2d output gradient", dy, g.Co, g.N, g.Ho, g.Wo)
	total := g.N * g.Ho * g.Wo
	if g.pointwise() {
		gemm(true, false, g.C, total, g.Co, 1, data(w), g.C, data(dy), total, 0, data(dx), total)
		return
	}
	if b.winograd(g) {
		// The input gradient of a 3x3 stride-1 pad-1 convolution is the
		// same convolution of dy with the filters flipped and transposed.
		wd, ft := data(w), b.get([]int{g.C * g.Co * 9})
		defer b.Release(ft)
		for o := 0; o < g.Co; o++ {
			for c := 0; c < g.C; c++ {
				for t := 0; t < 9; t++ {
					ft.data[(c*g.Co+o)*9+8-t] = wd[(o*g.C+c)*9+t]
				}
			}
		}
		b.winogradConv(data(dx), data(dy), ft.data, convGeom{C: g.Co, N: g.N, H: g.Ho, W: g.Wo, Co: g.C, Ho: g.H, Wo: g.W, p: g.p}, nil)
		return
	}
	hw := g.Ho * g.Wo
	if b.lowerBlocks(g, anyCore, func(_, n0, n1 int, col []float32, ld int) {
		gemmSerial(true, false, g.rows(), (n1-n0)*hw, g.Co, 1, data(w), g.rows(), data(dy)[n0*hw:], total, 0, col, ld)
		// col2im adds: clear the block's images first, on this core,
		// not the whole of dx on one core before the blocks start.
		plane := g.H * g.W
		for c := 0; c < g.C; c++ {
			clear(data(dx)[(c*g.N+n0)*plane : (c*g.N+n1)*plane])
		}
		col2imChannels(data(dx), col, ld, g, n0, n1, 0, g.C)
	}) {
		return
	}
	clear(data(dx))
	b.forChunks(g, func(n0, n1 int, col []float32, ld int) {
		gemm(true, false, g.rows(), (n1-n0)*hw, g.Co, 1, data(w), g.rows(), data(dy)[n0*hw:], total, 0, col, ld)
		col2im(data(dx), col, ld, g, n0, n1)
	})
}

// validRange is the range of output positions o in [0,out) whose input
// position o*stride-pad+tap falls inside [0,in).
func validRange(out, in, stride, pad, tap int) (lo, hi int) {
	// o*stride >= pad-tap  and  o*stride <= in-1+pad-tap
	lo = 0
	if d := pad - tap; d > 0 {
		lo = (d + stride - 1) / stride
	}
	hi = out
	if lim := in - 1 + pad - tap; lim < 0 {
		hi = 0
	} else if h := lim/stride + 1; h < hi {
		hi = h
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// im2col lowers images [n0,n1) of x into col, one row per (channel, tap)
// and one column per output pixel, split over the cores by rows.
func im2col(col []float32, ld int, x []float32, g convGeom, n0, n1 int) {
	parallel(g.rows(), 1, func(rlo, rhi int) { im2colRows(col, ld, x, g, n0, n1, rlo, rhi) })
}

// col2im adds the lowered gradient col back onto the images [n0,n1) of dx.
// Work is split by channel so no two goroutines write the same pixel.
func col2im(dx, col []float32, ld int, g convGeom, n0, n1 int) {
	parallel(g.C, 1, func(clo, chi int) { col2imChannels(dx, col, ld, g, n0, n1, clo, chi) })
}

// im2colRowsGo writes rows [rlo,rhi) of the lowering: the build without
// cgo, and the reference for the C version (lower.c).
func im2colRowsGo(col []float32, ld int, x []float32, g convGeom, n0, n1, rlo, rhi int) {
	k, s, pad := g.p.Kernel, g.p.Stride, g.p.Pad
	hw, cols := g.Ho*g.Wo, (n1-n0)*g.Ho*g.Wo
	for r := rlo; r < rhi; r++ {
		c, kh, kw := r/(k*k), (r/k)%k, r%k
		dst := col[r*ld : r*ld+cols]
		wlo, whi := validRange(g.Wo, g.W, s, pad, kw)
		hlo, hhi := validRange(g.Ho, g.H, s, pad, kh)
		for n := n0; n < n1; n++ {
			img := x[(c*g.N+n)*g.H*g.W:]
			out := dst[(n-n0)*hw : (n-n0+1)*hw]
			clear(out[:hlo*g.Wo])
			clear(out[hhi*g.Wo:])
			for oh := hlo; oh < hhi; oh++ {
				src := img[(oh*s-pad+kh)*g.W:]
				row := out[oh*g.Wo : (oh+1)*g.Wo]
				clear(row[:wlo])
				clear(row[whi:])
				if s == 1 {
					copy(row[wlo:whi], src[wlo-pad+kw:whi-pad+kw])
					continue
				}
				for ow := wlo; ow < whi; ow++ {
					row[ow] = src[ow*s-pad+kw]
				}
			}
		}
	}
}

// col2imChannelsGo adds col onto channels [clo,chi) of dx: the build
// without cgo, and the reference for the C version.
func col2imChannelsGo(dx, col []float32, ld int, g convGeom, n0, n1, clo, chi int) {
	k, s, pad := g.p.Kernel, g.p.Stride, g.p.Pad
	hw, cols := g.Ho*g.Wo, (n1-n0)*g.Ho*g.Wo
	for c := clo; c < chi; c++ {
		for t := 0; t < k*k; t++ {
			kh, kw := t/k, t%k
			r := c*k*k + t
			src := col[r*ld : r*ld+cols]
			wlo, whi := validRange(g.Wo, g.W, s, pad, kw)
			hlo, hhi := validRange(g.Ho, g.H, s, pad, kh)
			for n := n0; n < n1; n++ {
				img := dx[(c*g.N+n)*g.H*g.W:]
				in := src[(n-n0)*hw:]
				for oh := hlo; oh < hhi; oh++ {
					dst := img[(oh*s-pad+kh)*g.W:]
					row := in[oh*g.Wo : (oh+1)*g.Wo]
					if s == 1 {
						d := dst[wlo-pad+kw : whi-pad+kw]
						for i, v := range row[wlo:whi] {
							d[i] += v
						}
						continue
					}
					for ow := wlo; ow < whi; ow++ {
						dst[ow*s-pad+kw] += row[ow]
					}
				}
			}
		}
	}
}
