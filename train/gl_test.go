package train

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/computetest"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/compute/gl"
)

func glOrSkip(t *testing.T, api gl.API) *gl.Backend {
	t.Helper()
	b, err := gl.New(api)
	if errors.Is(err, gl.ErrNoDisplay) {
		t.Skipf("no EGL display can be opened here, so the GL backend cannot run: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestGLStepMatchesCPU trains edge-small (prototypes unfrozen from the
// start, so every tensor moves) on both backends from the same weights and
// the same crops. After one step the loss and every tensor of the state
// (weights, momentum, batch-norm statistics) agree within 1e-4 in relative
// norm. Over ten steps SwAV at a test-sized batch is itself ill-conditioned:
// a 1e-6 relative nudge of the CPU run's weights moves batch-norm biases
// (which start at 0) by ~10% after ten steps. So after ten steps each
// weight and statistic must be within 1e-3 of the CPU's, or within twice
// the CPU's own divergence under that nudge, and the loss within 1e-3.
func TestGLStepMatchesCPU(t *testing.T) {
	imgs := fashion(t, 400)
	// Batch 4 keeps ten steps on a software rasterizer short; the network,
	// crops, objective and schedule are edge-small's.
	cfg, err := configFor("edge-small", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=0",
		"SWAVD_TRAIN_BATCH=4", "SWAVD_SWAV_QUEUE_LENGTH=64")
	if err != nil {
		t.Fatal(err)
	}
	newCPU := func() *Session {
		s, err := NewSession(cpu.New(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	ref, nudged := newCPU(), newCPU()
	nudge(nudged, 1e-6)
	var refLoss, nudgedLoss float64
	cpuSteps := func(n int) {
		for i := 0; i < n; i++ {
			r, err := ref.Step(imgs)
			if err != nil {
				t.Fatal(err)
			}
			rn, err := nudged.Step(imgs)
			if err != nil {
				t.Fatal(err)
			}
			refLoss, nudgedLoss = r.Loss, rn.Loss
		}
	}
	cpuSteps(1)
	after1, loss1 := state(ref), refLoss
	cpuSteps(9)
	after10, noise := state(ref), state(nudged)
	for _, api := range []gl.API{gl.GL43, gl.GLES31} {
		t.Run(api.String(), func(t *testing.T) {
			g := glOrSkip(t, api)
			sg, err := NewSession(g, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sg.Close()
			var losses []float64
			for step := 1; step <= 10; step++ {
				r, err := sg.Step(imgs)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, r.Loss)
				if step == 1 {
					if d := math.Abs(r.Loss-loss1) / loss1; d > 1e-4 {
						t.Errorf("after one step: loss %.7f, CPU %.7f", r.Loss, loss1)
					}
					for name, want := range after1 {
						if d := computetest.RelDiff(state(sg)[name], want); d > 1e-4 && !zeroGradient(name) {
							t.Errorf("after one step: %s differs by %.3g in relative norm", name, d)
						}
					}
				}
			}
			got := state(sg)
			for name, want := range after10 {
				if strings.HasPrefix(name, "optim.") || strings.HasPrefix(name, "queue.") {
					continue
				}
				d, self := computetest.RelDiff(got[name], want), computetest.RelDiff(noise[name], want)
				if d > 1e-3 && d > 2*self {
					t.Errorf("after ten steps: %s differs by %.3g (the CPU's own divergence: %.3g)", name, d, self)
				}
			}
			d, self := math.Abs(losses[9]-refLoss)/refLoss, math.Abs(nudgedLoss-refLoss)/refLoss
			if d > 1e-3 && d > 2*self {
				t.Errorf("tenth loss %.6f, CPU %.6f (the CPU's own divergence: %.3g)", losses[9], refLoss, self)
			}
			t.Logf("loss on GL %.6f ... %.6f; CPU %.6f ... %.6f (nudged %.6f)", losses[0], losses[9], loss1, refLoss, nudgedLoss)
			if err := g.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// zeroGradient names the one tensor whose gradient is zero in exact
// arithmetic, the bias of the linear layer that batch norm follows: its
// momentum is rounding noise on either backend.
func zeroGradient(name string) bool { return name == "optim.head.0.bias.momentum" }

// nudge multiplies every weight by 1 + rel*N(0,1).
func nudge(s *Session, rel float64) {
	rng := rand.New(rand.NewPCG(1, 1))
	be := s.Model.Backend()
	for _, p := range s.Model.Params() {
		d := make([]float32, p.W.Len())
		be.Download(d, p.W)
		for i := range d {
			d[i] *= float32(1 + rel*rng.NormFloat64())
		}
		be.Upload(p.W, d)
	}
}

// TestGLSteadyStateStepAllocatesAndReadsNothing: once warm, a training
// step creates no GL buffer and reads back only the loss (4 bytes).
func TestGLSteadyStateStepAllocatesAndReadsNothing(t *testing.T) {
	g := glOrSkip(t, gl.GL43)
	cfg, err := configFor("tiny", "SWAVD_SWAV_QUEUE_LENGTH=64", "SWAVD_SWAV_QUEUE_FROM_STEP=3", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=1")
	if err != nil {
		t.Fatal(err)
	}
	imgs := fashion(t, 200)
	s, err := NewSession(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 4; i++ { // past the queue's start, so the steady state includes it
		if _, err := s.Step(imgs); err != nil {
			t.Fatal(err)
		}
	}
	before := g.Stats()
	r, err := s.Step(imgs)
	if err != nil {
		t.Fatal(err)
	}
	after := g.Stats()
	if !r.Queue {
		t.Fatal("the measured step did not use the queue")
	}
	if n := after.BuffersCreated - before.BuffersCreated; n != 0 {
		t.Errorf("a steady-state step created %d GL buffers", n)
	}
	if n, bytes := after.Downloads-before.Downloads, after.DownloadBytes-before.DownloadBytes; n != 1 || bytes != 4 {
		t.Errorf("a steady-state step read back %d times, %d bytes; want once, the 4-byte loss", n, bytes)
	}
	if after.Dispatches == before.Dispatches {
		t.Error("the step dispatched nothing")
	}
}

var _ compute.Backend = (*gl.Backend)(nil)
