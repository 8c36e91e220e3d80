package train

import (
	"testing"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
)

// BenchmarkStepEdgeSmall is one training step of the edge-small preset
// (batch 64, 2x32x32 + 4x16x16 crops) on the CPU backend.
func BenchmarkStepEdgeSmall(b *testing.B) {
	cfg, err := config.Load(config.Options{Preset: "edge-small"})
	if err != nil {
		b.Fatal(err)
	}
	data, err := capture.LoadIDX("/usr/share/datasets/fashion-mnist/train", 1000)
	if err != nil {
		b.Skip(err)
	}
	s, err := NewSession(cpu.New(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2; i++ {
		if _, err := s.Step(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Step(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cfg.Train.Batch*b.N)/b.Elapsed().Seconds(), "samples/s")
}
