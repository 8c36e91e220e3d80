package gl

import (
	"fmt"
	"testing"

	"github.com/swavd/swavd/compute"
)

// BenchmarkConv times the three products of a 3x3 convolution on layers of
// edge-small's first and third stages (16 images of 32x32 and 8x8) and
// reports GFLOP/s; the GPU is finished after each, so it is the shaders'
// time.
func BenchmarkConv(b *testing.B) {
	be := backendOrSkip(b, GL43)
	for _, l := range []struct{ c, n, hw int }{{32, 16, 32}, {128, 16, 8}} {
		b.Run(fmt.Sprintf("%dx%dx%d", l.c, l.hw, l.hw), func(b *testing.B) { benchConv(b, be, l.c, l.n, l.hw) })
	}
}

func benchConv(b *testing.B, be *Backend, c, n, hw int) {
	co := c
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	x, w := be.New(c, n, hw, hw), be.New(co, c, 3, 3)
	y, dy, dx, dw := be.New(co, n, hw, hw), be.New(co, n, hw, hw), be.New(c, n, hw, hw), be.New(co, c, 3, 3)
	defer be.Release(x, w, y, dy, dx, dw)
	flops := 2.0 * float64(co*c*9*n*hw*hw)
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"forward", func() { be.Conv2D(y, x, w, p) }},
		{"input-gradient", func() { be.Conv2DGradInput(dx, dy, w, p) }},
		{"filter-gradient", func() { be.Conv2DGradFilter(dw, dy, x, p, 0) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				tc.run()
				be.Finish()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	if err := be.Err(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpOverhead is the host-side cost of one small operation (a fill
// of one value), the GPU finished once at the end: what a step of a few
// hundred operations pays before any shader runs.
func BenchmarkOpOverhead(b *testing.B) {
	be := backendOrSkip(b, GL43)
	t := be.New(1)
	defer be.Release(t)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		be.Fill(t, 1)
	}
	be.Finish()
}

// BenchmarkContextHandoff is one synchronous round trip to the context's
// thread (what every operation cost before operations were posted).
func BenchmarkContextHandoff(b *testing.B) {
	be := backendOrSkip(b, GL43)
	for i := 0; i < b.N; i++ {
		be.ctx.do(func() {})
	}
}
