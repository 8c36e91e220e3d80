package model

import (
	"math"
	"testing"

	"github.com/swavd/swavd/compute/cpu"
)

var edgeSmall = Arch{InputChannels: 3, StemWidth: 32, Stages: []int{32, 64, 128}, BlocksPerStage: 1, HeadHidden: 256, ProjDim: 64, Prototypes: 128}

// Counted by hand, layer by layer, for a 32x32 input.
func TestForwardFLOPs(t *testing.T) {
	macs := 1024*32*27 + 2*1024*32*288 + // stem, stage 1
		256*64*288 + 256*64*576 + 256*64*32 + // stage 2 with its 1x1 shortcut
		64*128*576 + 64*128*1152 + 64*128*64 + // stage 3
		128*256 + 256*64 + 64*128 // head and prototypes
	if got := edgeSmall.ForwardFLOPs(32); got != int64(2*macs) {
		t.Fatalf("ForwardFLOPs(32) = %d, want %d", got, 2*macs)
	}
}

func TestLearningRate(t *testing.T) {
	o := Optim{LR: 0.1, WarmupSteps: 100, Schedule: "constant"}
	for step, want := range map[int]float64{0: 0, 50: 0.05, 99: 0.099, 100: 0.1, 5000: 0.1} {
		if got := o.LearningRate(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("constant: step %d lr %v, want %v", step, got, want)
		}
	}
	o.Schedule, o.TotalSteps, o.FinalLR = "cosine", 300, 0.001
	for step, want := range map[int]float64{100: 0.1, 200: 0.001 + 0.5*0.099, 300: 0.001, 400: 0.001} {
		if got := o.LearningRate(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("cosine: step %d lr %v, want %v", step, got, want)
		}
	}
}

// ParamFloats (used to size memory before a model exists) counts what
// building the model allocates.
func TestParamFloatsMatchesTheModel(t *testing.T) {
	for _, a := range []Arch{edgeSmall, {InputChannels: 3, StemWidth: 8, Stages: []int{8, 16}, BlocksPerStage: 2, HeadHidden: 32, ProjDim: 16, Prototypes: 10}} {
		m, err := New(cpu.New(), a, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := a.ParamFloats(), int64(m.ParamCount()); got != want {
			t.Errorf("%v: ParamFloats %d, the model has %d", a, got, want)
		}
		m.Close()
	}
}
