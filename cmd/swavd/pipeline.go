package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/daemon"
)

// pipelineReport is what `swavd bench --pipeline --json` prints.
type pipelineReport struct {
	Preset          string  `json:"preset"`
	Backend         string  `json:"backend"`
	Source          string  `json:"source"`
	FPS             float64 `json:"source_fps"`
	Seconds         float64 `json:"measured_s"`
	ReplaySize      int     `json:"replay_size"`
	ReplayFrames    int     `json:"replay_frames"`
	Batch           int     `json:"train_batch"`
	AssignedPerS    float64 `json:"frames_assigned_per_s"`
	FramesIn        uint64  `json:"frames_in"`
	Dropped         uint64  `json:"frames_dropped"`
	DroppedPct      float64 `json:"frames_dropped_pct"`
	LatencyP50MS    float64 `json:"latency_p50_ms"`
	LatencyP99MS    float64 `json:"latency_p99_ms"`
	LatencyMaxMS    float64 `json:"latency_max_ms"`
	TrainSteps      int     `json:"train_steps"`
	TrainSamplesPS  float64 `json:"train_samples_per_s"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	MemoryLimitMiB  int     `json:"memory_limit_mib"`
	EventsDelivered int     `json:"events_delivered"`
}

// benchPipeline runs the whole daemon in this process (capture at the
// configured rate, assigner, trainer, API on a temporary socket) and
// measures it from outside through the API: every assignment event's
// capture-to-assignment latency, frames dropped, training throughput.
func benchPipeline(cf *configFlags, duration time.Duration, asJSON bool, endProfiles func()) error {
	cfg, be, err := cf.open("")
	if err != nil {
		return err
	}
	defer be.Close()
	dir, err := os.MkdirTemp("", "swavd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.Daemon.StateDir, cfg.Daemon.Socket = filepath.Join(dir, "state"), filepath.Join(dir, "swavd.sock")
	cfg.Daemon.CheckpointSteps, cfg.Daemon.CheckpointInterval = 0, 0
	o := daemonOptions(cfg, cf.choice)
	d, err := daemon.New(o)
	if err != nil {
		return err
	}
	defer d.Close()
	// Measure with the replay buffer full, as on a device that has run a while.
	fill, err := capture.OpenStream(cfg.Daemon.Source, capture.StreamOptions{FPS: 1e6})
	if err != nil {
		return err
	}
	err = d.Prefill(context.Background(), fill, cfg.Daemon.ReplaySize)
	fill.Close()
	if err != nil {
		return fmt.Errorf("filling the replay buffer: %w", err)
	}
	ln, err := daemon.Listen(cfg.Daemon.Socket, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()

	c := api.NewClient(cfg.Daemon.Socket)
	fmt.Fprintf(os.Stderr, "bench: %s on %s at %g fps, replay buffer filled with %d frames; measuring for %v\n",
		cfg.Preset, cfg.Daemon.Source, cfg.Daemon.FPS, cfg.Daemon.ReplaySize, duration)
	var s0 *api.Status
	for {
		if s0, err = c.Status(ctx); err == nil && s0.Training.Step >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var mu sync.Mutex
	var lats []float64
	evCtx, stopEvents := context.WithTimeout(ctx, duration)
	defer stopEvents()
	go c.Events(evCtx, func(a api.Assignment) error {
		mu.Lock()
		lats = append(lats, a.LatencyMS)
		mu.Unlock()
		return nil
	})
	t0 := time.Now()
	s0, _ = c.Status(ctx)
	<-evCtx.Done()
	endProfiles() // while the pipeline still holds its memory
	s1, err := c.Status(ctx)
	if err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	mu.Lock()
	defer mu.Unlock()
	sort.Float64s(lats)
	q := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(int(p*float64(len(lats))), len(lats)-1)]
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	in, drop := s1.Camera.FramesIn-s0.Camera.FramesIn, s1.Camera.Dropped-s0.Camera.Dropped
	steps := s1.Training.Step - s0.Training.Step
	rep := pipelineReport{Preset: cfg.Preset, Backend: s1.Backend.Name, Source: cfg.Daemon.Source, FPS: cfg.Daemon.FPS, Seconds: el,
		ReplaySize: cfg.Daemon.ReplaySize, ReplayFrames: s1.Training.Replay, Batch: cfg.Daemon.Batch,
		AssignedPerS: float64(s1.Camera.Assigned-s0.Camera.Assigned) / el, FramesIn: in, Dropped: drop,
		LatencyP50MS: q(0.5), LatencyP99MS: q(0.99), LatencyMaxMS: q(1), TrainSteps: steps,
		TrainSamplesPS: float64(steps*cfg.Daemon.Batch) / el, PeakRSSMiB: float64(ru.Maxrss) / 1024,
		MemoryLimitMiB: cfg.Daemon.MemoryLimitMiB, EventsDelivered: len(lats)}
	if in > 0 {
		rep.DroppedPct = 100 * float64(drop) / float64(in)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("pipeline: %s, %s backend, %s at %g fps, replay %d frames, batch %d, %.0f s\n", rep.Preset, rep.Backend, rep.Source, rep.FPS, rep.ReplaySize, rep.Batch, el)
	fmt.Printf("assigned %.1f frames/s, dropped %d of %d (%.2f%%)\n", rep.AssignedPerS, drop, in, rep.DroppedPct)
	fmt.Printf("capture-to-assignment latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d events)\n", rep.LatencyP50MS, rep.LatencyP99MS, rep.LatencyMaxMS, len(lats))
	fmt.Printf("training under that load: %d steps, %.1f samples/s\npeak RSS %.0f MiB\n", steps, rep.TrainSamplesPS, rep.PeakRSSMiB)
	return nil
}
