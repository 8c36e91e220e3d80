package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// rangeErr names the key, its value and what is allowed.
func rangeErr(key string, val any, allowed string) error {
	return fmt.Errorf("config: %s = %v is out of range (allowed: %s)", key, val, allowed)
}

func intIn(key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return rangeErr(key, v, fmt.Sprintf("%d..%d", lo, hi))
	}
	return nil
}

func floatIn(key string, v, lo, hi float64) error {
	if !(v >= lo && v <= hi) { // also rejects NaN
		return rangeErr(key, v, fmt.Sprintf("%g..%g", lo, hi))
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return rangeErr(key, fmt.Sprintf("%q", v), "one of "+strings.Join(allowed, ", "))
}

// Validate checks every value against its allowed range and reports every
// value out of range at once.
func (c *Config) Validate() error { return joinErrors(c.problems()) }

func (c *Config) problems() []error {
	m, v, s, o, t := c.Model, c.Views, c.SwAV, c.Optim, c.Train
	checks := []error{
		intIn("input.size", c.Input.Size, 8, 4096),
		oneOf("input.channels", fmt.Sprint(c.Input.Channels), "1", "3"),
		intIn("model.input_channels", m.InputChannels, 3, 3),
		intIn("model.stem_width", m.StemWidth, 1, 1024),
		intIn("model.blocks_per_stage", m.BlocksPerStage, 1, 16),
		intIn("model.head_hidden", m.HeadHidden, 1, 16384),
		intIn("model.proj_dim", m.ProjDim, 2, 4096),
		intIn("model.prototypes", m.Prototypes, 2, 65536),
		intIn("model.stages (count)", len(m.Stages), 1, 8),
		intIn("views.global.count", v.Global.Count, 1, 8),
		intIn("views.global.size", v.Global.Size, 4, 1024),
		floatIn("views.global.scale_min", v.Global.ScaleMin, 0.001, 1),
		floatIn("views.global.scale_max", v.Global.ScaleMax, v.Global.ScaleMin, 1),
		intIn("views.local.count", v.Local.Count, 0, 32),
		intIn("views.local.size", v.Local.Size, 4, 1024),
		floatIn("views.local.scale_min", v.Local.ScaleMin, 0.001, 1),
		floatIn("views.local.scale_max", v.Local.ScaleMax, v.Local.ScaleMin, 1),
		floatIn("views.ratio_min", v.RatioMin, 0.05, 1),
		floatIn("views.ratio_max", v.RatioMax, 1, 20),
		floatIn("views.flip_p", v.FlipP, 0, 1),
		floatIn("views.jitter_p", v.JitterP, 0, 1),
		floatIn("views.brightness", v.Brightness, 0, 1),
		floatIn("views.contrast", v.Contrast, 0, 1),
		floatIn("views.saturation", v.Saturation, 0, 1),
		floatIn("views.hue", v.Hue, 0, 0.5),
		floatIn("views.grayscale_p", v.GrayscaleP, 0, 1),
		floatIn("views.blur_p", v.BlurP, 0, 1),
		floatIn("views.blur_sigma[0]", v.BlurSigma[0], 0.01, 10),
		floatIn("views.blur_sigma[1]", v.BlurSigma[1], v.BlurSigma[0], 10),
		floatIn("swav.temperature", s.Temperature, 1e-3, 10),
		floatIn("swav.epsilon", s.Epsilon, 1e-3, 10),
		intIn("swav.sinkhorn_iterations", s.SinkhornIters, 1, 100),
		intIn("swav.queue_length", s.QueueLength, 0, 1<<20),
		intIn("swav.queue_from_step", s.QueueFromStep, 0, 1<<30),
		intIn("swav.freeze_prototypes_steps", s.FreezePrototype, 0, 1<<30),
		oneOf("optim.name", o.Name, "sgd", "lars"),
		floatIn("optim.lr", o.LR, 0, 100),
		floatIn("optim.momentum", o.Momentum, 0, 0.9999),
		floatIn("optim.weight_decay", o.WeightDecay, 0, 1),
		floatIn("optim.trust_coef", o.TrustCoef, 0, 1),
		intIn("optim.warmup_steps", o.WarmupSteps, 0, 1<<30),
		oneOf("optim.schedule", o.Schedule, "constant", "cosine"),
		floatIn("optim.final_lr", o.FinalLR, 0, o.LR),
		intIn("optim.total_steps", o.TotalSteps, 0, 1<<30),
		intIn("train.batch", t.Batch, 2, 4096),
		intIn("train.steps", t.Steps, 0, 1<<30),
		intIn("train.log_every", t.LogEvery, 1, 1<<30),
		intIn("train.checkpoint_every", t.CheckpointEvery, 0, 1<<30),
		oneOf("compute.backend", c.Compute.Backend, "cpu", "auto", "gl", "gles"),
		durationIn("compute.gl_fence_timeout", c.Compute.GLFenceTimeout, 0, time.Hour),
	}
	checks = append(checks, c.Daemon.validate()...)
	checks = append(checks, c.Fleet.validate()...)
	for i, w := range m.Stages {
		checks = append(checks, intIn(fmt.Sprintf("model.stages[%d]", i), w, 1, 4096))
	}
	for i := range v.Std {
		checks = append(checks, floatIn(fmt.Sprintf("views.std[%d]", i), v.Std[i], 1e-6, 1e6))
	}
	for i, a := range s.CropsForAssign {
		checks = append(checks, intIn(fmt.Sprintf("swav.crops_for_assign[%d]", i), a, 0, v.Global.Count-1))
	}
	if len(s.CropsForAssign) == 0 {
		checks = append(checks, fmt.Errorf("config: swav.crops_for_assign is empty (allowed: global crop indices 0..%d)", v.Global.Count-1))
	}
	if s.QueueLength > 0 && s.QueueLength%t.Batch != 0 {
		checks = append(checks, rangeErr("swav.queue_length", s.QueueLength, fmt.Sprintf("0 or a multiple of train.batch (%d)", t.Batch)))
	}
	if o.Schedule == "cosine" && o.TotalSteps <= o.WarmupSteps {
		checks = append(checks, rangeErr("optim.total_steps", o.TotalSteps, "more than optim.warmup_steps with the cosine schedule"))
	}
	if s.QueueLength > 0 && c.Daemon.Batch > 0 && s.QueueLength%c.Daemon.Batch != 0 {
		checks = append(checks, rangeErr("daemon.batch", c.Daemon.Batch, fmt.Sprintf("a divisor of swav.queue_length (%d)", s.QueueLength)))
	}
	return checks
}

// joinErrors reports every error at once, one per line, or nil.
func joinErrors(errs []error) error {
	var bad []string
	for _, err := range errs {
		if err != nil {
			bad = append(bad, strings.TrimPrefix(err.Error(), "config: "))
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("config: %s", bad[0])
	}
	return fmt.Errorf("config: %d problems:\n  %s", len(bad), strings.Join(bad, "\n  "))
}

func durationIn(key string, v, lo, hi time.Duration) error {
	if v < lo || v > hi {
		return rangeErr(key, v, fmt.Sprintf("%v..%v", lo, hi))
	}
	return nil
}

func (d Daemon) validate() []error {
	checks := []error{
		floatIn("daemon.fps", d.FPS, 0.1, 1000),
		intIn("daemon.camera_width", d.CameraWidth, 16, 8192),
		intIn("daemon.camera_height", d.CameraHeight, 16, 8192),
		durationIn("daemon.camera_timeout", d.CameraTimeout, time.Second, time.Hour),
		intIn("daemon.ring_size", d.RingSize, 1, 1<<16),
		intIn("daemon.replay_size", d.ReplaySize, 2, 1<<24),
		floatIn("daemon.replay_recent", d.ReplayRecent, 0, 1),
		intIn("daemon.min_replay", d.MinReplay, 1, d.ReplaySize),
		intIn("daemon.batch", d.Batch, 2, min(4096, d.ReplaySize)),
		floatIn("daemon.duty_cycle", d.DutyCycle, 0.01, 1),
		intIn("daemon.publish_every", d.PublishEvery, 1, 1<<20),
		intIn("daemon.checkpoint_steps", d.CheckpointSteps, 0, 1<<30),
		durationIn("daemon.checkpoint_interval", d.CheckpointInterval, 0, 1000*time.Hour),
		intIn("daemon.keep_checkpoints", d.KeepCheckpoints, 1, 1000),
		intIn("daemon.exemplars", d.Exemplars, 0, 64),
		intIn("daemon.recent_window", d.RecentWindow, 1, 1<<24),
		intIn("daemon.memory_limit_mib", d.MemoryLimitMiB, 0, 1<<24),
		intIn("daemon.max_upload_pixels", d.MaxUploadPixels, 64*64, 4096*4096),
		intIn("daemon.max_connections", d.MaxConnections, 1, 1<<16),
		durationIn("daemon.read_timeout", d.ReadTimeout, 100*time.Millisecond, time.Hour),
		durationIn("daemon.idle_timeout", d.IdleTimeout, 100*time.Millisecond, time.Hour),
	}
	if d.MaxRequestBytes < 1024 || d.MaxRequestBytes > 1<<30 {
		checks = append(checks, rangeErr("daemon.max_request_bytes", d.MaxRequestBytes, "1024..1073741824"))
	}
	if d.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(d.MetricsListen); err != nil || port == "" {
			checks = append(checks, rangeErr("daemon.metrics_listen", fmt.Sprintf("%q", d.MetricsListen), `"" or HOST:PORT, e.g. 127.0.0.1:9471`))
		}
	}
	for key, v := range map[string]string{"daemon.source": d.Source, "daemon.socket": d.Socket, "daemon.state_dir": d.StateDir} {
		if v == "" {
			checks = append(checks, fmt.Errorf("config: %s is empty", key))
		}
	}
	return checks
}

func (f Fleet) validate() []error {
	if f.URL == "" {
		return nil
	}
	checks := []error{
		oneOf("fleet.share", f.Share, "prototypes", "model"),
		oneOf("fleet.adapt", f.Adapt, "prototypes", "all"),
		durationIn("fleet.announce_every", f.AnnounceEvery, time.Second, time.Hour),
		durationIn("fleet.snapshot_every", f.SnapshotEvery, 0, 24*time.Hour),
	}
	if u, err := url.Parse(f.URL); err != nil || u.Scheme != "tls" || u.Port() == "" {
		checks = append(checks, rangeErr("fleet.url", fmt.Sprintf("%q", f.URL), "tls://HOST:PORT (mTLS only), or empty for no fleet"))
	}
	for key, v := range map[string]string{"fleet.ca": f.CA, "fleet.cert": f.Cert, "fleet.key": f.Key} {
		if v == "" {
			checks = append(checks, fmt.Errorf("config: %s is empty; a fleet link needs the fleet CA, this device's certificate and its key", key))
		}
	}
	return checks
}
