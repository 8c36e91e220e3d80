package gl

import (
	"fmt"

	"github.com/swavd/swavd/compute"
)

func (b *Backend) Fill(t compute.Tensor, v float32) {
	b.run("elementwise", "FILL", t.Len(), ts(t), ui("n", t.Len()), uf("alpha", v))
}

func sameLen(op string, a, c compute.Tensor) {
	if a.Len() != c.Len() {
		panic(fmt.Sprintf("gl: %s of %d values into %d", op, c.Len(), a.Len()))
	}
}

func (b *Backend) Copy(dst, src compute.Tensor) {
	sameLen("copy", dst, src)
	b.run("elementwise", "COPY", dst.Len(), ts(dst, src), ui("n", dst.Len()))
}

func (b *Backend) CopyColumns(dst compute.Tensor, dstCol int, src compute.Tensor, srcCol, n int) {
	ds, ss := dst.Shape(), src.Shape()
	if len(ds) != 2 || len(ss) != 2 || ds[0] != ss[0] || dstCol+n > ds[1] || srcCol+n > ss[1] {
		panic(fmt.Sprintf("gl: copy columns of %v into %v", ss, ds))
	}
	b.run("elementwise", "COPY_COLUMNS", ds[0]*n, ts(dst, src), ui("n", ds[0]*n), ui("count", n),
		ui("ld0", ds[1]), ui("ld1", ss[1]), ui("dc", dstCol), ui("sc", srcCol))
}

func (b *Backend) Axpy(y compute.Tensor, alpha float32, x compute.Tensor) {
	sameLen("axpy", y, x)
	b.run("elementwise", "AXPY", y.Len(), ts(y, x), ui("n", y.Len()), uf("alpha", alpha))
}

func (b *Backend) AddReLU(y, a, c compute.Tensor) {
	b.run("elementwise", "ADD_RELU", y.Len(), ts(y, a, c), ui("n", y.Len()))
}

func (b *Backend) ReLUBackward(dx, dy, y compute.Tensor) {
	b.run("elementwise", "RELU_BACKWARD", dx.Len(), ts(dx, dy, y), ui("n", dx.Len()))
}

func (b *Backend) AddBias(y, bias compute.Tensor) {
	ys := y.Shape()
	b.run("elementwise", "ADD_BIAS", y.Len(), ts(y, bias), ui("n", y.Len()), ui("cols", y.Len()/ys[0]))
}

func (b *Backend) SumRows(dst, x compute.Tensor, beta float32) {
	rows := x.Shape()[0]
	b.runGroups("reduce", "SUM_ROWS", rows, ts(dst, x), ui("rows", rows), ui("cols", x.Len()/rows), uf("beta", beta))
}

func (b *Backend) MatMul(c, a, bm compute.Tensor, transA, transB bool, alpha, beta float32) {
	m, n, k := compute.MatMulDims(c, a, bm, transA, transB)
	b.gemm("MODE_GEMM", c, a, bm, product{m: m, n: n, k: k, ldc: n, alpha: alpha, beta: beta},
		ui("lda", a.Shape()[1]), ui("ldb", bm.Shape()[1]), ub("transA", transA), ub("transB", transB))
}

// convUniforms describes x [C,N,H,W] convolved by w [Co,C,k,k].
func convUniforms(x, w compute.Tensor, p compute.ConvParams) (us []uni, C, N, H, W, Co, Ho, Wo int) {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 4 || len(ws) != 4 || ws[1] != xs[0] || ws[2] != p.Kernel || ws[3] != p.Kernel {
		panic(fmt.Sprintf("gl: conv of %v with filter %v, %+v", xs, ws, p))
	}
	C, N, H, W, Co = xs[0], xs[1], xs[2], xs[3], ws[0]
	Ho, Wo = p.OutSize(H), p.OutSize(W)
	us = []uni{ui("C", C), ui("H", H), ui("W", W), ui("Co", Co), ui("Ho", Ho), ui("Wo", Wo), ui("NB", N),
		ui("KS", p.Kernel), ui("S", p.Stride), ui("P", p.Pad)}
	return
}

func (b *Backend) Conv2D(y, x, w compute.Tensor, p compute.ConvParams) {
	us, C, N, _, _, Co, Ho, Wo := convUniforms(x, w, p)
	compute.MustShape("conv2d output", y, Co, N, Ho, Wo)
	b.gemm("MODE_CONV_FWD", y, w, x, product{m: Co, n: N * Ho * Wo, k: C * p.Kernel * p.Kernel, ldc: N * Ho * Wo, alpha: 1}, us...)
}

func (b *Backend) Conv2DGradFilter(dw, dy, x compute.Tensor, p compute.ConvParams, beta float32) {
	us, C, N, _, _, Co, Ho, Wo := convUniforms(x, dw, p)
	compute.MustShape("conv2d output gradient", dy, Co, N, Ho, Wo)
	kk := C * p.Kernel * p.Kernel
	b.gemm("MODE_CONV_DW", dw, dy, x, product{m: Co, n: kk, k: N * Ho * Wo, ldc: kk, alpha: 1, beta: beta}, us...)
}

