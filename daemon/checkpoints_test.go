package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/model"
)

func TestCheckpointsKeepTheLastAndSkipDamagedOnes(t *testing.T) {
	c, err := NewCheckpoints(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 5; step++ {
		if _, err := c.Save(step*10, map[string][]byte{"a": []byte(strings.Repeat("x", step))}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || !strings.Contains(filepath.Base(list[0]), "0000000050") {
		t.Fatalf("kept %v", list)
	}
	// Damage the newest: one byte changed.
	if err := os.WriteFile(filepath.Join(list[0], "a"), []byte("xxxxy"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got string
	restored, skipped, err := c.Restore(func(files map[string][]byte) error { got = string(files["a"]); return nil })
	if err != nil || restored.Path != list[1] || got != "xxxx" {
		t.Fatalf("restored %+v (%q, %v), want %s", restored, got, err, list[1])
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "checksum") {
		t.Fatalf("skipped %v; want the damaged one named", skipped)
	}
	// A crash mid-write leaves a temporary directory: removed on start.
	os.Mkdir(filepath.Join(c.Dir, ".tmp-123"), 0o755)
	if _, err := NewCheckpoints(c.Dir, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Fatal("leftover temporary directory kept")
	}
}

// A full disk fails the checkpoint with a message in the status; the
// previous checkpoint stays whole and the daemon keeps serving.
func TestFullDiskKeepsThePreviousCheckpoint(t *testing.T) {
	cfg := testConfig(t)
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "training steps", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.Step >= 3 })
	good, err := s.client.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.d.ckpts.writeFile = func(path string, data []byte) error {
		os.WriteFile(path, data[:len(data)/2], 0o644) // what fitted
		return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
	}
	_, err = s.client.Checkpoint(ctx)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("checkpoint on a full disk: %v", err)
	}
	st, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.CheckpointError, "no space left") || st.LastCheckpoint == nil || st.LastCheckpoint.Path != good.Checkpoint.Path {
		t.Fatalf("status after the failure: error %q, last %+v", st.CheckpointError, st.LastCheckpoint)
	}
	if _, err := Read(good.Checkpoint.Path); err != nil {
		t.Fatalf("previous checkpoint damaged: %v", err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(s.d.ckpts.Dir, ".tmp-*")); len(tmps) != 0 {
		t.Fatalf("partial checkpoint left behind: %v", tmps)
	}
	before := st.Camera.Assigned
	waitFor(t, "frames assigned after the failure", func() bool {
		st, err := s.client.Status(ctx)
		return err == nil && st.Camera.Assigned > before+10
	})
	s.d.ckpts.writeFile = writeFileSync
	if _, err := s.client.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint once space is back: %v", err)
	}
	if st, _ := s.client.Status(ctx); st.CheckpointError != "" {
		t.Fatalf("error not cleared: %q", st.CheckpointError)
	}
}

func newTestCheckpoints(t *testing.T, keep int) *Checkpoints {
	t.Helper()
	c, err := NewCheckpoints(t.TempDir(), keep)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func saveStep(t *testing.T, c *Checkpoints, step int) string {
	t.Helper()
	cp, err := c.Save(step, map[string][]byte{"a": []byte(fmt.Sprint("state at ", step))})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // distinct names for checkpoints of one step
	return cp.Path
}

// damage changes one byte of a checkpoint's file, so its sum no longer matches.
func damage(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "a")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func steps(t *testing.T, c *Checkpoints) []int {
	t.Helper()
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, dir := range list {
		step, _, ok := parseCheckpointName(filepath.Base(dir))
		if !ok {
			t.Fatalf("bad name %s", dir)
		}
		out = append(out, step)
	}
	return out
}

// Newer checkpoints that cannot be loaded must not push out the ones the
// daemon writes now: before, each new checkpoint was deleted at once.
func TestCheckpointJustWrittenIsNeverPruned(t *testing.T) {
	c := newTestCheckpoints(t, 3)
	for _, step := range []int{100, 110, 120} {
		damage(t, saveStep(t, c, step))
	}
	c, err := NewCheckpoints(c.Dir, 3) // a restart: what is on disk is checked anew
	if err != nil {
		t.Fatal(err)
	}
	fresh := saveStep(t, c, 15)
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("the checkpoint just written was pruned: %v", err)
	}
	saveStep(t, c, 16)
	saveStep(t, c, 17)
	if got := steps(t, c); !slices.Equal(got, []int{17, 16, 15}) {
		t.Fatalf("kept steps %v; want the three whole ones, damaged ones ranked below them", got)
	}
}

// With only the newest damaged, the good older ones are kept and the
// damaged one goes first.
func TestDamagedCheckpointsNeverOutrankWholeOnes(t *testing.T) {
	c := newTestCheckpoints(t, 3)
	saveStep(t, c, 10)
	saveStep(t, c, 20)
	damage(t, saveStep(t, c, 30))
	restored, skipped, err := c.Restore(func(map[string][]byte) error { return nil })
	if err != nil || restored.Step != 20 || !restored.Restored || len(skipped) != 1 {
		t.Fatalf("restored %+v, skipped %v, err %v", restored, skipped, err)
	}
	saveStep(t, c, 25)
	if got := steps(t, c); !slices.Equal(got, []int{25, 20, 10}) {
		t.Fatalf("kept steps %v, want [25 20 10]", got)
	}
}

// A whole checkpoint of another model configuration is moved aside, named
// in the message, and not counted among those kept.
func TestIncompatibleCheckpointsAreSetAside(t *testing.T) {
	c := newTestCheckpoints(t, 1)
	saveStep(t, c, 10)
	old := saveStep(t, c, 20) // keep 1: step 10 is pruned here
	restored, skipped, err := c.Restore(func(map[string][]byte) error {
		return fmt.Errorf("loading: %w", model.ErrIncompatible)
	})
	if err != nil || restored.Path != "" {
		t.Fatalf("restored %+v, err %v", restored, err)
	}
	aside := filepath.Join(c.Dir, "incompatible", filepath.Base(old))
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), aside) {
		t.Fatalf("skipped %v; want it to say it moved to %s", skipped, aside)
	}
	if _, err := Read(aside); err != nil {
		t.Fatalf("set-aside checkpoint not whole: %v", err)
	}
	saveStep(t, c, 1)
	if got := steps(t, c); !slices.Equal(got, []int{1}) {
		t.Fatalf("kept steps %v, want [1]", got)
	}
	if _, err := Read(aside); err != nil {
		t.Fatalf("set-aside checkpoint pruned: %v", err)
	}
}

