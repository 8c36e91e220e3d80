package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/daemon"
	"github.com/swavd/swavd/internal/proctest"
	"github.com/swavd/swavd/safetensors"
)

const replaySet = "/usr/share/datasets/fashion-mnist/t10k"

// swavdProc is a running `swavd run` with its log.
type swavdProc struct {
	cmd *exec.Cmd
	log *proctest.Buffer
}

func startSwavd(t *testing.T, bin, socket, state string, args ...string) *swavdProc {
	t.Helper()
	return startSwavdEnv(t, bin, socket, state, nil, args...)
}

// startSwavdEnv is startSwavd with more environment (later entries win).
func startSwavdEnv(t *testing.T, bin, socket, state string, env []string, args ...string) *swavdProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run", "--preset", "tiny", "--source", "idx:" + replaySet, "--socket", socket, "--state-dir", state}, args...)...)
	cmd.Env = append(os.Environ(), "SWAVD_DAEMON_FPS=200", "SWAVD_DAEMON_MIN_REPLAY=64", "SWAVD_DAEMON_CHECKPOINT_STEPS=15", "SWAVD_DAEMON_REPLAY_SIZE=2000")
	cmd.Env = append(cmd.Env, env...)
	p := &swavdProc{cmd: cmd, log: &proctest.Buffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

func swavctl(t *testing.T, bin, socket string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"--socket", socket}, args...)...).CombinedOutput()
	return string(out), err
}

func statusJSON(t *testing.T, ctl, socket string) (*api.Status, error) {
	out, err := swavctl(t, ctl, socket, "status", "--json")
	if err != nil {
		return nil, err
	}
	var s api.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return &s, nil
}

