package train

import (
	"errors"
	"fmt"
	"testing"
	"time"

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
// start, so every tensor moves) on both backends from the same weights
// and the same crops: the loss and every tensor of the state must agree
// within 1e-4 after one step and 1e-3 after ten.
func TestGLStepMatchesCPU(t *testing.T) {
	imgs := fashion(t, 400)
	for _, api := range []gl.API{gl.GL43, gl.GLES31} {
		t.Run(api.String(), func(t *testing.T) {
			g := glOrSkip(t, api)
			// Batch 16 keeps ten steps on a software rasterizer short; the
			// network, crops and objective are edge-small's.
			cfg, err := configFor("edge-small", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=0", "SWAVD_OPTIM_WARMUP_STEPS=2",
				"SWAVD_TRAIN_BATCH=16", "SWAVD_SWAV_QUEUE_LENGTH=64")
			if err != nil {
				t.Fatal(err)
			}
			sc, err := NewSession(cpu.New(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			sg, err := NewSession(g, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sg.Close()
			for step := 1; step <= 10; step++ {
				start := time.Now()
				rc, err := sc.Step(imgs)
				if err != nil {
					t.Fatal(err)
				}
				mid := time.Now()
				rg, err := sg.Step(imgs)
				if err != nil {
					t.Fatal(err)
				}
				tol := 1e-3
				if step == 1 {
					tol = 1e-4
				}
				if d := relDiff(rg.Loss, rc.Loss); d > tol {
					t.Fatalf("step %d: loss gl %.7f, cpu %.7f", step, rg.Loss, rc.Loss)
				}
				if step == 1 || step == 10 {
					t.Logf("step %d: loss cpu %.6f gl %.6f; cpu %v, gl %v", step, rc.Loss, rg.Loss, mid.Sub(start), time.Since(mid))
					compareState(t, fmt.Sprintf("after step %d", step), sc, sg, tol)
				}
			}
			if err := g.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func relDiff(a, b float64) float64 {
	d := a - b
	if d < 0 {
		d = -d
	}
	if b < 0 {
		b = -b
	}
	return d / b
}

func compareState(t *testing.T, when string, ref, got *Session, tol float64) {
	t.Helper()
	a, b := state(ref), state(got)
	for name, va := range a {
		if d := computetest.RelDiff(b[name], va); d > tol {
			t.Errorf("%s: %s differs by %.3g in relative norm (tolerance %g)", when, name, d, tol)
		}
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
