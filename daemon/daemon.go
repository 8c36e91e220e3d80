package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/fleet/link"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/train"
)

// Options are what the daemon is built from.
type Options struct {
	Config  *config.Config
	Version string
	// Backend is the training backend and Info what to report of it.
	Backend compute.Backend
	Info    api.Backend
	// Fallback opens the CPU backend when the training backend fails
	// mid-run (compute.backend auto); nil means training stops instead.
	Fallback func() compute.Backend
	// Source overrides the configured daemon.source (tests, benchmarks).
	Source capture.Source
	// Notify sends a systemd notification (READY=1, STATUS=..., WATCHDOG=1);
	// nil sends none. Watchdog is the systemd watchdog interval (0: off).
	Notify   func(state string)
	Watchdog time.Duration
	Log      logging.Logger // the zero Logger discards
}

// Daemon is a running swavd: capture, assigner, trainer, API.
type Daemon struct {
	o           Options
	cfg         atomic.Pointer[config.Config] // live keys change on Reload
	started     time.Time
	src         capture.Source
	ring        *Ring
	replay      *Replay
	stats       *Stats
	assign      *Assigner
	ckpts       *Checkpoints
	events      *broadcaster
	metrics     *metrics
	metricsAddr atomic.Value // string: where daemon.metrics_listen serves, once it does
	ckptReq     chan chan ckptResult
	baseReq     chan baseLoad

	mu       sync.Mutex // guards what follows
	sess     *train.Session
	backend  api.Backend
	training api.Training
	last     *api.Checkpoint
	ckptErr  string
	rates    rates

	fleet    *link.Link // nil without fleet.url, or when the link could not start
	fleetErr string     // why it could not
	// base is the digest of the fleet base the weights started from;
	// wantsBase while the device asks the fleet for its base, and
	// awaitBase while training waits for it (a device with no state of its
	// own and fleet.base; a rebase keeps training meanwhile).
	base                 string
	wantsBase, awaitBase bool

	uploads chan struct{} // a slot per upload being read and decoded (handleAssign)
	conns   *capListener  // the API's connections (set by Run)

	framesIn, assigned, ckptFails atomic.Uint64
	rejected                      atomic.Uint64 // frames that failed Validate or the replay buffer
	lastFrame, trainerBeat        atomic.Int64  // unix nanos
}

// uploadSlots is how many /v1/assign uploads are read and decoded at once:
// one per two cores, so capture, assignment and training keep the rest.
func uploadSlots() int { return max(1, runtime.NumCPU()/2) }

type ckptResult struct {
	c   api.Checkpoint
	err error
}

