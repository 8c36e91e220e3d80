package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/computetest"
)

// TestLoweringMatchesGo compares the lowering this build uses (C with cgo)
// with the Go reference, exactly, on odd shapes: channel counts that are
// no block size, images of 1-3 pixels, rows long enough for the vector
// loops, strides 1-3, padding wider than the kernel's reach, and a chunk
// of images that starts past the first.
func TestLoweringMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []int{1, 3, 5} {
		for _, hw := range [][2]int{{1, 1}, {2, 3}, {3, 2}, {7, 5}, {12, 12}, {5, 40}, {9, 33}, {16, 32}, {8, 8}, {6, 18}, {4, 10}} {
			for _, p := range []compute.ConvParams{{Kernel: 1, Stride: 2}, {Kernel: 3, Stride: 1, Pad: 1}, {Kernel: 3, Stride: 2, Pad: 1},
				{Kernel: 3, Stride: 1}, {Kernel: 5, Stride: 3, Pad: 2}, {Kernel: 2, Stride: 1, Pad: 3}, {Kernel: 4, Stride: 2, Pad: 3}} {
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

// TestLoweredBlocksMatchChunks compares the lowered convolutions done a
// block of images per core (the default) with the same done a chunk at a
// time, each step split over the cores, forward, input gradient and filter
// gradient (overwritten and accumulated), on odd shapes: channel counts
// that are no block size, images of 1-3 pixels, strides 1 and 2, and
// batches of a block per image and of several images per block.
func TestLoweredBlocksMatchChunks(t *testing.T) {
	blocks, chunks := withWinograd(0), withWinograd(0)
	chunks.lowerChunks = true
	rng := rand.New(rand.NewPCG(11, 12))
	cores := runtime.GOMAXPROCS(0)
	for _, n := range []int{3, 40} {
		for _, c := range []int{1, 5, 17} {
			for _, hw := range [][2]int{{1, 1}, {2, 3}, {7, 5}, {12, 12}} {
				for _, p := range []compute.ConvParams{{Kernel: 3, Stride: 1, Pad: 1}, {Kernel: 3, Stride: 2, Pad: 1}, {Kernel: 1, Stride: 2}} {
					co := 3 + c%4
					g := convGeom{C: c, N: n, H: hw[0], W: hw[1], Co: co, p: p}
					g.Ho, g.Wo = p.OutSize(g.H), p.OutSize(g.W)
					name := fmt.Sprintf("C%d Co%d %dx%d N%d %+v", c, co, g.H, g.W, n, p)
					if blocked := blocks.lowerBlocks(g, anyCore, func(int, int, int, []float32, int) {}); blocked != (n >= cores) {
						t.Fatalf("%s: in blocks %v, want %v", name, blocked, n >= cores)
					}
					x, w, dy := randSlice(rng, c*n*g.H*g.W), randSlice(rng, co*c*g.p.Kernel*g.p.Kernel), randSlice(rng, co*n*g.Ho*g.Wo)
					dw0 := randSlice(rng, len(w))
					compareConvProducts(t, name+": blocks differ from chunks",
						convProducts(blocks, rng, g, x, w, dy, dw0), convProducts(chunks, rng, g, x, w, dy, dw0))
				}
			}
		}
	}
}

// convProducts runs the three products of the convolution g on b: y,
// the input gradient dx, and the filter gradient with beta 0, each over
// stale values with a NaN among them, which must not leak through; and
// the filter gradient with beta 1, onto dw0.
func convProducts(b *Backend, rng *rand.Rand, g convGeom, x, w, dy, dw0 []float32) [4][]float32 {
	k := g.p.Kernel
	xt, wt, dyt := b.New(g.C, g.N, g.H, g.W), b.New(g.Co, g.C, k, k), b.New(g.Co, g.N, g.Ho, g.Wo)
	b.Upload(xt, x)
	b.Upload(wt, w)
	b.Upload(dyt, dy)
	stale := func(n int) []float32 {
		s := randSlice(rng, n)
		s[n/2] = float32(math.NaN())
		return s
	}
	y, dx := b.New(g.Co, g.N, g.Ho, g.Wo), b.New(g.C, g.N, g.H, g.W)
	b.Upload(y, stale(y.Len()))
	b.Upload(dx, stale(dx.Len()))
	b.Conv2D(y, xt, wt, g.p)
	b.Conv2DGradInput(dx, dyt, wt, g.p)
	dw, dwAcc := b.New(g.Co, g.C, k, k), b.New(g.Co, g.C, k, k)
	b.Upload(dw, stale(dw.Len()))
	b.Upload(dwAcc, dw0)
	b.Conv2DGradFilter(dw, dyt, xt, g.p, 0)
	b.Conv2DGradFilter(dwAcc, dyt, xt, g.p, 1)
	return [4][]float32{data(y), data(dx), data(dw), data(dwAcc)}
}

// compareConvProducts fails where two runs of convProducts differ by more
// than 1e-5 in relative norm, or either has a NaN.
func compareConvProducts(t *testing.T, what string, got, want [4][]float32) {
	t.Helper()
	for k, product := range []string{"forward", "input gradient", "filter gradient", "accumulated filter gradient"} {
		if d := computetest.RelDiff(got[k], want[k]); !(d <= 1e-5) { // NaN fails too
			t.Fatalf("%s, %s: by %.2g", what, product, d)
		}
	}
}

// convOps names the three products of one convolution for a benchmark.
func convOps(be *Backend, y, x, w, dx, dw compute.Tensor, p compute.ConvParams) []struct {
	name string
	run  func()
} {
	return []struct {
		name string
		run  func()
	}{
		{"forward", func() { be.Conv2D(y, x, w, p) }},
		{"grad-input", func() { be.Conv2DGradInput(dx, y, w, p) }},
		{"grad-filter", func() { be.Conv2DGradFilter(dw, y, x, p, 0) }},
	}
}
