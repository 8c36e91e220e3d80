package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
)

// swavd builds the real binary once per test run.
func swavd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "swavd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SWAVD_TRAIN_LOG_EVERY=2")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCommandsEndToEnd(t *testing.T) {
	bin := swavd(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	out, err := run(t, bin, "train", "--preset", "tiny", "--steps", "4", "--limit", "300", "--out", dir)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	if !strings.Contains(out, "step 4 loss") {
		t.Errorf("train logged no loss:\n%s", out)
	}
	// Resume: the preset comes from the checkpoint.
	out, err = run(t, bin, "train", "--steps", "6", "--limit", "300", "--out", dir)
	if err != nil || !strings.Contains(out, "resumed from") || !strings.Contains(out, "preset tiny") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	var meta struct{ Step int }
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil || json.Unmarshal(b, &meta) != nil || meta.Step != 6 {
		t.Fatalf("meta.json: %s (%v)", b, err)
	}
	out, err = run(t, bin, "eval", "--checkpoint", dir, "--test-limit", "200", "--bank-limit", "300", "--json")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	var rep map[string]float64
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("eval output is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"knn_top1", "nmi", "ari", "nonempty_clusters"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("eval JSON lacks %s", k)
		}
	}
	if rep["knn_top1"] <= 0.1 || rep["nonempty_clusters"] < 1 {
		t.Errorf("eval: %v", rep)
	}
	out, err = run(t, bin, "bench", "--preset", "tiny", "--steps", "2", "--json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var bench map[string]any
	if err := json.Unmarshal([]byte(out), &bench); err != nil {
		t.Fatalf("bench output is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"samples_per_s", "ms_per_step_split", "inference_frames_per_s", "achieved_gflop_per_s", "peak_rss_mib"} {
		if _, ok := bench[k]; !ok {
			t.Errorf("bench JSON lacks %s", k)
		}
	}
}

// TestBenchOnGL runs the bench on the GL backend (llvmpipe here) and checks
// that it reports the renderer and version; auto must pick GL where GL
// passes its self-test.
func TestBenchOnGL(t *testing.T) {
	bin := swavd(t)
	out, err := run(t, bin, "bench", "--backend", "gl", "--preset", "tiny", "--steps", "1", "--gl-profile", "1", "--check", "--json")
	if err != nil {
		if strings.Contains(out, "no EGL display") {
			t.Skipf("no EGL display can be opened here: %s", out)
		}
		t.Fatalf("bench --backend gl: %v\n%s", err, out)
	}
	var rep struct {
		Backend    string
		GL         *gl.Info
		GLPrograms []struct {
			Program   string
			Calls     int
			Ms, GFLOP float64
		} `json:"gl_programs"`
		Check *benchCheck
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("bench output is not JSON: %v\n%s", err, out)
	}
	if rep.GL == nil || rep.GL.Renderer == "" || rep.GL.Version == "" || !strings.HasPrefix(rep.Backend, "gl") {
		t.Fatalf("bench --backend gl reported %+v", rep)
	}
	if c := rep.Check; c == nil || !c.Passed || !(c.LossRelError < 1e-4) || !(c.WeightsRelError < 1e-4) {
		t.Fatalf("bench --check on GL: %+v", c)
	}
	// --gl-profile: every program of a step, the convolutions with their work.
	progs := map[string]bool{}
	for _, p := range rep.GLPrograms {
		progs[p.Program] = true
		if p.Calls < 1 || p.Ms < 0 || (strings.HasPrefix(p.Program, "matmul/") != (p.GFLOP > 0)) {
			t.Errorf("profile row %+v", p)
		}
	}
	for _, want := range []string{"matmul/MODE_CONV_FWD", "matmul/MODE_CONV_DX", "matmul/MODE_CONV_DW", "batchnorm/NORMALIZE", "sinkhorn/ROWS", "elementwise/SGD"} {
		if !progs[want] {
			t.Errorf("--gl-profile lacks %s: %+v", want, rep.GLPrograms)
		}
	}
	if out, err := run(t, bin, "bench", "--backend", "cpu", "--preset", "tiny", "--steps", "1", "--gl-profile", "1"); err == nil || !strings.Contains(out, "needs the GL backend") {
		t.Errorf("--gl-profile on the CPU: %v\n%s", err, out)
	}
	// auto takes GL only on a GPU: on a software renderer (llvmpipe here)
	// the CPU backend is faster, and auto says why it chose it.
	out, err = run(t, bin, "bench", "--backend", "auto", "--preset", "tiny", "--steps", "1")
	if rep.GL.Software() {
		if err != nil || !strings.Contains(out, "using the CPU") || !strings.Contains(out, "software renderer") {
			t.Fatalf("bench --backend auto on %s: %v\n%s", rep.GL.Renderer, err, out)
		}
	} else if err != nil || !strings.Contains(out, "GL backend:") {
		t.Fatalf("bench --backend auto did not choose GL on %s: %v\n%s", rep.GL.Renderer, err, out)
	}
}

// TestTrainOnGL trains on the GL backend, which reads each step's loss
// while the next runs: every step is logged once, in order, and the
// checkpoint holds the last step, settled.
func TestTrainOnGL(t *testing.T) {
	bin := swavd(t)
	dir := filepath.Join(t.TempDir(), "ckpt")
	out, err := run(t, bin, "train", "--backend", "gl", "--preset", "tiny", "--steps", "5", "--log-every", "1", "--limit", "300", "--out", dir)
	if err != nil {
		if strings.Contains(out, "no EGL display") {
			t.Skipf("no EGL display can be opened here: %s", out)
		}
		t.Fatalf("train --backend gl: %v\n%s", err, out)
	}
	var logged []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "step" && f[2] == "loss" {
			logged = append(logged, f[1])
		}
	}
	if strings.Join(logged, ",") != "1,2,3,4,5" {
		t.Fatalf("steps logged %v, want 1..5 once each:\n%s", logged, out)
	}
	var meta struct{ Step int }
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil || json.Unmarshal(b, &meta) != nil || meta.Step != 5 {
		t.Fatalf("meta.json: %s (%v)", b, err)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	bin := swavd(t)
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad-images-idx3-ubyte")
	os.WriteFile(bad, []byte{0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3}, 0o644)
	cfg := filepath.Join(tmp, "swavd.yaml")
	os.WriteFile(cfg, []byte("swav:\n  temperature: -1\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", "--out", tmp + "/o", "--source", "idx:" + filepath.Join(tmp, "bad")}, bad},
		{[]string{"train", "--out", tmp + "/o", "--config", cfg}, "swav.temperature"},
		{[]string{"train", "--out", tmp + "/o", "--batch", "1"}, "train.batch"},
		{[]string{"train", "--out", tmp + "/o", "--preset", "nope"}, "nope"},
		{[]string{"eval", "--checkpoint", tmp + "/none"}, "none"},
		{[]string{"frobnicate"}, "unknown command"},
	}
	for _, c := range cases {
		out, err := run(t, bin, c.args...)
		if err == nil {
			t.Errorf("%v: succeeded", c.args)
		}
		if !strings.Contains(out, c.want) || strings.Contains(out, "panic") {
			t.Errorf("%v: output does not name %q:\n%s", c.args, c.want, out)
		}
	}
}

// skewed is a CPU backend with a wrong optimizer: it takes twice the step.
type skewed struct{ *cpu.Backend }

func (s skewed) SGDStep(w, g, m compute.Tensor, p compute.SGDParams) {
	p.LR *= 2
	s.Backend.SGDStep(w, g, m, p)
}

// --check fails a backend that computes wrong results, however fast.
func TestBenchCheckFailsAWrongBackend(t *testing.T) {
	cfg, err := config.Load(config.Options{Preset: "tiny", Environ: []string{"SWAVD_OPTIM_WARMUP_STEPS=0"}})
	if err != nil {
		t.Fatal(err)
	}
	imgs, _ := benchImages(cfg)
	c, err := checkFirstStep(cfg, skewed{cpu.New()}, imgs)
	if err != nil {
		t.Fatal(err)
	}
	rep := benchReport{Backend: "skewed", Check: c}
	if c.Passed || !(c.WeightsRelError > checkTolerance) || rep.checkFailed() == nil {
		t.Fatalf("a backend taking twice the step passed the check: %+v", c)
	}
	if c, err := checkFirstStep(cfg, cpu.New(), imgs); err != nil || !c.Passed || c.WeightsRelError != 0 {
		t.Fatalf("the CPU against itself: %+v %v", c, err)
	}
}