// New builds the daemon and restores the newest valid checkpoint from the
// state directory.
func New(o Options) (*Daemon, error) {
	cfg := o.Config
	if o.Notify == nil {
		o.Notify = func(string) {}
	}
	dc := cfg.Daemon
	if machine, err := config.MachineMemory(); err == nil {
		if err := cfg.CheckDaemonMemory(machine); err != nil {
			return nil, err
		}
	}
	d := &Daemon{o: o, started: time.Now(), ring: NewRing(dc.RingSize),
		replay: NewReplay(dc.ReplaySize, cfg.Input.Size, cfg.Input.Channels, dc.ReplayRecent, cfg.Seed),
		stats:  NewStats(cfg.Model.Prototypes, dc.RecentWindow, dc.Exemplars),
		events: newBroadcaster(), ckptReq: make(chan chan ckptResult), baseReq: make(chan baseLoad),
		uploads: make(chan struct{}, uploadSlots()),
		backend: o.Info}
	d.cfg.Store(cfg)
	d.metrics = newMetrics(d)
	var err error
	if d.ckpts, err = NewCheckpoints(dc.StateDir+"/checkpoints", dc.KeepCheckpoints); err != nil {
		return nil, err
	}
	d.ckpts.Log = o.Log
	if d.assign, err = NewAssigner(cfg); err != nil {
		return nil, err
	}
	if d.sess, err = newSession(o.Backend, cfg); err != nil {
		d.assign.Close()
		return nil, err
	}
	if err := d.restore(false); err != nil {
		d.sess.Close()
		d.assign.Close()
		return nil, err
	}
	if cfg.Fleet.Base && cfg.Fleet.URL != "" && d.last == nil {
		d.wantsBase, d.awaitBase = true, true // no state of its own: start from the fleet's base
	}
	d.assign.Publish(d.sess.Model, d.sess.Trainer.Step)
	d.training = api.Training{State: "waiting", Step: d.sess.Trainer.Step, ReplayCap: d.replay.Cap(),
		Batch: cfg.Daemon.Batch, Prototypes: cfg.Model.Prototypes, DutyCycle: dc.DutyCycle}
	if o.Source != nil {
		d.src = o.Source
	} else if d.src, err = capture.OpenStream(dc.Source, capture.StreamOptions{FPS: dc.FPS, Width: dc.CameraWidth,
		Height: dc.CameraHeight, Timeout: dc.CameraTimeout}); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// newSession is the daemon's training session: daemon.batch, and on a GL
// backend each step's loss read behind a fence one step late, so the GPU
// does not idle while the CPU builds the next batch.
func newSession(be compute.Backend, cfg *config.Config) (*train.Session, error) {
	s, err := train.NewSession(be, cfg.ForDaemon())
	if err != nil {
		return nil, err
	}
	s.Trainer.DelayLoss = true
	return s, nil
}

// Close releases the model and the source.
func (d *Daemon) Close() {
	if d.src != nil {
		d.src.Close()
	}
	d.sess.Close()
	d.assign.Close()
}

// Checkpoint file names.
const (
	fileStats  = "stats.json"
	fileReplay = "replay.bin"
)

// restore loads the newest checkpoint that is whole; the model must load,
// statistics and replay frames are restored when they still fit (unless
// modelOnly: a backend switch keeps the live ones). It fails only when the
// state directory cannot be read: starting over would lose training.
func (d *Daemon) restore(modelOnly bool) error {
	restored, skipped, err := d.ckpts.Restore(func(files map[string][]byte) error {
		f, meta, err := model.ParseCheckpoint(files[model.TensorsFile])
		if err != nil {
			return err
		}
		if err := d.sess.Trainer.LoadState(f, meta); err != nil {
			return err
		}
		d.mu.Lock()
		d.base = meta.Base
		d.mu.Unlock()
		if modelOnly {
			return nil
		}
		if b, ok := files[fileStats]; ok {
			if err := json.Unmarshal(b, d.stats); err != nil {
				d.o.Log.Warnf("checkpoint: cluster statistics not restored: %v", err)
			}
		}
		if b, ok := files[fileReplay]; ok {
			if err := d.replay.Restore(bytes.NewReader(b)); err != nil {
				d.o.Log.Warnf("checkpoint: replay frames not restored: %v", err)
			}
		}
		return nil
	})
	for _, err := range skipped {
		d.o.Log.Warnf("%v", err)
	}
	if err != nil {
		return fmt.Errorf("restoring state: %w", err)
	}
	if restored.Path != "" {
		d.mu.Lock()
		d.last = &restored
		d.mu.Unlock()
		d.o.Log.Infof("resumed from %s at step %d with %d replay frames", restored.Path, d.sess.Trainer.Step, d.replay.Len())
	}
	return nil
}

// Run serves until ctx ends, then stops capture, finishes the training
// step under way, writes a final checkpoint and returns.
func (d *Daemon) Run(ctx context.Context, ln net.Listener) error {
	d.startFleet() // before the API serves: handlers read the link
	dc := d.config().Daemon
	// A request must arrive whole within read_timeout (a body trickling in
	// a byte at a time is cut off), an idle keep-alive connection is closed
	// after idle_timeout, and the connections are capped.
	srv := &http.Server{Handler: d.Handler(), ConnContext: withPeerCred,
		ReadHeaderTimeout: min(10*time.Second, dc.ReadTimeout), ReadTimeout: dc.ReadTimeout, IdleTimeout: dc.IdleTimeout}
	d.conns = newCapListener(ln, dc.MaxConnections)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(d.conns) }()
	metricsSrv := d.serveMetrics(dc.MetricsListen)

	work, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(fn func(context.Context)) { wg.Add(1); go func() { defer wg.Done(); fn(work) }() }
	run(d.captureLoop)
	run(d.assignLoop)
	trainDone := make(chan struct{})
	go func() { d.trainLoop(work); close(trainDone) }()
	run(d.monitor)
	d.o.Notify("READY=1")
	d.o.Log.Infof("serving on %s: source %s, backend %s, preset %s", ln.Addr(), d.src.Status().Spec, d.backendInfo().Name, d.config().Preset)

	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
		err = fmt.Errorf("api: %w", err)
	}
	d.o.Notify("STOPPING=1")
	if d.fleet != nil {
		d.fleet.Close()
	}
	stopWork()
	<-trainDone
	if _, cerr := d.checkpointNow(); cerr != nil {
		d.o.Log.Errorf("final checkpoint: %v", cerr)
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d.events.close()
	srv.Shutdown(shut)
	if metricsSrv != nil {
		metricsSrv.Shutdown(shut)
	}
	wg.Wait()
	return err
}

