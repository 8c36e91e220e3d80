package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/train"
)

// benchReport is what `swavd bench --json` prints.
type benchReport struct {
	Preset       string             `json:"preset"`
	Backend      string             `json:"backend"`
	Batch        int                `json:"batch"`
	Steps        int                `json:"steps"`
	SamplesPerS  float64            `json:"samples_per_s"`
	MsPerStep    float64            `json:"ms_per_step"`
	MsSplit      map[string]float64 `json:"ms_per_step_split"`
	InferenceFPS map[string]float64 `json:"inference_frames_per_s"`
	GFLOPPerS    float64            `json:"achieved_gflop_per_s"`
	GFLOPPerStep float64            `json:"gflop_per_step"`
	PeakRSSMiB   float64            `json:"peak_rss_mib"`
	Data         string             `json:"data"`
	GL           *gl.Info           `json:"gl,omitempty"`
	GemmKernel   string             `json:"cpu_gemm_kernel,omitempty"`
	GLPrograms   []gl.OpTime        `json:"gl_programs,omitempty"`
	Check        *benchCheck        `json:"check,omitempty"`
}

func runBench(args []string) error {
	cf := newConfigFlags("bench")
	steps := cf.fs.Int("steps", 20, "timed training steps (after 3 warm-up steps)")
	asJSON := cf.fs.Bool("json", false, "print JSON")
	pipeline := cf.fs.Bool("pipeline", false, "run the whole daemon pipeline (capture, assigner, trainer, API) on daemon.source and measure it")
	duration := cf.fs.Duration("duration", 60*time.Second, "--pipeline: how long to measure")
	cf.key("daemon.source", "source", "", "--pipeline: frame source (daemon.source)")
	cpuProfile := cf.fs.String("cpuprofile", "", "write a CPU profile (pprof) of the measured run to this file")
	memProfile := cf.fs.String("memprofile", "", "write a heap profile (pprof, in-use memory) at the end to this file")
	check := cf.fs.Bool("check", false, "first compare one training step with the CPU backend (loss and weights); a relative error over 1e-3 fails the bench")
	glProfile := cf.fs.Int("gl-profile", 0, "GL backend: after the timed steps, run this many more with the GPU finished around each dispatch and report the time per shader program")
	if err := cf.fs.Parse(args); err != nil {
		return err
	}
	stop, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		return err
	}
	defer stop()
	if *pipeline {
		return benchPipeline(cf, *duration, *asJSON, stop)
	}
	if *steps < 1 {
		return fmt.Errorf("--steps must be at least 1")
	}
	cfg, be, err := cf.open("")
	if err != nil {
		return err
	}
	defer be.Close()
	imgs, dataNote := benchImages(cfg)
	var chk *benchCheck
	if *check {
		if chk, err = checkFirstStep(cfg, be, imgs); err != nil {
			return err
		}
	}
	s, err := train.NewSession(be, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	s.Trainer.TimePhases = true
	const warmup = 3
	var sum train.StepResult
	var start time.Time
	for i := 0; i < warmup+*steps; i++ {
		if i == warmup {
			start = time.Now()
		}
		r, err := s.Step(imgs)
		if err != nil {
			return err
		}
		if i >= warmup {
			sum.Augment += r.Augment
			sum.Forward += r.Forward
			sum.Sinkhorn += r.Sinkhorn
			sum.Backward += r.Backward
			sum.Update += r.Update
		}
	}
	el := time.Since(start).Seconds()
	n := float64(*steps)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	v := cfg.Views
	flops := 3 * float64(cfg.Train.Batch) * (float64(v.Global.Count)*float64(cfg.Model.ForwardFLOPs(v.Global.Size)) +
		float64(v.Local.Count)*float64(cfg.Model.ForwardFLOPs(v.Local.Size)))
	rep := benchReport{
		Preset: cfg.Preset, Backend: be.Name(), Batch: cfg.Train.Batch, Steps: *steps, Data: dataNote,
		SamplesPerS: n * float64(cfg.Train.Batch) / el,
		MsPerStep:   1000 * el / n,
		MsSplit: map[string]float64{
			"augment": ms(sum.Augment), "forward": ms(sum.Forward), "sinkhorn": ms(sum.Sinkhorn),
			"backward": ms(sum.Backward), "update": ms(sum.Update),
		},
		InferenceFPS: map[string]float64{},
		Check:        chk,
		GFLOPPerStep: flops / 1e9,
		GFLOPPerS:    flops * n / el / 1e9,
	}
	if g, ok := be.(*gl.Backend); ok {
		in := g.Info()
		rep.GL = &in
	} else {
		rep.GemmKernel = cpu.GemmKernel()
	}
	if *glProfile > 0 {
		if rep.GLPrograms, err = profileGL(s, imgs, *glProfile); err != nil {
			return err
		}
	}
	for _, b := range []int{1, 64} {
		rep.InferenceFPS[fmt.Sprintf("batch_%d", b)] = inferenceFPS(s.Model, &cfg.Views, v.Global.Size, imgs, b)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		rep.PeakRSSMiB = float64(ru.Maxrss) / 1024
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return rep.checkFailed()
	}
	fmt.Printf("preset %s, backend %s, batch %d, %d steps (%s)\n", rep.Preset, rep.Backend, rep.Batch, rep.Steps, rep.Data)
	if rep.GL != nil {
		fmt.Printf("GL: %s, %s\n", rep.GL.Renderer, rep.GL.Version)
	} else {
		fmt.Printf("CPU matrix products: %s\n", rep.GemmKernel)
	}
	fmt.Printf("training: %.1f samples/s, %.0f ms/step (augment %.0f, forward %.0f, sinkhorn %.1f, backward %.0f, update %.1f), %.1f GFLOP/s\n",
		rep.SamplesPerS, rep.MsPerStep, rep.MsSplit["augment"], rep.MsSplit["forward"], rep.MsSplit["sinkhorn"],
		rep.MsSplit["backward"], rep.MsSplit["update"], rep.GFLOPPerS)
	fmt.Printf("inference: %.0f frames/s at batch 1, %.0f at batch 64\npeak RSS %.0f MiB\n",
		rep.InferenceFPS["batch_1"], rep.InferenceFPS["batch_64"], rep.PeakRSSMiB)
	if len(rep.GLPrograms) > 0 {
		printGLProfile(rep.GLPrograms, *glProfile)
	}
	if c := rep.Check; c != nil {
		fmt.Printf("check against the CPU backend, first step: loss %.2g, weights %.2g relative error (at most %g)\n",
			c.LossRelError, c.WeightsRelError, checkTolerance)
	}
	return rep.checkFailed()
}

