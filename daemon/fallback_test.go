package daemon

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
)

// lostDevice is a backend that works until lost is set, then reports a
// device error as the GL backend does (out of memory, lost context).
type lostDevice struct {
	*cpu.Backend
	lost *atomic.Bool
}

func (b lostDevice) Name() string { return "gl (fake)" }
func (b lostDevice) Err() error {
	if b.lost.Load() {
		return errors.New("gl: context lost")
	}
	return nil
}

// With compute.backend auto, a device failure mid-run moves training to
// the CPU (from the newest checkpoint) and the daemon says so; without a
// fallback, training stops and everything else keeps serving.
func TestDeviceFailureFallsBackToCPU(t *testing.T) {
	for _, withFallback := range []bool{true, false} {
		t.Run(map[bool]string{true: "auto", false: "gl"}[withFallback], func(t *testing.T) {
			cfg := testConfig(t)
			lost := &atomic.Bool{}
			o := Options{}
			if withFallback {
				o.Fallback = func() compute.Backend { return cpu.New() }
			}
			s := startDaemonOn(t, cfg, lostDevice{cpu.New(), lost}, o)
			ctx := context.Background()
			waitFor(t, "steps", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.Step >= 3 })
			if _, err := s.client.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			lost.Store(true)
			if withFallback {
				waitFor(t, "the move to the CPU", func() bool {
					st, err := s.client.Status(ctx)
					return err == nil && st.Backend.Name == "cpu" && strings.Contains(st.Backend.Fallback, "context lost")
				})
				st, _ := s.client.Status(ctx)
				step := st.Training.Step
				waitFor(t, "training on the CPU", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.Step > step+2 })
				return
			}
			waitFor(t, "training to stop", func() bool {
				st, err := s.client.Status(ctx)
				return err == nil && st.Training.State == "failed" && strings.Contains(st.Training.LastError, "context lost")
			})
			st, _ := s.client.Status(ctx)
			waitFor(t, "assignment to go on", func() bool {
				st2, err := s.client.Status(ctx)
				return err == nil && st2.Camera.Assigned > st.Camera.Assigned+5
			})
			if _, err := s.client.Checkpoint(ctx); err == nil || !strings.Contains(err.Error(), "training failed") {
				t.Fatalf("checkpoint from a failed device: %v", err)
			}
		})
	}
}