func (d *Daemon) config() *config.Config { return d.cfg.Load() }

func (d *Daemon) backendInfo() api.Backend {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.backend
}

// Reload applies the live keys of cfg and reports the other changes,
// which need a restart.
func (d *Daemon) Reload(cfg *config.Config) error {
	cur := *d.config()
	live := cur
	live.Daemon.DutyCycle, live.Daemon.PublishEvery = cfg.Daemon.DutyCycle, cfg.Daemon.PublishEvery
	live.Daemon.CheckpointSteps, live.Daemon.CheckpointInterval = cfg.Daemon.CheckpointSteps, cfg.Daemon.CheckpointInterval
	live.Daemon.KeepCheckpoints = cfg.Daemon.KeepCheckpoints
	d.cfg.Store(&live)
	d.mu.Lock()
	d.ckpts.Keep.Store(int64(live.Daemon.KeepCheckpoints))
	d.training.DutyCycle = live.Daemon.DutyCycle
	d.mu.Unlock()
	if !reflect.DeepEqual(&live, cfg) {
		return fmt.Errorf("reload: applied %v; other changed keys take effect on restart", config.LiveKeys)
	}
	return nil
}

func (d *Daemon) captureLoop(ctx context.Context) {
	cfg := d.config()
	var seq uint64
	for {
		im, err := d.src.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.o.Log.Errorf("capture: %v", err)
			}
			return
		}
		at := time.Now()
		d.lastFrame.Store(at.UnixNano())
		if err := im.Validate(); err != nil {
			d.reject(err)
			continue
		}
		fit := fitFrame(im, cfg.Input.Size, cfg.Input.Channels)
		seq++
		d.framesIn.Add(1)
		d.ring.Push(Frame{Seq: seq, At: at, Img: fit})
		if err := d.replay.Add(fit); err != nil {
			d.reject(err)
		}
	}
}

// reject counts a frame the source gave but the daemon could not use (it
// shows among the corrupt frames) and logs the first, then every 100th.
func (d *Daemon) reject(err error) {
	if n := d.rejected.Add(1); n%100 == 1 {
		d.o.Log.Warnf("capture: frame rejected: %v (%d so far)", err, n)
	}
}

func (d *Daemon) assignLoop(ctx context.Context) {
	for {
		f, ok := d.ring.Pop(ctx)
		if !ok {
			return
		}
		c, conf, step, err := d.assign.Assign(f.Img, nil)
		if err != nil {
			d.o.Log.Warnf("assign: frame %d: %v", f.Seq, err)
			continue
		}
		now := time.Now()
		lat := now.Sub(f.At)
		d.metrics.observeLatency(lat)
		d.stats.Add(c, conf, now, f.Img)
		d.assigned.Add(1)
		ev := api.Assignment{Seq: f.Seq, At: now, Cluster: c, Confidence: conf, LatencyMS: lat.Seconds() * 1e3, Step: step}
		if f.Img.Label >= 0 {
			l := f.Img.Label
			ev.Label = &l
		}
		d.events.publish(ev)
	}
}

// beat marks the trainer alive for the watchdog.
func (d *Daemon) beat() { d.trainerBeat.Store(time.Now().UnixNano()) }

func (d *Daemon) setTraining(fn func(t *api.Training)) {
	d.mu.Lock()
	fn(&d.training)
	d.mu.Unlock()
}

// idle waits up to dur while answering checkpoint requests.
func (d *Daemon) idle(ctx context.Context, dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	for {
		d.beat()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case req := <-d.ckptReq:
			c, err := d.checkpointNow()
			req <- ckptResult{c, err}
		case req := <-d.baseReq:
			req.reply <- d.loadBase(req)
		}
	}
}