// profileGL runs steps more training steps with per-program timing on.
func profileGL(s *train.Session, imgs []*capture.Image, steps int) ([]gl.OpTime, error) {
	g, ok := s.Model.Backend().(*gl.Backend)
	if !ok {
		return nil, fmt.Errorf("--gl-profile needs the GL backend (--backend gl or gles); profile the CPU with --cpuprofile")
	}
	g.SetProfiling(true)
	defer g.SetProfiling(false)
	for i := 0; i < steps; i++ {
		if _, err := s.Step(imgs); err != nil {
			return nil, err
		}
	}
	return g.Profile(), nil
}

func printGLProfile(ps []gl.OpTime, steps int) {
	var total float64
	for _, p := range ps {
		total += p.Ms
	}
	fmt.Printf("GL programs over %d profiled steps (GPU finished around each dispatch), per step:\n", steps)
	for _, p := range ps {
		line := fmt.Sprintf("  %-28s %9.1f  %5.1f%%  %6.0f calls", p.Program, p.Ms/float64(steps), 100*p.Ms/total, float64(p.Calls)/float64(steps))
		if p.GFLOP > 0 {
			line += fmt.Sprintf("  %7.2f GFLOP/s", p.GFLOP/(p.Ms/1000))
		}
		fmt.Println(line)
	}
}

// benchImages loads a few thousand images of the configured source, or
// makes random ones when it is not there (the numbers do not depend on
// pixel values).
func benchImages(cfg *config.Config) ([]*capture.Image, string) {
	if d, err := capture.Open(cfg.Train.Source, 4096); err == nil {
		return train.FitImages(d.Images, cfg.Input.Size, cfg.Input.Channels), cfg.Train.Source
	}
	rng := rand.New(rand.NewPCG(1, 1))
	s, c := cfg.Input.Size, cfg.Input.Channels
	imgs := make([]*capture.Image, 256)
	for i := range imgs {
		im := &capture.Image{W: s, H: s, C: c, Pix: make([]uint8, s*s*c), Label: -1}
		for j := range im.Pix {
			im.Pix[j] = uint8(rng.IntN(256))
		}
		imgs[i] = im
	}
	return imgs, "random images (source not readable)"
}

