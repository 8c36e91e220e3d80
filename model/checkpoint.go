package model

import (
	"bytes"
	"encoding/json"
	"errors"
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

// ErrIncompatible marks a whole checkpoint made for another model
// configuration (other tensors or shapes): not damaged, just not this
// model's, so a daemon sets it aside instead of deleting it.
var ErrIncompatible = errors.New("made for another model configuration")

// ErrInFlight refuses to save or load while a step's loss is still being
// read (DelayLoss): Settle first, and count what it says; a step undone
// there would otherwise go unreported.
var ErrInFlight = errors.New("model: a training step is still in flight: Settle it first")

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
	// Base is the digest of the fleet base the weights started from.
	Base string `json:"base,omitempty"`
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

// EncodeCheckpoint serializes the trainer's whole state: the safetensors
// bytes (with the metadata inside) and the metadata as indented JSON.
func EncodeCheckpoint(t *Trainer, meta CheckpointMeta) (tensors, metaJSON []byte, err error) {
	if t.inflight != nil {
		return nil, nil, ErrInFlight
	}
	be := t.M.Backend()
	meta.Step, meta.Arch, meta.SavedAt = t.Step, t.M.Arch, time.Now().UTC()
	if t.Queue != nil {
		meta.QueuePos, meta.QueueFilled = t.Queue.Pos, t.Queue.Filled
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, nil, err
	}
	var ts []safetensors.Tensor
	for _, n := range t.State() {
		d := make([]float32, n.T.Len())
		be.Download(d, n.T)
		ts = append(ts, safetensors.Tensor{Name: n.Name, Shape: n.T.Shape(), Data: d})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, map[string]string{metaKey: string(mj)}); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	pretty, _ := json.MarshalIndent(meta, "", "  ")
	return buf.Bytes(), append(pretty, '\n'), nil
}

// SaveCheckpoint writes the trainer's whole state into dir atomically.
func SaveCheckpoint(dir string, t *Trainer, meta CheckpointMeta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tensors, pretty, err := EncodeCheckpoint(t, meta)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, TensorsFile), tensors); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, MetaFile), pretty); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// ParseCheckpoint parses checkpoint tensors and their metadata.
func ParseCheckpoint(b []byte) (*safetensors.File, CheckpointMeta, error) {
	var meta CheckpointMeta
	f, err := safetensors.Parse(b)
	if err != nil {
		return nil, meta, err
	}
	if err := json.Unmarshal([]byte(f.Metadata[metaKey]), &meta); err != nil {
		return nil, meta, fmt.Errorf("metadata: %w", err)
	}
	return f, meta, nil
}

// ReadCheckpoint parses dir's tensors and metadata without loading them.
func ReadCheckpoint(dir string) (*safetensors.File, CheckpointMeta, error) {
	path := filepath.Join(dir, TensorsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, CheckpointMeta{}, fmt.Errorf("checkpoint: %w", err)
	}
	f, meta, err := ParseCheckpoint(b)
	if err != nil {
		return nil, meta, fmt.Errorf("checkpoint: %s: %w", path, err)
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
	if err := t.LoadState(f, meta); err != nil {
		return meta, fmt.Errorf("checkpoint: %s: %w", dir, err)
	}
	return meta, nil
}

// LoadState restores the trainer from parsed checkpoint tensors.
func (t *Trainer) LoadState(f *safetensors.File, meta CheckpointMeta) error {
	if t.inflight != nil {
		return ErrInFlight
	}
	state := t.State()
	for _, n := range state {
		st, ok := f.Tensors[n.Name]
		if !ok {
			return fmt.Errorf("%w: no tensor %q", ErrIncompatible, n.Name)
		}
		if compute.Size(st.Shape) != n.T.Len() || !sameShape(st.Shape, n.T.Shape()) {
			return fmt.Errorf("%w: tensor %q has shape %v, the model needs %v", ErrIncompatible, n.Name, st.Shape, n.T.Shape())
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
	return nil
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