func (b *Backend) Conv2DGradInput(dx, dy, w compute.Tensor, p compute.ConvParams) {
	us, C, N, H, W, Co, Ho, Wo := convUniforms(dx, w, p)
	compute.MustShape("conv2d output gradient", dy, Co, N, Ho, Wo)
	// One product per stride phase (see matmul.comp): each input pixel
	// gathers only the taps that reach it. A phase no tap reaches (a 1x1
	// kernel at stride 2) is still run, with K = 0, to write its zeros.
	S, P, KS := p.Stride, p.Pad, p.Kernel
	for ry := 0; ry < S; ry++ {
		for rx := 0; rx < S; rx++ {
			ih0, iw0 := ((ry-P)%S+S)%S, ((rx-P)%S+S)%S
			ha, wa := ceilDiv(H-ih0, S), ceilDiv(W-iw0, S)
			if ha <= 0 || wa <= 0 {
				continue
			}
			ny, nx := max(ceilDiv(KS-ry, S), 0), max(ceilDiv(KS-rx, S), 0)
			phase := append(us[:len(us):len(us)], ui("ry", ry), ui("rx", rx), ui("ny", ny), ui("nx", nx), ui("ih0", ih0), ui("iw0", iw0),
				ui("Ha", ha), ui("Wa", wa), ui("oy0", (ih0+P-ry)/S), ui("ox0", (iw0+P-rx)/S))
			b.gemm("MODE_CONV_DX", dx, w, dy, product{m: C, n: N * ha * wa, k: Co * ny * nx, ldc: N * H * W, alpha: 1, noSplit: true}, phase...)
		}
	}
}

func (b *Backend) GlobalAvgPool(y, x compute.Tensor) {
	xs := x.Shape()
	b.run("pool", "GAP", xs[0]*xs[1], ts(y, x), ui("n", xs[0]*xs[1]), ui("HW", xs[2]*xs[3]))
}

func (b *Backend) GlobalAvgPoolBackward(dx, dy compute.Tensor) {
	xs := dx.Shape()
	b.run("pool", "GAP_BACKWARD", dx.Len(), ts(dx, dy), ui("n", xs[0]*xs[1]), ui("HW", xs[2]*xs[3]))
}

func (b *Backend) L2NormalizeCols(y, norms, x compute.Tensor) {
	xs := x.Shape()
	b.run("l2norm", "COLS", xs[1], ts(y, norms, x), ui("D", xs[0]), ui("NC", xs[1]))
}

func (b *Backend) L2NormalizeColsBackward(dx, dy, y, norms compute.Tensor) {
	ys := y.Shape()
	b.run("l2norm", "COLS_BACKWARD", ys[1], ts(dx, dy, y, norms), ui("D", ys[0]), ui("NC", ys[1]))
}

func (b *Backend) L2NormalizeRows(x compute.Tensor) {
	r := x.Shape()[0]
	b.run("l2norm", "ROWS", r, ts(x), ui("D", x.Len()/r), ui("NC", r))
}

// scratch returns a pooled tensor for intermediate values; Release it.
func (b *Backend) scratch(n int) *Tensor { return tensorOf(b.Empty(n)) }

func (b *Backend) Sinkhorn(q, scores compute.Tensor, epsilon float32, iters int) {
	B, K := scores.Shape()[0], scores.Len()/scores.Shape()[0]
	mx := b.scratch(1)
	defer b.Release(mx)
	shape := []uni{ui("B", B), ui("K", K), uf("invEps", 1/epsilon)}
	b.runGroups("sinkhorn", "MAX", 1, ts(mx, scores), shape...)
	b.run("sinkhorn", "EXP", B*K, ts(q, scores, mx), shape...)
	for it := 0; it < iters; it++ {
		b.run("sinkhorn", "COLS", K, ts(q), shape...)
		b.run("sinkhorn", "ROWS", B, ts(q), append(shape, ub("last", it == iters-1))...)
	}
}

func (b *Backend) SwappedCE(loss, grad, scores, codes compute.Tensor, temperature, weight float32) {
	B, K := scores.Shape()[0], scores.Len()/scores.Shape()[0]
	rows := b.scratch(B)
	defer b.Release(rows)
	us := []uni{ui("B", B), ui("K", K), uf("invT", 1/temperature), uf("weight", weight)}
	b.run("softmax", "CE_ROWS", B, ts(grad, scores, codes, rows), us...)
	b.runGroups("softmax", "CE_REDUCE", 1, ts(loss, rows), us...)
}

func (b *Backend) SoftmaxRows(p, scores compute.Tensor, temperature float32) {
	B := scores.Shape()[0]
	b.run("softmax", "SOFTMAX", B, ts(p, scores), ui("B", B), ui("K", scores.Len()/B), uf("invT", 1/temperature))
}

func (b *Backend) SGDStep(w, g, m compute.Tensor, p compute.SGDParams) {
	norms := b.scratch(2)
	defer b.Release(norms)
	if p.LARS {
		b.runGroups("reduce", "SUM_SQUARES2", 1, ts(norms, w, g), ui("n", w.Len()))
	}
	b.run("elementwise", "SGD", w.Len(), ts(w, g, m, norms), ui("n", w.Len()), uf("lr", p.LR), uf("momentum", p.Momentum),
		uf("decay", p.WeightDecay), uf("trust", p.TrustCoef), ub("lars", p.LARS))
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
