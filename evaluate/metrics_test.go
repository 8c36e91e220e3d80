package evaluate

import (
	"math"
	"testing"

	"github.com/swavd/swavd/compute/cpu"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Values from scikit-learn's documentation and by hand.
func TestNMIAndARI(t *testing.T) {
	cases := []struct {
		a, b     []int
		nmi, ari float64
	}{
		{[]int{0, 0, 1, 1}, []int{0, 0, 1, 1}, 1, 1},
		{[]int{0, 0, 1, 1}, []int{1, 1, 0, 0}, 1, 1},
		{[]int{0, 0, 1, 2}, []int{0, 0, 1, 1}, 0.8, 0.5714285714285715},
		{[]int{0, 0, 0, 0}, []int{0, 1, 2, 3}, 0, 0},
		{[]int{0, 0, 1, 1}, []int{0, 1, 0, 1}, 0, -0.5},
	}
	for _, c := range cases {
		if got := NMI(c.a, c.b); !near(got, c.nmi) {
			t.Errorf("NMI(%v, %v) = %v, want %v", c.a, c.b, got, c.nmi)
		}
		if got := ARI(c.a, c.b); !near(got, c.ari) {
			t.Errorf("ARI(%v, %v) = %v, want %v", c.a, c.b, got, c.ari)
		}
	}
	if Distinct([]int{3, 3, 1, 7}) != 3 {
		t.Error("Distinct")
	}
}

// TestKNN: two well separated classes on a circle; each test point's 3
// nearest neighbours share its label, except one deliberately ambiguous point.
func TestKNN(t *testing.T) {
	mk := func(angles []float64, labels []int) *Embedding {
		e := &Embedding{D: 2, Labels: labels}
		for _, a := range angles {
			e.Features = append(e.Features, float32(math.Cos(a)), float32(math.Sin(a)))
		}
		return e
	}
	bank := mk([]float64{0, 0.1, 0.2, 3.0, 3.1, 3.2}, []int{0, 0, 0, 1, 1, 1})
	test := mk([]float64{0.05, 3.05, 0.15, 1.62}, []int{0, 1, 0, 1})
	// 1.62 rad is 1.38 from the nearest class-1 point and 1.42 from the
	// nearest class-0 one: two of its three neighbours, and the larger
	// weights, are class 1.
	acc := KNN(cpu.New(), bank, test, 3, 0.07)
	if !near(acc, 1) {
		t.Errorf("kNN accuracy %v, want 1", acc)
	}
	acc = KNN(cpu.New(), bank, mk([]float64{0.05}, []int{1}), 3, 0.07)
	if acc != 0 {
		t.Errorf("kNN accuracy on a mislabelled point %v, want 0", acc)
	}
}
