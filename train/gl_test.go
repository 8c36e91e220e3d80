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
	"github.com/swavd/swavd/model"
)

func glOrSkip(t *testing.T, api gl.API) *gl.Backend {
	t.Helper()
	b, err := gl.New(api)
	switch {
	case errors.Is(err, gl.ErrNoDisplay):
		t.Skipf("no EGL display can be opened here, so the GL backend cannot run: %v", err)
	case errors.Is(err, gl.ErrNoContext):
		t.Skipf("this driver offers no %v context: %v", api, err)
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

// TestGLDelayedLossOverlapsSteps: with DelayLoss the loss of each step is
// read behind a fence at the start of the next, so the CPU builds the next
// batch while the GPU finishes. The computation is the same: the state
// after five steps is bit-identical to a run that reads each loss at once,
// the losses are the same one call later, a steady-state step creates no
// buffer and reads 4 bytes, and a NaN batch is undone (one call later).
func TestGLDelayedLossOverlapsSteps(t *testing.T) {
	g := glOrSkip(t, gl.GL43)
	cfg, err := configFor("tiny", "SWAVD_SWAV_QUEUE_LENGTH=64", "SWAVD_SWAV_QUEUE_FROM_STEP=3", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=1")
	if err != nil {
		t.Fatal(err)
	}
	imgs := fashion(t, 200)
	run := func(delay bool) (*Session, []float64) {
		s, err := NewSession(g, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		s.Trainer.DelayLoss = delay
		var losses []float64
		for i := 0; i < 5; i++ {
			r, err := s.Step(imgs)
			if err != nil {
				t.Fatal(err)
			}
			if r.Step >= 0 {
				if r.Step != len(losses) {
					t.Fatalf("reported step %d, want %d", r.Step, len(losses))
				}
				losses = append(losses, r.Loss)
			}
		}
		if delay {
			if len(losses) != 4 || s.Trainer.Step != 5 {
				t.Fatalf("delayed: %d losses by the fifth call, step %d", len(losses), s.Trainer.Step)
			}
			before := g.Stats()
			st, err := s.Trainer.Settle()
			if err != nil || st.Step != 4 {
				t.Fatalf("settle: %+v %v", st, err)
			}
			if n := g.Stats().Downloads - before.Downloads; n != 1 {
				t.Fatalf("settling read %d times", n)
			}
			losses = append(losses, st.Loss)
		}
		return s, losses
	}
	syncS, syncL := run(false)
	delayS, delayL := run(true)
	for i := range syncL {
		if syncL[i] != delayL[i] {
			t.Fatalf("loss %d: %v read at once, %v delayed", i, syncL[i], delayL[i])
		}
	}
	a, b := state(syncS), state(delayS)
	for name, va := range a {
		for i := range va {
			if va[i] != b[name][i] {
				t.Fatalf("%s[%d]: %v read at once, %v delayed", name, i, va[i], b[name][i])
			}
		}
	}

	// Steady state in delayed mode.
	before := g.Stats()
	if _, err := delayS.Step(imgs); err != nil {
		t.Fatal(err)
	}
	after := g.Stats()
	if n := after.BuffersCreated - before.BuffersCreated; n != 0 {
		t.Errorf("a delayed steady-state step created %d buffers", n)
	}
	if n, by := after.Downloads-before.Downloads, after.DownloadBytes-before.DownloadBytes; n > 1 || by > 4 {
		t.Errorf("a delayed steady-state step read back %d times, %d bytes", n, by)
	}

	// A NaN batch: its step is undone when its loss is settled.
	delayS.Trainer.Settle()
	step := delayS.Trainer.Step
	batch := cfg.Views.NewBatch(cfg.Train.Batch)
	if err := cfg.Views.Fill(batch, imgs[:cfg.Train.Batch], 1); err != nil {
		t.Fatal(err)
	}
	batch.Global[5] = float32(math.NaN())
	if _, err := delayS.Trainer.TrainStep(batch); err != nil {
		t.Fatalf("issuing the NaN step: %v", err)
	}
	// Saving or loading first would settle it out of sight: refused.
	if _, _, err := model.EncodeCheckpoint(delayS.Trainer, model.CheckpointMeta{}); !errors.Is(err, model.ErrInFlight) {
		t.Fatalf("encoding a checkpoint with a step in flight: %v, want ErrInFlight", err)
	}
	if err := delayS.Trainer.LoadState(nil, model.CheckpointMeta{}); !errors.Is(err, model.ErrInFlight) {
		t.Fatalf("loading a state with a step in flight: %v, want ErrInFlight", err)
	}
	if _, err := delayS.Trainer.Settle(); !errors.Is(err, model.ErrNonFinite) {
		t.Fatalf("settling the NaN step: %v, want ErrNonFinite", err)
	}
	if delayS.Trainer.Step != step-1 {
		t.Errorf("step %d after the undone step, want %d (back to before the last finite step)", delayS.Trainer.Step, step-1)
	}
	if r, err := delayS.Step(imgs); err != nil || r.Discarded {
		t.Fatalf("after the undone step: %+v %v", r, err)
	}
}
