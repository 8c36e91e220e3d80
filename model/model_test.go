package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/swavd/swavd/compute"
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

// plainBackend hides what a backend offers beyond compute.Backend (the
// fused passes), so the model takes its separate passes.
type plainBackend struct{ compute.Backend }

// Inference through the fused convolution and batch norm
// (compute.ConvNormInfer) gives the scores the separate passes give, bit
// for bit, with running statistics and affine parameters away from their
// initial 0 and 1.
func TestInferenceFusedMatchesSeparatePasses(t *testing.T) {
	be := cpu.New()
	if _, ok := compute.Backend(be).(compute.ConvNormInfer); !ok {
		t.Fatal("the CPU backend does not offer ConvNormInfer")
	}
	m, err := New(be, edgeSmall, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(t compute.Tensor, lo, hi float32) {
		v := make([]float32, t.Len())
		for i := range v {
			v[i] = lo + (hi-lo)*rng.Float32()
		}
		be.Upload(t, v)
	}
	for name, buf := range m.set.buffers {
		if strings.HasSuffix(name, "running_var") {
			fill(buf, 0.2, 3)
		} else {
			fill(buf, -0.5, 0.5)
		}
	}
	for _, p := range m.set.params {
		if strings.HasSuffix(p.Name, ".bn.weight") {
			fill(p.W, 0.5, 1.5)
		} else if strings.HasSuffix(p.Name, ".bn.bias") {
			fill(p.W, -0.3, 0.3)
		}
	}
	const n = 5
	x := be.New(3, n, 32, 32)
	defer be.Release(x)
	fill(x, 0, 1)
	scores := func(b compute.Backend) []float32 {
		ctx := &Ctx{Be: b}
		defer ctx.Free()
		out := make([]float32, n*edgeSmall.Prototypes)
		be.Download(out, m.Scores(ctx, m.Features(ctx, x)))
		return out
	}
	fused, separate := scores(be), scores(plainBackend{be})
	for i := range separate {
		if fused[i] != separate[i] {
			t.Fatalf("score %d: fused %v, separate passes %v", i, fused[i], separate[i])
		}
	}
}
