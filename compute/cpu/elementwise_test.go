package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestElementwiseMatchesGo compares add+ReLU and its backward in this build
// (C with cgo) with the Go reference, exactly, on lengths around the vector
// widths, with zeros, negative zero and NaN among the values; and axpy, to
// the last bit or two.
func TestElementwiseMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 3, 4, 7, 8, 9, 33, 1000} {
		a, c, dy := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
		a[0], c[0] = 0, float32(math.Copysign(0, -1))
		if n > 2 {
			a[2] = float32(math.NaN())
		}
		got, want := make([]float32, n), make([]float32, n)
		addReLU(got, a, c)
		addReLUGo(want, a, c)
		same(t, fmt.Sprintf("n=%d add+relu", n), got, want)
		reluBackward(got, dy, want) // want is a ReLU output: zeros, NaN and positives
		dxWant := make([]float32, n)
		reluBackwardGo(dxWant, dy, want)
		same(t, fmt.Sprintf("n=%d relu backward", n), got, dxWant)
		copy(got, a)
		copy(want, a)
		axpy(got, -0.7, dy)
		axpyGo(want, -0.7, dy)
		for i := range want { // a fused multiply-add may round once where Go rounds twice
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
				t.Fatalf("n=%d axpy: element %d = %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}

// same compares bit for bit, NaN included.
func same(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}