// A checkpoint of the same step as the newest supersedes it rather than
// evicting an older, distinct one (SIGTERM right after a periodic one).
func TestSameStepCheckpointSupersedes(t *testing.T) {
	c := newTestCheckpoints(t, 3)
	saveStep(t, c, 10)
	saveStep(t, c, 20)
	first := saveStep(t, c, 30)
	second := saveStep(t, c, 30)
	if got := steps(t, c); !slices.Equal(got, []int{30, 20, 10}) {
		t.Fatalf("kept steps %v, want [30 20 10]", got)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("the superseded checkpoint of step 30 is still there")
	}
	if _, err := os.Stat(second); err != nil {
		t.Fatal(err)
	}
}

// An unreadable checkpoint directory is an error, not "no checkpoint"
// (which would restart training from step 0).
func TestUnreadableCheckpointDirStops(t *testing.T) {
	c := newTestCheckpoints(t, 3)
	saveStep(t, c, 10)
	// The directory is replaced by a file: ReadDir fails (ENOTDIR), as it
	// would on an I/O error or missing permission.
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Dir, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	restored, _, err := c.Restore(func(map[string][]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), c.Dir) || restored.Path != "" {
		t.Fatalf("restore from an unreadable directory: %+v, %v", restored, err)
	}
}

// The same as root cannot see: a directory without read permission.
func TestCheckpointDirWithoutPermissionStops(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory; TestUnreadableCheckpointDirStops covers the error path")
	}
	c := newTestCheckpoints(t, 3)
	saveStep(t, c, 10)
	os.Chmod(c.Dir, 0)
	defer os.Chmod(c.Dir, 0o750)
	if _, _, err := c.Restore(func(map[string][]byte) error { return nil }); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("restore: %v, want a permission error", err)
	}
}

// After a restart, status shows the checkpoint the daemon resumed from.
func TestStatusShowsTheRestoredCheckpoint(t *testing.T) {
	cfg := testConfig(t)
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "training steps", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.Step >= 2 })
	s.stop(t) // writes the final checkpoint
	final := s.d.Status().LastCheckpoint
	if final == nil {
		t.Fatal("no final checkpoint")
	}
	d, err := New(Options{Config: cfg, Backend: cpu.New(), Source: patternSource(t, 200), Log: logging.Printf(t.Logf)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := d.Status().LastCheckpoint
	if got == nil || !got.Restored || got.Path != final.Path || got.Step != final.Step {
		t.Fatalf("status after restart: %+v, want restored %+v", got, final)
	}
}

// Changing the model (model.prototypes) keeps the old checkpoints aside,
// and the new configuration's checkpoints are kept and resumed from.
func TestModelChangeSetsOldCheckpointsAside(t *testing.T) {
	cfg := testConfig(t)
	cfg.Daemon.KeepCheckpoints = 1
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "training steps", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.Step >= 3 })
	s.stop(t)
	old := s.d.Status().LastCheckpoint

	changed := *cfg
	changed.Model.Prototypes = cfg.Model.Prototypes / 2
	changed.Daemon.MinReplay = changed.Daemon.ReplaySize // no training: its checkpoint stays at step 0
	s2 := startDaemon(t, &changed, Options{})
	s2.stop(t)
	aside := filepath.Join(cfg.Daemon.StateDir, "checkpoints", "incompatible", filepath.Base(old.Path))
	if _, err := Read(aside); err != nil {
		t.Fatalf("old checkpoint not set aside whole: %v", err)
	}
	fresh := s2.d.Status().LastCheckpoint
	if fresh == nil || fresh.Step != 0 {
		t.Fatalf("new configuration's checkpoint: %+v", fresh)
	}
	d, err := New(Options{Config: &changed, Backend: cpu.New(), Source: patternSource(t, 200), Log: logging.Printf(t.Logf)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.Status().LastCheckpoint; got == nil || got.Path != fresh.Path {
		t.Fatalf("restarted from %+v, want %s", got, fresh.Path)
	}
}
