package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/computetest"
)

// withWinograd returns a backend that sends 3x3 stride-1 convolutions of
// at least min channels through Winograd (0: none), however few tiles.
func withWinograd(min int) *Backend {
	b := New()
	b.winogradMin, b.winogradMinTiles = min, 0
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

// TestLargeScratchSharesOneLength: the lowerings and Winograd transforms of
// layers of different shapes all take scratch buffers of one length, so the
// pool keeps one buffer for them instead of one per shape.
func TestLargeScratchSharesOneLength(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	b := New()
	tensors := map[int]bool{} // lengths of the layers' own tensors, not scratch
	for _, s := range []struct{ c, n, hw, co, stride int }{{64, 16, 32, 64, 2}, {32, 64, 16, 32, 1}, {64, 48, 32, 64, 1}, {3, 48, 32, 32, 1}} {
		p := compute.ConvParams{Kernel: 3, Stride: s.stride, Pad: 1}
		ho := p.OutSize(s.hw)
		x, w, y := b.New(s.c, s.n, s.hw, s.hw), b.New(s.co, s.c, 3, 3), b.New(s.co, s.n, ho, ho)
		b.Conv2D(y, x, w, p)
		b.Conv2DGradFilter(w, y, x, p, 0)
		b.Conv2DGradInput(x, y, w, p)
		for _, v := range []compute.Tensor{x, w, y} {
			tensors[v.Len()] = true
		}
		b.Release(x, w, y)
	}
	var large []int
	for n, l := range b.free {
		if n > colBudget/4 && len(l) > 0 && !tensors[n] {
			large = append(large, n)
		}
	}
	if len(large) != 1 || large[0] != colBudget || colBudget != winogradBudget {
		t.Fatalf("large scratch lengths in the pool: %v, want only %d", large, colBudget)
	}
}
