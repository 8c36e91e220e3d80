package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/safetensors"
)

// Checkpoint file names inside a checkpoint directory.
const (
	TensorsFile = "checkpoint.safetensors"
	MetaFile    = "meta.json"
	metaKey     = "swavd"
)

// CheckpointMeta describes a checkpoint. It is stored inside the
// safetensors header (authoritative) and beside it as meta.json for people.
type CheckpointMeta struct {
	Version     string          `json:"version"`
	Step        int             `json:"step"`
	Preset      string          `json:"preset"`
	Config      json.RawMessage `json:"config,omitempty"`
	Arch        Arch            `json:"arch"`
	QueuePos    int             `json:"queue_pos"`
	QueueFilled int             `json:"queue_filled"`
	SavedAt     time.Time       `json:"saved_at"`
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory: write, fsync, rename, fsync the directory. A crash leaves
// either the old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error { f.Close(); os.Remove(tmp); return err }
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SaveCheckpoint writes the trainer's whole state into dir atomically.
func SaveCheckpoint(dir string, t *Trainer, meta CheckpointMeta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	be := t.M.Backend()
	meta.Step, meta.Arch, meta.SavedAt = t.Step, t.M.Arch, time.Now().UTC()
	if t.Queue != nil {
		meta.QueuePos, meta.QueueFilled = t.Queue.Pos, t.Queue.Filled
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	var ts []safetensors.Tensor
	for _, n := range t.State() {
		d := make([]float32, n.T.Len())
		be.Download(d, n.T)
		ts = append(ts, safetensors.Tensor{Name: n.Name, Shape: n.T.Shape(), Data: d})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, map[string]string{metaKey: string(mj)}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, TensorsFile), buf.Bytes()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	pretty, _ := json.MarshalIndent(meta, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, MetaFile), append(pretty, '\n')); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// ReadCheckpoint parses dir's tensors and metadata without loading them.
func ReadCheckpoint(dir string) (*safetensors.File, CheckpointMeta, error) {
	var meta CheckpointMeta
	path := filepath.Join(dir, TensorsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, meta, fmt.Errorf("checkpoint: %w", err)
	}
	f, err := safetensors.Parse(b)
	if err != nil {
		return nil, meta, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata[metaKey]), &meta); err != nil {
		return nil, meta, fmt.Errorf("checkpoint: %s: metadata: %w", path, err)
	}
	return f, meta, nil
}

// LoadCheckpoint restores the trainer's whole state from dir. Every tensor
// must be present with the right shape; nothing is changed otherwise.
func LoadCheckpoint(dir string, t *Trainer) (CheckpointMeta, error) {
	f, meta, err := ReadCheckpoint(dir)
	if err != nil {
		return meta, err
	}
	state := t.State()
	for _, n := range state {
		st, ok := f.Tensors[n.Name]
		if !ok {
			return meta, fmt.Errorf("checkpoint: %s: no tensor %q (different model?)", dir, n.Name)
		}
		if compute.Size(st.Shape) != n.T.Len() || !sameShape(st.Shape, n.T.Shape()) {
			return meta, fmt.Errorf("checkpoint: %s: tensor %q has shape %v, the model needs %v", dir, n.Name, st.Shape, n.T.Shape())
		}
	}
	be := t.M.Backend()
	for _, n := range state {
		be.Upload(n.T, f.Tensors[n.Name].Data)
	}
	t.Step = meta.Step
	if t.Queue != nil {
		t.Queue.Pos, t.Queue.Filled = meta.QueuePos, meta.QueueFilled
	}
	t.take(&t.good)
	return meta, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
