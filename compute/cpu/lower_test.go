package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
)

// TestLoweringMatchesGo compares the lowering this build uses (C with cgo)
// with the Go reference, exactly, on odd shapes: channel counts that are
// no block size, images of 1-3 pixels, strides 1-3, padding wider than
// the kernel's reach, and a chunk of images that starts past the first.
func TestLoweringMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []int{1, 3, 5} {
		for _, hw := range [][2]int{{1, 1}, {2, 3}, {3, 2}, {7, 5}, {12, 12}} {
			for _, p := range []compute.ConvParams{{Kernel: 1, Stride: 2}, {Kernel: 3, Stride: 1, Pad: 1}, {Kernel: 3, Stride: 2, Pad: 1},
				{Kernel: 3, Stride: 1}, {Kernel: 5, Stride: 3, Pad: 2}, {Kernel: 2, Stride: 1, Pad: 3}} {
				g := convGeom{C: c, N: 3, H: hw[0], W: hw[1], Co: 2, p: p}
				g.Ho, g.Wo = p.OutSize(g.H), p.OutSize(g.W)
				if g.Ho < 1 || g.Wo < 1 {
					continue
				}
				name := fmt.Sprintf("C%d %dx%d %+v", c, g.H, g.W, p)
				n0, n1 := 1, 3
				x := randSlice(rng, c*g.N*g.H*g.W)
				ld := (n1-n0)*g.Ho*g.Wo + 3 // rows apart by more than their length
				size := g.rows() * ld
				got := randSlice(rng, size)
				want := append([]float32(nil), got...) // stale values must be overwritten, padding kept
				im2col(got, ld, x, g, n0, n1)
				im2colRowsGo(want, ld, x, g, n0, n1, 0, g.rows())
				equal(t, name+" im2col", got, want)

				col := randSlice(rng, size)
				dx := randSlice(rng, len(x))
				dxWant := append([]float32(nil), dx...)
				col2im(dx, col, ld, g, n0, n1)
				col2imChannelsGo(dxWant, col, ld, g, n0, n1, 0, g.C)
				equal(t, name+" col2im", dx, dxWant)
			}
		}
	}
}

func equal(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}
