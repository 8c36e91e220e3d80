package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute/cpu"
)

// BenchmarkInferEdgeSmall: center views through encoder, head and
// prototypes in inference mode, the path swavd bench's
// inference_frames_per_s times (without the resize).
func BenchmarkInferEdgeSmall(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			be := cpu.New()
			m, err := New(be, edgeSmall, 1)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			host := make([]float32, 3*batch*32*32)
			for i := range host {
				host[i] = rng.Float32()
			}
			out := make([]float32, batch*edgeSmall.Prototypes)
			for b.Loop() {
				ctx := &Ctx{Be: be}
				x := ctx.New(3, batch, 32, 32)
				be.Upload(x, host)
				be.Download(out, m.Scores(ctx, m.Features(ctx, x)))
				ctx.Free()
			}
			b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
