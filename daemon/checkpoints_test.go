package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
	list := c.List()
	if len(list) != 3 || !strings.Contains(filepath.Base(list[0]), "0000000050") {
		t.Fatalf("kept %v", list)
	}
	// Damage the newest: one byte changed.
	if err := os.WriteFile(filepath.Join(list[0], "a"), []byte("xxxxy"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got string
	dir, skipped := c.Restore(func(files map[string][]byte) error { got = string(files["a"]); return nil })
	if dir != list[1] || got != "xxxx" {
		t.Fatalf("restored %s (%q), want %s", dir, got, list[1])
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
