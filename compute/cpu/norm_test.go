package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/swavd/swavd/compute"
)

// TestBatchNormRowsMatchGo compares the batch-norm row loops this build
// uses (C with cgo) with the Go reference, on lengths around the vector
// widths, with and without the fused ReLU, including values of y exactly
// 0 (masked) and NaN (not masked, as in Go).
func TestBatchNormRowsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []int{1, 3, 4, 7, 8, 9, 17, 32, 33, 70, 1000} { // around the vectors and the C loops' steps of 32
		x, dy, y := randSlice(rng, m), randSlice(rng, m), randSlice(rng, m)
		for i := range x {
			x[i] = 3 + 2*x[i] // far from zero, as activations are
		}
		y[0] = 0
		if m > 2 {
			y[2] = float32(math.NaN())
		}
		s, ss := rowMoments(x)
		ws, wss := rowMomentsGo(x)
		close64(t, fmt.Sprintf("M=%d sum", m), s, ws)
		close64(t, fmt.Sprintf("M=%d squared deviations", m), ss, wss)
		for _, relu := range []bool{false, true} {
			name := fmt.Sprintf("M=%d relu=%v", m, relu)
			got, want := make([]float32, m), make([]float32, m)
			normalizeRow(got, x, nil, 2.9, 0.7, -0.2, relu)
			normalizeRowGo(want, x, nil, 2.9, 0.7, -0.2, relu)
			close32(t, name+" normalize", got, want)
			normalizeRow(got, x, dy, 2.9, 0.7, -0.2, relu) // dy as a residual
			normalizeRowGo(want, x, dy, 2.9, 0.7, -0.2, relu)
			close32(t, name+" normalize with a residual", got, want)

			var yr []float32
			if relu {
				yr = y
			}
			sg, sgx := bnBackwardRow(got, x, dy, yr, 2.9, 0.7, 1.3)
			wsg, wsgx := bnBackwardRowGo(want, x, dy, yr, 2.9, 0.7, 1.3)
			close64(t, name+" sum g", sg, wsg)
			close64(t, name+" sum g*xhat", sgx, wsgx)
			close32(t, name+" dx", got, want)
		}
	}
}

// TestBatchNormAddReLUMatchesTwoPasses: batch norm with the residual add
// and ReLU in one pass gives what BatchNormTrain (no ReLU) and AddReLU give
// one after the other, and the same statistics; so does the inference form.
func TestBatchNormAddReLUMatchesTwoPasses(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	be := New()
	for _, shape := range [][]int{{3, 2, 5, 5}, {16, 7, 4, 4}, {5, 70}} {
		x, res := be.New(shape...), be.New(shape...)
		be.Upload(x, randSlice(rng, x.Len()))
		be.Upload(res, randSlice(rng, res.Len()))
		c := shape[0]
		vecs := func() []compute.Tensor {
			v := make([]compute.Tensor, 4) // gamma, beta, running mean, running variance
			for i := range v {
				v[i] = be.New(c)
			}
			be.Upload(v[0], randSlice(rng, c))
			be.Upload(v[1], randSlice(rng, c))
			be.Upload(v[3], slices.Repeat([]float32{1}, c))
			return v
		}
		one, two := vecs(), vecs()
		for i := range one {
			be.Upload(two[i], host(be, one[i]))
		}
		fused, y, sum := be.New(shape...), be.New(shape...), be.New(shape...)
		m1, s1, m2, s2 := be.New(c), be.New(c), be.New(c), be.New(c)
		be.BatchNormTrainAddReLU(fused, x, res, one[0], one[1], m1, s1, one[2], one[3], 0.1, 1e-5)
		be.BatchNormTrain(y, x, two[0], two[1], m2, s2, two[2], two[3], 0.1, 1e-5, false)
		be.AddReLU(sum, y, res)
		name := fmt.Sprint(shape)
		close32(t, name+" train", host(be, fused), host(be, sum))
		for i, pair := range [][2]compute.Tensor{{m1, m2}, {s1, s2}, {one[2], two[2]}, {one[3], two[3]}} {
			close32(t, fmt.Sprintf("%s statistics %d", name, i), host(be, pair[0]), host(be, pair[1]))
		}
		be.BatchNormInferAddReLU(fused, x, res, one[0], one[1], one[2], one[3], 1e-5)
		be.BatchNormInfer(y, x, one[0], one[1], one[2], one[3], 1e-5, false)
		be.AddReLU(sum, y, res)
		close32(t, name+" inference", host(be, fused), host(be, sum))
		zeros := 0
		for _, v := range host(be, fused) {
			if v == 0 {
				zeros++
			}
		}
		if zeros == 0 || zeros == x.Len() {
			t.Fatalf("%s: %d of %d outputs are 0: the ReLU was not exercised", name, zeros, x.Len())
		}
	}
}

// host is t's contents.
func host(be *Backend, t compute.Tensor) []float32 {
	d := make([]float32, t.Len())
	be.Download(d, t)
	return d
}

func close64(t *testing.T, what string, got, want float64) {
	t.Helper()
	if d := math.Abs(got - want); d > 1e-12*(1+math.Abs(want)) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// close32 allows a few units in the last place: C may fuse a multiply-add
// that Go does not, or the other way round.
func close32(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) || math.Abs(g-w) > 1e-6*(1+math.Abs(w)) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// BenchmarkBatchNorm times batch norm with its ReLU, forward (statistics
// and normalization) and backward, at edge-small's shapes in a training
// step at batch 64 (the global crops: 128 images).
func BenchmarkBatchNorm(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	be := New()
	for _, s := range []struct{ c, hw int }{{32, 32}, {64, 16}, {128, 8}} {
		const n = 128
		x, y, dx, dy := be.New(s.c, n, s.hw, s.hw), be.New(s.c, n, s.hw, s.hw), be.New(s.c, n, s.hw, s.hw), be.New(s.c, n, s.hw, s.hw)
		vec := func() compute.Tensor { return be.New(s.c) }
		gamma, beta, mean, invStd, runMean, runVar, dgamma, dbeta := vec(), vec(), vec(), vec(), vec(), vec(), vec(), vec()
		be.Upload(x, randSlice(rng, x.Len()))
		be.Upload(dy, randSlice(rng, dy.Len()))
		be.Upload(gamma, randSlice(rng, s.c))
		be.Upload(runVar, randSlice(rng, s.c))
		b.Run(fmt.Sprintf("%dx%dx%d/forward", s.c, s.hw, s.hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				be.BatchNormTrain(y, x, gamma, beta, mean, invStd, runMean, runVar, 0.1, 1e-5, true)
			}
		})
		b.Run(fmt.Sprintf("%dx%dx%d/backward", s.c, s.hw, s.hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				be.BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, invStd, true)
			}
		})
		// A residual block's end, dy standing in for the shortcut: batch
		// norm then AddReLU, against the two in one pass.
		b.Run(fmt.Sprintf("%dx%dx%d/add-relu-two-passes", s.c, s.hw, s.hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				be.BatchNormTrain(y, x, gamma, beta, mean, invStd, runMean, runVar, 0.1, 1e-5, false)
				be.AddReLU(dx, y, dy)
			}
		})
		b.Run(fmt.Sprintf("%dx%dx%d/add-relu-fused", s.c, s.hw, s.hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				be.BatchNormTrainAddReLU(dx, x, dy, gamma, beta, mean, invStd, runMean, runVar, 0.1, 1e-5)
			}
		})
		be.Release(x, y, dx, dy, gamma, beta, mean, invStd, runMean, runVar, dgamma, dbeta)
	}
}