func waitStatus(t *testing.T, ctl, socket string, p *swavdProc, what string, ok func(*api.Status) bool) *api.Status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if s, err := statusJSON(t, ctl, socket); err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The real binaries: swavd on a Fashion-MNIST replay, swavctl against it;
// SIGKILL mid-run, restart, and the step resumes from the last checkpoint.
func TestDaemonEndToEnd(t *testing.T) {
	if _, err := os.Stat(replaySet + "-images-idx3-ubyte.gz"); err != nil {
		t.Skipf("Fashion-MNIST not installed (make deps): %v", err)
	}
	bin := swavd(t)
	ctl := filepath.Join(t.TempDir(), "swavctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../swavctl").CombinedOutput(); err != nil {
		t.Fatalf("go build swavctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	socket, state := filepath.Join(dir, "swavd.sock"), filepath.Join(dir, "state")

	out, err := swavctl(t, ctl, socket, "status")
	if err == nil || !strings.Contains(out, "swavd is not running") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("status with no daemon: %v %q; want one line saying it is not running", err, out)
	}

	p := startSwavd(t, bin, socket, state)
	s := waitStatus(t, ctl, socket, p, "steps and a checkpoint", func(s *api.Status) bool {
		return s.Training.Step >= 20 && s.LastCheckpoint != nil
	})
	if s.Preset != "tiny" || s.Backend.Name != "cpu" || s.Camera.State != "streaming" || s.Camera.FramesIn == 0 ||
		s.Camera.Assigned == 0 || !(s.Training.Loss > 0) || s.Training.LR <= 0 || s.Clusters.K != 32 || s.Training.Replay == 0 {
		t.Fatalf("status: %+v", s)
	}
	human, err := swavctl(t, ctl, socket, "status")
	if err != nil || !strings.Contains(human, "training") || !strings.Contains(human, "clusters") {
		t.Fatalf("status: %v\n%s", err, human)
	}
	out, err = swavctl(t, ctl, socket, "watch", "--count", "3", "--json")
	if err != nil {
		t.Fatalf("watch: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var ev api.Assignment
	if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &ev) != nil || ev.Seq == 0 || ev.Label == nil {
		t.Fatalf("watch --count 3 --json:\n%s", out)
	}
	pf := filepath.Join(dir, "protos.safetensors")
	if out, err := swavctl(t, ctl, socket, "prototypes", "pull", "-o", pf); err != nil {
		t.Fatalf("prototypes pull: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse(b)
	if err != nil || len(f.Tensors["prototypes"].Shape) != 2 || f.Tensors["prototypes"].Shape[0] != 32 {
		t.Fatalf("pulled prototypes: %v", err)
	}
	img := filepath.Join(dir, "frame.png")
	m := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range m.Pix {
		m.Pix[i] = uint8(i)
	}
	var pb bytes.Buffer
	png.Encode(&pb, m)
	os.WriteFile(img, pb.Bytes(), 0o644)
	out, err = swavctl(t, ctl, socket, "--json", "assign", img)
	var a api.Assignment
	if err != nil || json.Unmarshal([]byte(out), &a) != nil || len(a.Probs) != 32 || a.Cluster < 0 || a.Cluster >= 32 {
		t.Fatalf("assign: %v\n%s", err, out)
	}
	if out, err := swavctl(t, ctl, socket, "checkpoint"); err != nil || !strings.Contains(out, "checkpoint at step") {
		t.Fatalf("checkpoint: %v\n%s", err, out)
	}
	mosaic := filepath.Join(dir, "mosaic.png")
	if out, err := swavctl(t, ctl, socket, "clusters", "--mosaic", mosaic); err != nil || !strings.Contains(out, "mosaic written") {
		t.Fatalf("clusters --mosaic: %v\n%s", err, out)
	}

	// SIGKILL mid-run: no final checkpoint; the newest periodic one is used.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	ckpts, err := (&daemon.Checkpoints{Dir: filepath.Join(state, "checkpoints")}).List()
	if err != nil || len(ckpts) == 0 {
		t.Fatalf("no checkpoint on disk: %v", err)
	}
	sm := regexp.MustCompile(`ckpt-0*(\d+)-`).FindStringSubmatch(filepath.Base(ckpts[0]))
	want, _ := strconv.Atoi(sm[1])
	// No periodic checkpoint after the restart, so status keeps showing the restored one.
	p2 := startSwavdEnv(t, bin, socket, state, []string{"SWAVD_DAEMON_CHECKPOINT_STEPS=0"})
	s2 := waitStatus(t, ctl, socket, p2, "the restarted daemon", func(*api.Status) bool { return true })
	if s2.Training.Step < want || !strings.Contains(p2.log.String(), "at step "+strconv.Itoa(want)+" ") {
		t.Fatalf("after SIGKILL: step %d, newest checkpoint at %d; log:\n%s", s2.Training.Step, want, p2.log)
	}
	if c := s2.LastCheckpoint; c == nil || !c.Restored || c.Path != ckpts[0] {
		t.Fatalf("status after the restart shows checkpoint %+v, want %s restored", c, ckpts[0])
	}
	if out, err := swavctl(t, ctl, socket, "status"); err != nil || !strings.Contains(out, "(resumed from)") {
		t.Fatalf("swavctl status after the restart: %v\n%s", err, out)
	}
	waitStatus(t, ctl, socket, p2, "training after the restart", func(s *api.Status) bool { return s.Training.Step > want })

	// SIGTERM: a final checkpoint, exit 0.
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p2.log)
	}
	if !strings.Contains(p2.log.String(), "stopped") {
		t.Fatalf("log:\n%s", p2.log)
	}
}

// Socket activation: the socket is made by "systemd" (here the test) and
// handed over as fd 3 with LISTEN_PID and LISTEN_FDS; swavd run --socket
// fd:// serves on it.
// With compute.backend auto, status says which backend trains and, when
// it is the CPU, why GL was not taken (here: llvmpipe is a software
// renderer, or there is no EGL display at all).
func TestStatusSaysWhyNotGL(t *testing.T) {
	bin := swavd(t)
	ctl := filepath.Join(t.TempDir(), "swavctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../swavctl").CombinedOutput(); err != nil {
		t.Fatalf("go build swavctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "swavd.sock")
	p := startSwavd(t, bin, socket, filepath.Join(dir, "state"), "--backend", "auto")
	s := waitStatus(t, ctl, socket, p, "the daemon to serve", func(*api.Status) bool { return true })
	cpuWithReason := s.Backend.Name == "cpu" && s.Backend.Fallback != ""
	gpu := strings.HasPrefix(s.Backend.Name, "gl") && s.Backend.Fallback == ""
	if !cpuWithReason && !gpu {
		t.Fatalf("backend %+v: want GL, or the CPU and why", s.Backend)
	}
	if human, _ := swavctl(t, ctl, socket, "status"); cpuWithReason && !strings.Contains(human, "fell back: ") {
		t.Errorf("swavctl status does not say why:\n%s", human)
	}
	t.Logf("backend %+v", s.Backend)
}

func TestSocketActivation(t *testing.T) {
	bin := swavd(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "swavd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" run --preset tiny --source pattern --socket fd:// --state-dir "$1"`, bin, filepath.Join(dir, "state"))
	cmd.ExtraFiles = []*os.File{lf}
	log := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := api.NewClient(socket)
	s, err := c.Wait(context.Background(), 30*time.Second)
	if err != nil || s.Camera.Source != "pattern" {
		t.Fatalf("status over the activated socket: %v %+v\n%s", err, s, log)
	}
}
