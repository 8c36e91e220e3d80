package gl

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/swavd/swavd/compute"
)

// SelfTest runs a sequence of operations (a product with its K split, a
// strided and a 1x1 convolution with their gradients, batch norm, Sinkhorn
// on three shapes), interleaved so that programs run again with other
// uniforms, on b and on ref with the same inputs, and fails when any output
// differs by more than 1e-4 in relative norm, or when the driver reported an
// error. `compute.backend: auto` uses GL only when
// this passes.
func SelfTest(b *Backend, ref compute.Backend) error {
	rng := rand.New(rand.NewPCG(3, 5))
	type pair struct{ g, r compute.Tensor }
	var made []pair
	defer func() {
		for _, p := range made {
			b.Release(p.g)
			ref.Release(p.r)
		}
	}()
	rnd := func(shape ...int) pair {
		d := make([]float32, compute.Size(shape))
		for i := range d {
			d[i] = float32(rng.Float64()*2 - 1)
		}
		p := pair{b.New(shape...), ref.New(shape...)}
		b.Upload(p.g, d)
		ref.Upload(p.r, d)
		made = append(made, p)
		return p
	}
	check := func(what string, p pair) error {
		g, r := make([]float32, p.g.Len()), make([]float32, p.r.Len())
		b.Download(g, p.g)
		ref.Download(r, p.r)
		var d, n float64
		for i := range g {
			x := float64(g[i]) - float64(r[i])
			d += x * x
			n += float64(r[i]) * float64(r[i])
		}
		if rel := math.Sqrt(d / math.Max(n, 1e-30)); !(rel <= 1e-4) {
			return fmt.Errorf("gl self-test: %s differs from the CPU by %.3g (relative norm)", what, rel)
		}
		return nil
	}
	// 70 rows take the 64-row tile (the convolutions below take the 32-row
	// one) and K = 600 is split over two workgroups, summed by a second pass.
	a, m, c := rnd(70, 600), rnd(600, 40), rnd(70, 40)
	x, w := rnd(5, 3, 11, 11), rnd(7, 5, 3, 3)
	p := compute.ConvParams{Kernel: 3, Stride: 2, Pad: 1}
	y, dy, dx, dw := rnd(7, 3, 6, 6), rnd(7, 3, 6, 6), rnd(5, 3, 11, 11), rnd(7, 5, 3, 3)
	gm, bt, mean, inv, rm, rv, bn := rnd(7), rnd(7), rnd(7), rnd(7), rnd(7), rnd(7), rnd(7, 3, 6, 6)
	// The same programs again on other shapes, interleaved: a driver can be
	// right for each operation run alone and wrong for one that follows
	// dispatches of the same program with other uniforms (zink over
	// lavapipe inlines uniforms and was seen to reuse stale ones), so the
	// sequence below alternates shapes and betas before anything is read.
	p1 := compute.ConvParams{Kernel: 1, Stride: 1, Pad: 0}
	x1, dy1, dw1, dw1b := rnd(6, 2, 5, 5), rnd(9, 2, 5, 5), rnd(9, 6, 1, 1), rnd(9, 6, 1, 1)
	dwb := rnd(7, 5, 3, 3)
	s, q := rnd(24, 10), rnd(24, 10)
	s2, q2, s3, q3 := rnd(70, 33), rnd(70, 33), rnd(9, 130), rnd(9, 130)
	for i, be := range []compute.Backend{b, ref} {
		pick := func(p pair) compute.Tensor {
			if i == 0 {
				return p.g
			}
			return p.r
		}
		be.Sinkhorn(pick(q), pick(s), 0.05, 3)
		be.MatMul(pick(c), pick(a), pick(m), false, false, 1, 0)
		be.Conv2DGradFilter(pick(dw1), pick(dy1), pick(x1), p1, 0)
		be.Sinkhorn(pick(q2), pick(s2), 0.05, 3)
		be.Conv2D(pick(y), pick(x), pick(w), p)
		be.Conv2DGradInput(pick(dx), pick(dy), pick(w), p)
		be.Conv2DGradFilter(pick(dw), pick(dy), pick(x), p, 0)
		be.Conv2DGradFilter(pick(dw1b), pick(dy1), pick(x1), p1, 1)
		be.Sinkhorn(pick(q3), pick(s3), 0.1, 5)
		be.Fill(pick(rv), 1)
		be.BatchNormTrain(pick(bn), pick(y), pick(gm), pick(bt), pick(mean), pick(inv), pick(rm), pick(rv), 0.1, 1e-5, true)
		be.Conv2DGradFilter(pick(dwb), pick(dy), pick(x), p, 1)
	}
	for _, ck := range []struct {
		what string
		p    pair
	}{{"matmul", c}, {"convolution", y}, {"convolution input gradient", dx}, {"convolution filter gradient", dw},
		{"3x3 filter gradient accumulated after other products", dwb},
		{"1x1 filter gradient", dw1}, {"1x1 filter gradient accumulated after other products", dw1b},
		{"batch norm", bn}, {"sinkhorn", q}, {"sinkhorn on a second shape", q2}, {"sinkhorn on a third shape after other dispatches", q3}} {
		if err := check(ck.what, ck.p); err != nil {
			return err
		}
	}
	// Every other program once (their values are checked by the tests):
	// a uniform the Go side sets and a shader lacks fails here, at start.
	v, v2, v3, col := rnd(6, 10), rnd(6, 10), rnd(6, 10), rnd(6)
	sc, codes, lossT := rnd(4, 10), rnd(4, 10), rnd(1)
	im, pooled, norms := rnd(6, 2, 3, 3), rnd(6, 2), rnd(10)
	b.Fill(v.g, 0.5)
	b.Copy(v2.g, v.g)
	b.CopyColumns(v3.g, 1, v.g, 2, 4)
	b.Axpy(v.g, 2, v2.g)
	b.AddReLU(v3.g, v.g, v2.g)
	b.ReLUBackward(v2.g, v.g, v3.g)
	b.AddBias(v.g, col.g)
	b.SumRows(col.g, v.g, 1)
	b.GlobalAvgPool(pooled.g, im.g)
	b.GlobalAvgPoolBackward(im.g, pooled.g)
	b.L2NormalizeCols(v2.g, norms.g, v.g)
	b.L2NormalizeColsBackward(v3.g, v.g, v2.g, norms.g)
	b.L2NormalizeRows(v.g)
	b.BatchNormInfer(bn.g, y.g, gm.g, bt.g, rm.g, rv.g, 1e-5, true)
	b.BatchNormBackward(dx.g, gm.g, bt.g, dy.g, y.g, bn.g, gm.g, mean.g, inv.g, true)
	b.SwappedCE(lossT.g, codes.g, sc.g, q.g, 0.1, 1)
	b.SoftmaxRows(codes.g, sc.g, 0.1)
	for _, lars := range []bool{false, true} {
		b.SGDStep(v.g, v2.g, v3.g, compute.SGDParams{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-5, LARS: lars, TrustCoef: 1e-3})
	}
	b.Finish()
	return b.Err()
}
