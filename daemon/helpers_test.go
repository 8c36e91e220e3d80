package daemon

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/internal/logging"
)

func testConfigFor(t testing.TB, preset string) *config.Config {
	cfg, err := config.Load(config.Options{Preset: preset})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testConfig is the tiny preset with small buffers, state in a temp dir.
func testConfig(t testing.TB) *config.Config {
	cfg := testConfigFor(t, "tiny")
	dc := &cfg.Daemon
	dc.StateDir = t.TempDir()
	dc.Socket = filepath.Join(t.TempDir(), "swavd.sock")
	dc.ReplaySize, dc.MinReplay, dc.PublishEvery = 512, 32, 2
	dc.CheckpointSteps, dc.CheckpointInterval = 0, 0
	dc.Batch = 16
	cfg.SwAV.QueueLength = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// stallSource streams the test pattern until stalled, then blocks while
// still claiming to stream: a hung camera driver.
type stallSource struct {
	capture.Source
	mu      sync.Mutex
	stalled bool
}

func (s *stallSource) stall() { s.mu.Lock(); s.stalled = true; s.mu.Unlock() }

func (s *stallSource) Next(ctx context.Context) (*capture.Image, error) {
	s.mu.Lock()
	st := s.stalled
	s.mu.Unlock()
	if st {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Source.Next(ctx)
}

func patternSource(t testing.TB, fps float64) *stallSource {
	src, err := capture.OpenStream("pattern", capture.StreamOptions{FPS: fps})
	if err != nil {
		t.Fatal(err)
	}
	return &stallSource{Source: src}
}

// started is a daemon running in the background with its socket and client.
type started struct {
	d      *Daemon
	client *api.Client
	cancel context.CancelFunc
	done   chan error
}

func startDaemon(t *testing.T, cfg *config.Config, o Options) *started {
	t.Helper()
	return startDaemonOn(t, cfg, cpu.New(), o)
}

func startDaemonOn(t *testing.T, cfg *config.Config, be compute.Backend, o Options) *started {
	t.Helper()
	o.Config, o.Backend, o.Version = cfg, be, "test"
	o.Info = api.Backend{Name: be.Name()}
	if o.Source == nil {
		o.Source = patternSource(t, 200)
	}
	if o.Log.L == nil {
		o.Log = logging.Printf(t.Logf)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(cfg.Daemon.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{d: d, client: api.NewClient(cfg.Daemon.Socket), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- d.Run(ctx, ln) }()
	t.Cleanup(func() { s.stop(t); d.Close() })
	return s
}

func (s *started) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the daemon did not stop")
	}
}

// waitFor polls cond for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
