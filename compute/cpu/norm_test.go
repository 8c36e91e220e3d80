package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestBatchNormRowsMatchGo compares the batch-norm row loops this build
// uses (C with cgo) with the Go reference, on lengths around the vector
// widths, with and without the fused ReLU, including values of y exactly
// 0 (masked) and NaN (not masked, as in Go).
func TestBatchNormRowsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []int{1, 3, 4, 7, 8, 9, 17, 1000} {
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
			normalizeRow(got, x, 2.9, 0.7, -0.2, relu)
			normalizeRowGo(want, x, 2.9, 0.7, -0.2, relu)
			close32(t, name+" normalize", got, want)

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
