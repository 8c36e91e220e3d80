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

// withWinograd returns a backend that sends 3x3 stride-1 convolutions of
// at least min channels through Winograd (0: none), however few tiles.
func withWinograd(min int) *Backend {
	b := New()
	b.winogradMin, b.winogradMinPixels = min, 0
	return b
}

// TestWinogradMatchesLowering compares the Winograd path with the lowered
// one, forward, input gradient and filter gradient (overwritten and
// accumulated), on odd shapes: channel counts that are no block size,
// images of 1-3 pixels and odd sides (partial tiles), and a batch the
// transforms take in several chunks.
func TestWinogradMatchesLowering(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	planes := withWinograd(1)
	planes.winogradPlanes = true
	for _, wino := range []*Backend{withWinograd(1), planes} {
		testWinogradMatchesLowering(t, wino)
	}
}

func testWinogradMatchesLowering(t *testing.T, wino *Backend) {
	ref := withWinograd(0)
	rng := rand.New(rand.NewPCG(9, 10))
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	type shape struct{ c, co, h, w, n int }
	var shapes []shape
	for _, c := range []int{1, 5, 17} {
		for _, co := range []int{3, 16} {
			for _, hw := range [][2]int{{1, 1}, {2, 3}, {3, 2}, {5, 7}, {8, 8}, {9, 10}, {17, 18}, {13, 30}, {3, 24}, {16, 16}, {14, 16}, {9, 16}, {12, 20}} {
				shapes = append(shapes, shape{c, co, hw[0], hw[1], 3})
			}
		}
	}
	shapes = append(shapes, shape{16, 16, 64, 63, 40}) // several chunks of images
	// Small images go through the transforms side by side, 64 at most:
	// more than that in one chunk (planes) or block.
	shapes = append(shapes, shape{5, 16, 4, 4, 70}, shape{3, 16, 5, 6, 70})
	for _, sh := range shapes {
		g := convGeom{C: sh.c, N: sh.n, H: sh.h, W: sh.w, Co: sh.co, Ho: sh.h, Wo: sh.w}
		if chunks := chunksOf(wino, g); sh.n == 40 && chunks < 2 {
			t.Fatalf("%+v is taken in %d chunk, want several", sh, chunks)
		}
		cores := runtime.GOMAXPROCS(0)
		want := !wino.winogradPlanes && sh.n >= cores // a block per core at least
		if bl, fused := wino.blocking(g, winogradBlockBudget); fused != want || (fused && bl.n < min(sh.n, 2*cores)) {
			t.Fatalf("%+v: fused %v in %d blocks, want fused %v in at least two blocks per core (or one per image)", sh, fused, bl.n, want)
		}
		name := fmt.Sprintf("C%d Co%d %dx%d N%d planes %v", sh.c, sh.co, sh.h, sh.w, sh.n, wino.winogradPlanes)
		g.p = p
		x, w, dy := randSlice(rng, sh.c*sh.n*sh.h*sh.w), randSlice(rng, sh.co*sh.c*9), randSlice(rng, sh.co*sh.n*sh.h*sh.w)
		dw0 := randSlice(rng, sh.co*sh.c*9)
		compareConvProducts(t, name+": Winograd differs from the lowering",
			convProducts(wino, rng, g, x, w, dy, dw0), convProducts(ref, rng, g, x, w, dy, dw0))
	}
}

// TestWinogradNeighboursApart: small images go through the transforms side
// by side, and larger ones are read in place, so a tile on an image's edge
// sits next to its neighbour's pixels. An infinite pixel on both edges of
// one image must not reach the other images' outputs (forward, and input
// gradient from such a dy).
func TestWinogradNeighboursApart(t *testing.T) {
	if !haveWinograd {
		t.Skip("built without cgo: no Winograd path")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	for _, planes := range []bool{false, true} {
		be := withWinograd(1)
		be.winogradPlanes = planes
		for _, hw := range [][2]int{{4, 4}, {5, 7}, {6, 6}, {16, 16}, {8, 32}, {12, 20}} {
			c, co, n, h, w := 3, 4, 5, hw[0], hw[1]
			xs := randSlice(rng, c*n*h*w)
			for ch := 0; ch < c; ch++ {
				for r := 0; r < h; r++ {
					row := ((ch*n+2)*h + r) * w
					xs[row], xs[row+w-1] = float32(math.Inf(1)), float32(math.Inf(-1))
				}
			}
			x, wt, y := be.New(c, n, h, w), be.New(co, c, 3, 3), be.New(co, n, h, w)
			be.Upload(x, xs)
			be.Upload(wt, randSlice(rng, wt.Len()))
			be.Conv2D(y, x, wt, p)
			ys := make([]float32, y.Len())
			be.Download(ys, y)
			dx := be.New(co, n, h, w) // the input gradient of a co->... conv: same transform of x as dy
			wt2 := be.New(c, co, 3, 3)
			be.Upload(wt2, randSlice(rng, wt2.Len()))
			be.Conv2DGradInput(dx, x, wt2, p)
			dxs := make([]float32, dx.Len())
			be.Download(dxs, dx)
			for name, out := range map[string][]float32{"forward": ys, "input gradient": dxs} {
				for o := 0; o < co; o++ {
					for img := 0; img < n; img++ {
						for i, v := range out[((o*n+img)*h)*w : ((o*n+img+1)*h)*w] {
							if img != 2 && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
								t.Fatalf("%dx%d planes %v %s: image %d, channel %d, pixel %d is %v: image 2's edge leaked", h, w, planes, name, img, o, i, v)
							}
						}
					}
				}
			}
			be.Release(x, wt, y, dx, wt2)
		}
	}
}

// chunksOf counts the chunks Winograd takes a batch in when its planes
// are split over the cores, or the blocks when the path is fused.
func chunksOf(b *Backend, g convGeom) int {
	if bl, ok := b.blocking(g, winogradBlockBudget); ok {
		return bl.n
	}
	chunks := 0
	b.winogradChunks(g, func(wChunk) { chunks++ })
	return chunks
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

// planesBackend is the default backend with the fused Winograd path off.
func planesBackend() *Backend {
	b := New()
	b.winogradPlanes = true
	return b
}

// BenchmarkConv3x3 times the three products of a 3x3 stride-1 layer of
// edge-small's first stage at batch 64 (32 channels, 32x32 global crops),
// through Winograd (fused, and with its planes split over the cores) and
// through the lowering, side by side. GFLOP/s counts
// the direct convolution's multiply-adds, so the two compare as speed.
func BenchmarkConv3x3(b *testing.B) {
	if !haveWinograd {
		b.Skip("built without cgo: no Winograd path")
	}
	const c, n, hw = 32, 64, 32
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, path := range []struct {
		name string
		be   *Backend
	}{{"winograd", New()}, {"winograd-planes", planesBackend()}, {"lowered", withWinograd(0)}} {
		be := path.be
		x, w, y := be.New(c, n, hw, hw), be.New(c, c, 3, 3), be.New(c, n, hw, hw)
		be.Upload(x, randSlice(rng, x.Len()))
		be.Upload(w, randSlice(rng, w.Len()))
		be.Upload(y, randSlice(rng, y.Len()))
		dx, dw := be.New(c, n, hw, hw), be.New(c, c, 3, 3)
		for _, op := range convOps(be, y, x, w, dx, dw, p) {
			b.Run(op.name+"/"+path.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					op.run()
				}
				b.ReportMetric(2*float64(c*c*9*n*hw*hw)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
