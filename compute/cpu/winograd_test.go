package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/computetest"
)

// withWinograd returns a backend that sends 3x3 stride-1 convolutions of
// at least min channels through Winograd (0: none).
func withWinograd(min int) *Backend {
	b := New()
	b.winogradMin = min
	return b
}

// TestWinogradMatchesLowering compares the Winograd path with the lowered
// one, forward and input gradient, on odd shapes: channel counts that are
// no block size, images of 1-3 pixels and odd sides (partial tiles).
func TestWinogradMatchesLowering(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	wino, ref := withWinograd(1), withWinograd(0)
	rng := rand.New(rand.NewPCG(9, 10))
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	for _, c := range []int{1, 5, 17} {
		for _, co := range []int{3, 16} {
			for _, hw := range [][2]int{{1, 1}, {2, 3}, {3, 2}, {5, 7}, {8, 8}} {
				n := 3
				name := fmt.Sprintf("C%d Co%d %dx%d", c, co, hw[0], hw[1])
				x, w, dy := randSlice(rng, c*n*hw[0]*hw[1]), randSlice(rng, co*c*9), randSlice(rng, co*n*hw[0]*hw[1])
				var out [2][2][]float32
				for i, b := range []*Backend{wino, ref} {
					xt, wt, dyt := b.New(c, n, hw[0], hw[1]), b.New(co, c, 3, 3), b.New(co, n, hw[0], hw[1])
					b.Upload(xt, x)
					b.Upload(wt, w)
					b.Upload(dyt, dy)
					y, dx := b.New(co, n, hw[0], hw[1]), b.New(c, n, hw[0], hw[1])
					b.Upload(dx, randSlice(rng, dx.Len())) // stale values must not leak through
					b.Conv2D(y, xt, wt, p)
					b.Conv2DGradInput(dx, dyt, wt, p)
					out[i] = [2][]float32{data(y), data(dx)}
				}
				for k, what := range []string{"forward", "input gradient"} {
					if d := computetest.RelDiff(out[0][k], out[1][k]); d > 1e-5 {
						t.Fatalf("%s %s: Winograd differs from the lowering by %.2g", name, what, d)
					}
				}
			}
		}
	}
}

// Winograd everywhere it applies, through the shared suites: the parity
// test against the lowering on the network's shapes, and finite-difference
// gradients (the 3x3 stride-1 case among them).
func TestWinogradParity(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	computetest.TestParity(t, withWinograd(0), withWinograd(1), 1e-5)
}

func TestWinogradFiniteDifferenceGradients(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	computetest.TestGradients(t, withWinograd(1))
}
