package daemon

import (
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/capture"
)

// BenchmarkAssignEdgeSmall: one frame through the assigner (resize,
// encoder, head, prototypes, softmax) with edge-small on the CPU.
func BenchmarkAssignEdgeSmall(b *testing.B) {
	cfg := testConfigFor(b, "edge-small")
	a, err := NewAssigner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	im := &capture.Image{W: 28, H: 28, C: 1, Pix: make([]uint8, 28*28)}
	for i := range im.Pix {
		im.Pix[i] = uint8(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := a.Assign(im, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayAddSample: storing one frame and drawing a batch of 16
// from a full buffer of 20,000.
func BenchmarkReplayAddSample(b *testing.B) {
	r := NewReplay(20000, 28, 1, 0.25, 1)
	im := gray(28, 7, 1)
	for i := 0; i < 20000; i++ {
		r.Add(im)
	}
	dst := make([]*capture.Image, 16)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		r.Add(im)
		r.Sample(dst, rng)
	}
}
