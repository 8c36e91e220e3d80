package train

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/evaluate"
	"github.com/swavd/swavd/model"
)

const fashionTrain = "/usr/share/datasets/fashion-mnist/train"

// fashion loads the first n Fashion-MNIST training images; the Makefile's
// deps target installs them, so a missing data set fails the test.
func fashion(t testing.TB, n int) []*capture.Image {
	t.Helper()
	imgs, err := capture.LoadIDX(fashionTrain, n)
	if err != nil {
		t.Fatalf("%v (run 'make deps' to install dataset-fashion-mnist)", err)
	}
	return imgs
}

// quickConfig is edge-small's SwAV setting (K=128, same crops, loss and
// optimizer) with a narrower encoder and shorter schedule so that tests
// run in seconds.
func quickConfig(t testing.TB, env ...string) *config.Config {
	t.Helper()
	cfg, err := configFor("edge-small", append([]string{
		"SWAVD_MODEL_STEM_WIDTH=16", "SWAVD_MODEL_STAGES=16,32,64", "SWAVD_TRAIN_BATCH=32",
		"SWAVD_OPTIM_WARMUP_STEPS=10", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=20",
		"SWAVD_SWAV_QUEUE_LENGTH=128", "SWAVD_SWAV_QUEUE_FROM_STEP=30",
	}, env...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// configFor loads a preset with SWAVD_ overrides.
func configFor(preset string, env ...string) (*config.Config, error) {
	return config.Load(config.Options{Preset: preset, Environ: env})
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// TestShortRunLearnsWithoutCollapse trains on 2,000 Fashion-MNIST images:
// the loss must fall, and the prototype assignments of held-out images
// must spread over at least 16 of the 128 prototypes.
func TestShortRunLearnsWithoutCollapse(t *testing.T) {
	cfg := quickConfig(t)
	imgs := fashion(t, 3000)
	s, err := NewSession(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var losses []float64
	usedQueue := false
	for i := 0; i < 70; i++ {
		r, err := s.Step(imgs[:2000])
		if err != nil {
			t.Fatal(err)
		}
		if r.Discarded {
			t.Fatalf("step %d: non-finite loss", r.Step)
		}
		usedQueue = usedQueue || r.Queue
		losses = append(losses, r.Loss)
	}
	first, last := mean(losses[:10]), mean(losses[len(losses)-10:])
	t.Logf("loss %.4f -> %.4f", first, last)
	if !(last < first-0.1) {
		t.Errorf("loss did not fall: first 10 steps %.4f, last 10 %.4f", first, last)
	}
	if !usedQueue {
		t.Errorf("the queue was never used")
	}
	e, err := evaluate.Embed(s.Model, &cfg.Views, cfg.Views.Global.Size, imgs[2000:], 250)
	if err != nil {
		t.Fatal(err)
	}
	if n := evaluate.Distinct(e.Clusters); n < 16 {
		t.Errorf("collapse: 1,000 held-out images use %d of %d prototypes, want at least 16", n, cfg.Model.Prototypes)
	} else {
		t.Logf("%d of %d prototypes in use", n, cfg.Model.Prototypes)
	}
}

func state(s *Session) map[string][]float32 {
	be := s.Model.Backend()
	out := map[string][]float32{}
	for _, n := range s.Trainer.State() {
		d := make([]float32, n.T.Len())
		be.Download(d, n.T)
		out[n.Name] = d
	}
	return out
}

// TestResumeMatchesUnbrokenRun checks that a checkpoint holds everything:
// 6 steps, save, load into a fresh session, 6 more steps equals 12 steps
// in one go, bit for bit.
func TestResumeMatchesUnbrokenRun(t *testing.T) {
	cfg := quickConfig(t, "SWAVD_SWAV_QUEUE_FROM_STEP=6", "SWAVD_SWAV_FREEZE_PROTOTYPES_STEPS=3", "SWAVD_SWAV_QUEUE_LENGTH=64")
	imgs := fashion(t, 500)
	run := func(s *Session, n int) {
		for i := 0; i < n; i++ {
			if _, err := s.Step(imgs); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, _ := NewSession(cpu.New(), cfg)
	defer a.Close()
	run(a, 12)
	b, _ := NewSession(cpu.New(), cfg)
	run(b, 6)
	dir := t.TempDir()
	if err := model.SaveCheckpoint(dir, b.Trainer, model.CheckpointMeta{Version: "test", Preset: cfg.Preset}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	c, _ := NewSession(cpu.New(), cfg)
	defer c.Close()
	meta, err := model.LoadCheckpoint(dir, c.Trainer)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Step != 6 || c.Trainer.Step != 6 {
		t.Fatalf("resumed at step %d (meta %d), want 6", c.Trainer.Step, meta.Step)
	}
	run(c, 6)
	sa, sc := state(a), state(c)
	for name, va := range sa {
		vc := sc[name]
		for i := range va {
			if va[i] != vc[i] {
				t.Fatalf("%s[%d]: resumed %v, unbroken %v", name, i, vc[i], va[i])
			}
		}
	}
}

// TestNonFiniteLossRestoresWeights feeds a batch with NaN pixels: the step
// must be discarded and the whole state (weights, momentum, statistics,
// step) restored to what it was before the last step with a finite loss.
func TestNonFiniteLossRestoresWeights(t *testing.T) {
	cfg := quickConfig(t)
	imgs := fashion(t, 200)
	s, _ := NewSession(cpu.New(), cfg)
	defer s.Close()
	for i := 0; i < 3; i++ {
		if _, err := s.Step(imgs); err != nil {
			t.Fatal(err)
		}
	}
	before := state(s)
	if _, err := s.Step(imgs); err != nil {
		t.Fatal(err)
	}
	batch := cfg.Views.NewBatch(cfg.Train.Batch)
	if err := cfg.Views.Fill(batch, imgs[:cfg.Train.Batch], 1); err != nil {
		t.Fatal(err)
	}
	batch.Global[5] = float32(math.NaN())
	_, err := s.Trainer.TrainStep(batch)
	if !errors.Is(err, model.ErrNonFinite) {
		t.Fatalf("TrainStep on NaN input: %v, want ErrNonFinite", err)
	}
	if s.Trainer.Step != 3 {
		t.Errorf("step is %d after the discarded step, want 3", s.Trainer.Step)
	}
	after := state(s)
	for name, vb := range before {
		for i := range vb {
			if vb[i] != after[name][i] && !(math.IsNaN(float64(vb[i])) && math.IsNaN(float64(after[name][i]))) {
				t.Fatalf("%s[%d] changed from %v to %v", name, i, vb[i], after[name][i])
			}
		}
	}
	if r, err := s.Step(imgs); err != nil || r.Discarded || math.IsNaN(r.Loss) {
		t.Fatalf("the step after a discarded one: %+v, %v", r, err)
	}
}

// TestCorruptCheckpointIsRefused truncates a checkpoint: loading it must
// fail with the file named and leave the model untouched.
func TestCorruptCheckpointIsRefused(t *testing.T) {
	cfg := quickConfig(t)
	s, _ := NewSession(cpu.New(), cfg)
	defer s.Close()
	dir := t.TempDir()
	if err := model.SaveCheckpoint(dir, s.Trainer, model.CheckpointMeta{Preset: cfg.Preset}); err != nil {
		t.Fatal(err)
	}
	path := dir + "/" + model.TensorsFile
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	before := state(s)
	if _, err := model.LoadCheckpoint(dir, s.Trainer); err == nil {
		t.Fatal("a truncated checkpoint loaded")
	} else if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	after := state(s)
	for n := range before {
		if before[n][0] != after[n][0] {
			t.Fatalf("%s changed by a failed load", n)
		}
	}
}

// failing is a CPU backend that reports a device error, as the GL backend
// does when it runs out of memory.
type failing struct{ *cpu.Backend }

func (failing) Err() error { return errors.New("out of memory") }

func TestBackendErrorStopsTheStep(t *testing.T) {
	cfg := quickConfig(t)
	s, err := NewSession(failing{cpu.New()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Step(fashion(t, 100))
	if err == nil || !strings.Contains(err.Error(), "out of memory") || !strings.Contains(err.Error(), "cpu backend failed") {
		t.Fatalf("step on a failed backend: %v", err)
	}
}

// TestAdaptPrototypesKeepsTheEncoder trains a little, then adapts only the
// prototypes on a narrower set of images (a fleet device on the base): the
// prototypes must move and the loss stay finite, while every other tensor
// (weights, their momentum, batch-norm running statistics) stays bit for
// bit as it was, so held-out images keep their features exactly.
func TestAdaptPrototypesKeepsTheEncoder(t *testing.T) {
	cfg := quickConfig(t, "SWAVD_SWAV_QUEUE_LENGTH=0")
	imgs := fashion(t, 700)
	s, err := NewSession(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 25; i++ { // past swav.freeze_prototypes_steps (20)
		if _, err := s.Step(imgs[:500]); err != nil {
			t.Fatal(err)
		}
	}
	var narrow []*capture.Image
	for _, im := range imgs[:500] {
		if im.Label >= 0 && im.Label <= 3 {
			narrow = append(narrow, im)
		}
	}
	embed := func() *evaluate.Embedding {
		e, err := evaluate.Embed(s.Model, &cfg.Views, cfg.Views.Global.Size, imgs[500:], 100)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	before, featBefore := state(s), embed()
	s.Trainer.Adapt = model.AdaptPrototypes
	for i := 0; i < 10; i++ {
		r, err := s.Step(narrow)
		if err != nil || r.Discarded || math.IsNaN(r.Loss) {
			t.Fatalf("prototype step %d: %+v, %v", i, r, err)
		}
	}
	after, featAfter := state(s), embed()
	moved := map[string]bool{"prototypes.weight": true, "optim.prototypes.weight.momentum": true}
	for name, vb := range before {
		same := true
		for i := range vb {
			if vb[i] != after[name][i] {
				same = false
				break
			}
		}
		if moved[name] && same {
			t.Errorf("%s did not change in 10 prototype steps", name)
		}
		if !moved[name] && !same {
			t.Errorf("%s changed while only the prototypes adapt", name)
		}
	}
	for i, v := range featBefore.Features {
		if v != featAfter.Features[i] {
			t.Fatalf("held-out feature %d changed from %v to %v", i, v, featAfter.Features[i])
		}
	}
}