func (d *Daemon) trainLoop(ctx context.Context) {
	cfg := d.sess.Cfg
	imgs := make([]*capture.Image, cfg.Train.Batch)
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(d.sess.Trainer.Step)))
	lastCkpt, lastCkptStep := time.Now(), d.sess.Trainer.Step
	failed := false
	for ctx.Err() == nil {
		dc := d.config().Daemon
		d.mu.Lock()
		awaitBase, onBase := d.awaitBase, d.base != ""
		d.mu.Unlock()
		d.sess.Trainer.Adapt = adaptMode(d.config().Fleet, onBase)
		if awaitBase {
			d.setTraining(func(t *api.Training) { t.State = "waiting for the fleet base" })
		}
		if failed || awaitBase || d.replay.Len() < dc.MinReplay {
			if !d.idle(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		d.setTraining(func(t *api.Training) { t.State, t.Adapt = "training", d.sess.Trainer.Adapt.String() })
		if err := d.replay.Sample(imgs, rng); err != nil {
			d.o.Log.Warnf("train: %v", err)
			continue
		}
		t0 := time.Now()
		r, err := d.sess.StepOn(imgs)
		took := time.Since(t0)
		d.beat()
		if err != nil {
			failed = !d.recoverBackend(err)
			continue
		}
		step := d.sess.Trainer.Step
		d.setTraining(func(t *api.Training) {
			t.Step = step
			if r.Step >= 0 { // with a delayed loss, the first call reports no step
				t.Loss, t.LR = r.Loss, r.LR
			}
			if r.Discarded {
				t.Discarded++
			}
			sps := float64(cfg.Train.Batch) / took.Seconds()
			if t.SamplesPS == 0 {
				t.SamplesPS = sps
			}
			t.SamplesPS = 0.9*t.SamplesPS + 0.1*sps
		})
		if r.Discarded {
			d.o.Log.Warnf("train: step %d: loss not finite; undone, weights restored", step)
		}
		if step%dc.PublishEvery == 0 {
			d.settle() // publish only weights that gave a finite loss
			d.assign.Publish(d.sess.Model, d.sess.Trainer.Step)
		}
		if (dc.CheckpointSteps > 0 && step-lastCkptStep >= dc.CheckpointSteps) ||
			(dc.CheckpointInterval > 0 && time.Since(lastCkpt) >= dc.CheckpointInterval) {
			if _, err := d.checkpointNow(); err != nil {
				d.o.Log.Errorf("%v", err)
			}
			lastCkpt, lastCkptStep = time.Now(), step
		}
		// Duty cycle: rest so that work is dc.DutyCycle of wall time.
		if rest := time.Duration(float64(took) * (1 - dc.DutyCycle) / dc.DutyCycle); rest > 0 {
			if !d.idle(ctx, rest) {
				return
			}
		} else if !d.idle(ctx, 0) {
			return
		}
	}
}

// adaptMode is what training changes: on the fleet's base, fleet.adapt
// (prototypes by default, so that the device's clusters stay comparable
// with the fleet's); otherwise everything.
func adaptMode(f config.Fleet, onBase bool) model.Adapt {
	if !onBase {
		return model.AdaptAll
	}
	a, _ := model.ParseAdapt(f.Adapt) // validated with the configuration
	return a
}

// recoverBackend handles a failed step: a device error moves training to
// the CPU when a fallback is configured (restoring the newest checkpoint);
// anything else stops training while capture, assignment and the API go
// on. It reports whether training can continue.
func (d *Daemon) recoverBackend(stepErr error) bool {
	d.o.Log.Errorf("train: %v", stepErr)
	var fb compute.Backend
	if d.o.Fallback != nil && d.o.Backend.Name() != "cpu" {
		fb = d.o.Fallback()
	}
	if fb == nil {
		d.setTraining(func(t *api.Training) { t.State, t.LastError = "failed", stepErr.Error() })
		return false
	}
	sess, err := newSession(fb, d.config())
	if err != nil {
		d.setTraining(func(t *api.Training) { t.State, t.LastError = "failed", err.Error() })
		return false
	}
	d.sess.Close()
	d.sess = sess
	d.o.Backend = fb
	if err := d.restore(true); err != nil {
		d.setTraining(func(t *api.Training) { t.State, t.LastError = "failed", err.Error() })
		return false
	}
	d.assign.Publish(d.sess.Model, d.sess.Trainer.Step)
	d.mu.Lock()
	d.backend = api.Backend{Name: fb.Name(), Fallback: stepErr.Error()}
	d.training.LastError = stepErr.Error()
	d.mu.Unlock()
	d.o.Log.Warnf("train: moved to the CPU backend at step %d", d.sess.Trainer.Step)
	return true
}

// checkpointNow writes a checkpoint; only the trainer goroutine (or Run
// after it stopped) calls it, so the state is between steps.
func (d *Daemon) checkpointNow() (api.Checkpoint, error) {
	cfg := d.config()
	d.mu.Lock()
	failed := d.training.State == "failed"
	d.mu.Unlock()
	if failed {
		return api.Checkpoint{}, errors.New("checkpoint: training failed; the last checkpoint is kept")
	}
	files, err := d.encodeState(cfg)
	var c api.Checkpoint
	if err == nil {
		c, err = d.ckpts.Save(d.sess.Trainer.Step, files)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.ckptFails.Add(1)
		d.ckptErr = err.Error()
		return api.Checkpoint{}, err
	}
	d.last, d.ckptErr = &c, ""
	return c, nil
}

// settle waits for the training step in flight (GL reads its loss
// asynchronously); a step whose loss was not finite is undone, logged and
// counted like any other.
func (d *Daemon) settle() {
	if _, err := d.sess.Trainer.Settle(); err != nil {
		d.o.Log.Warnf("train: %v; undone, weights restored", err)
		d.setTraining(func(t *api.Training) { t.Discarded++ })
	}
}

// encodeState serializes what a checkpoint holds: the trainer's state,
// the cluster statistics and the replay buffer.
func (d *Daemon) encodeState(cfg *config.Config) (map[string][]byte, error) {
	d.settle()
	cj, _ := json.Marshal(cfg)
	d.mu.Lock()
	base := d.base
	d.mu.Unlock()
	tensors, meta, err := model.EncodeCheckpoint(d.sess.Trainer, model.CheckpointMeta{Version: d.o.Version, Preset: cfg.Preset, Config: cj, Base: base})
	if err != nil {
		return nil, err
	}
	stats, err := json.Marshal(d.stats)
	if err != nil {
		return nil, err
	}
	var rb bytes.Buffer
	if _, err := d.replay.WriteTo(&rb); err != nil {
		return nil, err
	}
	return map[string][]byte{model.TensorsFile: tensors, model.MetaFile: meta, fileStats: stats, fileReplay: rb.Bytes()}, nil
}

// RequestCheckpoint asks the trainer for a checkpoint between steps.
func (d *Daemon) RequestCheckpoint(ctx context.Context) (api.Checkpoint, error) {
	ch := make(chan ckptResult, 1)
	select {
	case d.ckptReq <- ch:
	case <-ctx.Done():
		return api.Checkpoint{}, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		return api.Checkpoint{}, ctx.Err()
	}
}

// Status is the daemon's state for /v1/status.
func (d *Daemon) Status() api.Status {
	cfg := d.config()
	st := d.src.Status()
	d.mu.Lock()
	s := api.Status{Version: d.o.Version, Preset: cfg.Preset, StartedAt: d.started, UptimeS: time.Since(d.started).Seconds(),
		Backend: d.backend, Training: d.training, LastCheckpoint: d.last, CheckpointError: d.ckptErr}
	r := d.rates
	d.mu.Unlock()
	s.Camera = api.Camera{Source: st.Spec, State: st.State, Format: st.Format, LastError: st.LastError, Reconnects: st.Reconnects,
		FramesIn: d.framesIn.Load(), Corrupt: st.Corrupt + d.rejected.Load(), Dropped: d.ring.Dropped(), Assigned: d.assigned.Load(),
		FPSIn: r.in, FPSDropped: r.dropped}
	s.Training.Replay = d.replay.Len()
	s.Training.ModelStep = d.assign.Step()
	s.Clusters = d.stats.Usage()
	s.Fleet = d.fleetStatus()
	s.Events = d.events.stats()
	return s
}

// Prefill fills the replay buffer with n frames from src (for benchmarks
// that measure the daemon with a full buffer).
func (d *Daemon) Prefill(ctx context.Context, src capture.Source, n int) error {
	cfg := d.config()
	for i := 0; i < n; i++ {
		im, err := src.Next(ctx)
		if err != nil {
			return err
		}
		if err := d.replay.Add(fitFrame(im, cfg.Input.Size, cfg.Input.Channels)); err != nil {
			return err
		}
	}
	return nil
}