// inferenceFPS times the assignment path (encoder, head, prototypes in
// inference mode) at a batch size, for about a second.
func inferenceFPS(m *model.Model, v interface {
	Resize(dst []float32, N, n, s int, img *capture.Image)
}, size int, imgs []*capture.Image, batch int) float64 {
	be := m.Backend()
	host := make([]float32, 3*batch*size*size)
	frames := 0
	start := time.Now()
	for time.Since(start) < time.Second || frames < 2*batch {
		for j := 0; j < batch; j++ {
			v.Resize(host, batch, j, size, imgs[(frames+j)%len(imgs)])
		}
		ctx := &model.Ctx{Be: be}
		x := ctx.New(3, batch, size, size)
		be.Upload(x, host)
		sc := m.Scores(ctx, m.Features(ctx, x))
		out := make([]float32, sc.Len())
		be.Download(out, sc)
		ctx.Free()
		frames += batch
	}
	return float64(frames) / time.Since(start).Seconds()
}

// startProfiles starts a CPU profile and returns what ends it and writes
// the heap profile (once, however often it is called).
func startProfiles(cpuPath, memPath string) (stop func(), err error) {
	var cpuFile *os.File
	if cpuPath != "" {
		if cpuFile, err = os.Create(cpuPath); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			cpuFile.Close()
			return nil, err
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if cpuFile != nil {
				pprof.StopCPUProfile()
				cpuFile.Close()
			}
			if memPath != "" {
				f, err := os.Create(memPath)
				if err != nil {
					fmt.Fprintf(os.Stderr, "memprofile: %v\n", err)
					return
				}
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		})
	}, nil
}

// benchCheck compares the first training step on the benchmarked backend
// with the same step on the CPU backend (bench --check).
type benchCheck struct {
	LossRelError    float64 `json:"loss_rel_error"`
	WeightsRelError float64 `json:"weights_rel_error"` // ||w - w_cpu|| / ||w_cpu|| over every parameter after the step
	Passed          bool    `json:"passed"`
}

// checkTolerance is the largest relative error --check accepts.
const checkTolerance = 1e-3

// checkFirstStep runs one step from the same initial weights, images and
// crops on be and on the CPU backend, and compares the loss and the
// weights after it: a GPU path that runs fast but computes wrong results
// fails the bench instead of looking good.
func checkFirstStep(cfg *config.Config, be compute.Backend, imgs []*capture.Image) (*benchCheck, error) {
	var losses [2]float64
	var weights [2][]float32
	for i, b := range []compute.Backend{be, cpu.New()} {
		s, err := train.NewSession(b, cfg)
		if err != nil {
			return nil, err
		}
		r, err := s.Step(imgs)
		if err == nil && r.Step < 0 { // a delayed loss: settle it
			r, err = s.Settle()
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("check: %s: %w", b.Name(), err)
		}
		losses[i] = r.Loss
		for _, p := range s.Model.Params() {
			d := make([]float32, p.W.Len())
			b.Download(d, p.W)
			weights[i] = append(weights[i], d...)
		}
		s.Close()
	}
	var diff, norm float64
	for j, w := range weights[1] {
		d := float64(weights[0][j]) - float64(w)
		diff += d * d
		norm += float64(w) * float64(w)
	}
	c := &benchCheck{LossRelError: math.Abs(losses[0]-losses[1]) / math.Abs(losses[1]), WeightsRelError: math.Sqrt(diff / norm)}
	c.Passed = c.LossRelError <= checkTolerance && c.WeightsRelError <= checkTolerance // false for NaN too
	return c, nil
}

// checkFailed is the error of a --check that did not pass.
func (r *benchReport) checkFailed() error {
	if r.Check == nil || r.Check.Passed {
		return nil
	}
	return fmt.Errorf("check: the %s backend's first step differs from the CPU's: loss %.3g, weights %.3g (relative; at most %g)",
		r.Backend, r.Check.LossRelError, r.Check.WeightsRelError, checkTolerance)
}
