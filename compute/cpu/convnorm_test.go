package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
)

// TestConvNormInferMatchesSeparatePasses compares the convolution with
// inference batch norm, residual and ReLU applied as it writes its output
// against Conv2D, then BatchNormInfer, then the add and ReLU, on every
// path a convolution takes: Winograd a block per core and in planes (large
// images, images narrow enough to go side by side, partial tiles), the
// lowering a block per core and in chunks (strides 1 and 2), and 1x1.
// The epilogue computes the same expressions, so the values must be the
// same bit for bit.
func TestConvNormInferMatchesSeparatePasses(t *testing.T) {
	planes, chunks := withWinograd(1), withWinograd(0)
	planes.winogradPlanes = true
	chunks.lowerChunks = true
	backends := map[string]*Backend{"winograd blocks": withWinograd(1), "winograd planes": planes, "lowered blocks": withWinograd(0), "lowered chunks": chunks}
	type shape struct{ c, co, hw, n, k, s int }
	shapes := []shape{
		{5, 16, 9, 3, 3, 1}, {17, 3, 17, 3, 3, 1}, {16, 16, 32, 40, 3, 1}, // Winograd: wide images, partial tiles, several chunks
		{5, 16, 4, 70, 3, 1}, {3, 16, 5, 70, 3, 1}, {16, 16, 1, 3, 3, 1}, // narrow images side by side, 1 pixel
		{5, 16, 9, 3, 3, 2}, {32, 64, 16, 8, 3, 2}, {3, 32, 8, 2, 3, 2}, // stride 2
		{17, 5, 6, 3, 1, 1}, {32, 64, 8, 4, 1, 2}, // 1x1
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for name, be := range backends {
		for _, sh := range shapes {
			p := compute.ConvParams{Kernel: sh.k, Stride: sh.s, Pad: sh.k / 2}
			ho := p.OutSize(sh.hw)
			x, w := be.New(sh.c, sh.n, sh.hw, sh.hw), be.New(sh.co, sh.c, sh.k, sh.k)
			res, conv, ref, fused := be.New(sh.co, sh.n, ho, ho), be.New(sh.co, sh.n, ho, ho), be.New(sh.co, sh.n, ho, ho), be.New(sh.co, sh.n, ho, ho)
			gamma, beta, mean, variance := be.New(sh.co), be.New(sh.co), be.New(sh.co), be.New(sh.co)
			for _, t := range []compute.Tensor{x, w, res, gamma, beta, mean} {
				be.Upload(t, randSlice(rng, t.Len()))
			}
			v := make([]float32, sh.co)
			for i := range v {
				v[i] = 0.1 + 2*rng.Float32() // running variances, some below 1, some above
			}
			be.Upload(variance, v)
			be.Conv2D(conv, x, w, p)
			for _, withRes := range []bool{false, true} {
				for _, relu := range []bool{false, true} {
					what := fmt.Sprintf("%s %+v residual %v relu %v", name, sh, withRes, relu)
					var r compute.Tensor
					if withRes {
						r = res
					}
					be.Conv2DNormInfer(fused, x, w, p, gamma, beta, mean, variance, 1e-5, r, relu)
					want := separatePasses(be, ref, conv, r, gamma, beta, mean, variance, relu)
					got := host(be, fused)
					equal(t, what, got, want)
					if zeros := countZeros(got); relu && (zeros == 0 || zeros == len(got)) {
						t.Fatalf("%s: %d of %d outputs are 0: the ReLU was not exercised", what, zeros, len(got))
					}
				}
			}
			be.Release(x, w, res, conv, ref, fused, gamma, beta, mean, variance)
		}
	}
}

// separatePasses is BN(conv) (+ res) (ReLU) the way the model computes it
// without compute.ConvNormInfer: the batch norm pass, then the residual
// add (and ReLU) in a second pass, or both in one through ResidualNorm.
func separatePasses(be *Backend, y, conv, res, gamma, beta, mean, variance compute.Tensor, relu bool) []float32 {
	switch {
	case res == nil:
		be.BatchNormInfer(y, conv, gamma, beta, mean, variance, 1e-5, relu)
	case relu:
		be.BatchNormInferAddReLU(y, conv, res, gamma, beta, mean, variance, 1e-5)
	default:
		be.BatchNormInfer(y, conv, gamma, beta, mean, variance, 1e-5, false)
		out, r := host(be, y), host(be, res)
		for i := range out {
			out[i] += r[i]
		}
		return out
	}
	return host(be, y)
}

func countZeros(v []float32) int {
	n := 0
	for _, x := range v {
		if x == 0 {
			n++
		}
	}
	return n
}
