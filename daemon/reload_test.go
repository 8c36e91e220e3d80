package daemon

import (
	"context"
	"strings"
	"testing"
)

// SIGHUP's reload applies the live keys at once and says that the others
// wait for a restart.
func TestReloadAppliesLiveKeys(t *testing.T) {
	cfg := testConfig(t)
	s := startDaemon(t, cfg, Options{})
	next := *cfg
	next.Daemon.DutyCycle, next.Daemon.KeepCheckpoints = 0.5, 7
	if err := s.d.Reload(&next); err != nil {
		t.Fatalf("reload of live keys only: %v", err)
	}
	st, err := s.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Training.DutyCycle != 0.5 || s.d.ckpts.Keep.Load() != 7 || s.d.config().Daemon.DutyCycle != 0.5 {
		t.Fatalf("after reload: duty %v, keep %d", st.Training.DutyCycle, s.d.ckpts.Keep.Load())
	}
	other := next
	other.Daemon.ReplaySize = 999
	err = s.d.Reload(&other)
	if err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload with a key that needs a restart: %v", err)
	}
	if s.d.config().Daemon.ReplaySize == 999 {
		t.Fatal("a key that needs a restart was applied")
	}
}

// The camera preset (96x96 colour frames, K=256, the full colour
// augmentation) runs the whole pipeline; here on the test pattern.
func TestCameraPresetRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of training")
	}
	cfg := testConfig(t)
	cam := testConfigFor(t, "camera")
	cam.Daemon = cfg.Daemon
	cam.Daemon.Batch, cam.Daemon.MinReplay = 8, 16
	cam.Compute.Backend = "cpu"
	if err := cam.Validate(); err != nil {
		t.Fatal(err)
	}
	s := startDaemon(t, cam, Options{})
	ctx := context.Background()
	waitFor(t, "two steps on camera frames", func() bool {
		st, err := s.client.Status(ctx)
		return err == nil && st.Training.Step >= 2 && st.Camera.Assigned > 0
	})
	st, _ := s.client.Status(ctx)
	if st.Preset != "camera" || st.Clusters.K != 256 || !(st.Training.Loss > 0) {
		t.Fatalf("status %+v", st)
	}
}
