package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
)

// BenchmarkEdgeSmallLayers times the three products (forward, input
// gradient, filter gradient) of every convolution of edge-small's encoder,
// at the shapes of a training step at batch 64: the two global crops
// (128 images of 32x32) and the four local ones (256 of 16x16). Where a
// step's time goes, layer by layer; the stem's input gradient is never
// computed in training, but is timed alike.
func BenchmarkEdgeSmallLayers(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	be := New()
	for _, crops := range []struct{ n, hw int }{{128, 32}, {256, 16}} {
		for _, l := range []struct{ c, co, div, k, s int }{
			{3, 32, 1, 3, 1}, {32, 32, 1, 3, 1}, {32, 64, 1, 3, 2}, {32, 64, 1, 1, 2},
			{64, 64, 2, 3, 1}, {64, 128, 2, 3, 2}, {64, 128, 2, 1, 2}, {128, 128, 4, 3, 1},
		} {
			hw := crops.hw / l.div
			p := compute.ConvParams{Kernel: l.k, Stride: l.s, Pad: l.k / 2}
			ho := p.OutSize(hw)
			x, w, y := be.New(l.c, crops.n, hw, hw), be.New(l.co, l.c, l.k, l.k), be.New(l.co, crops.n, ho, ho)
			dx, dw := be.New(l.c, crops.n, hw, hw), be.New(l.co, l.c, l.k, l.k)
			be.Upload(x, randSlice(rng, x.Len()))
			be.Upload(w, randSlice(rng, w.Len()))
			be.Upload(y, randSlice(rng, y.Len()))
			flop := 2 * float64(l.c*l.co*l.k*l.k*crops.n*ho*ho)
			for _, op := range convOps(be, y, x, w, dx, dw, p) {
				b.Run(fmt.Sprintf("N%d/%dto%d/%dx%d/k%ds%d/%s", crops.n, l.c, l.co, hw, hw, l.k, l.s, op.name), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						op.run()
					}
					b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
			be.Release(x, w, y, dx, dw)
		}
	}
}
