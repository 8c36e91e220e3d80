package train

import (
	"testing"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
)

func TestSmokeEdgeSmall(t *testing.T) {
	cfg, err := config.Load(config.Options{Preset: "edge-small"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := capture.LoadIDX("/usr/share/datasets/fashion-mnist/train", 2000)
	if err != nil {
		t.Skip(err)
	}
	s, err := NewSession(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r, err := s.Step(data)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d loss %.4f aug %v fwd %v sk %v bwd %v upd %v", r.Step, r.Loss, r.Augment, r.Forward, r.Sinkhorn, r.Backward, r.Update)
	}
}
