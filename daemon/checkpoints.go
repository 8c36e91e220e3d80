package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/swavd/swavd/api"
)

const manifestFile = "manifest.json"

// Checkpoints keeps the daemon's checkpoints in one directory, each a
// subdirectory ckpt-STEP-MILLIS holding files and a manifest of their
// SHA-256 sums. A checkpoint is written into a temporary directory
// (every file fsynced), renamed into place and the parent fsynced, so a
// crash or a full disk leaves the older checkpoints as they were.
type Checkpoints struct {
	Dir  string
	Keep atomic.Int64 // how many to keep; a reload changes it while the trainer saves
	// writeFile writes and fsyncs one file; tests swap it to fill the disk.
	writeFile func(path string, data []byte) error
}

// NewCheckpoints uses dir (created if needed) and removes the temporary
// directories an interrupted write left behind.
func NewCheckpoints(dir string, keep int) (*Checkpoints, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, t := range tmps {
		os.RemoveAll(t)
	}
	c := &Checkpoints{Dir: dir, writeFile: writeFileSync}
	c.Keep.Store(int64(keep))
	return c, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Save writes one checkpoint of the given files for step.
func (c *Checkpoints) Save(step int, files map[string][]byte) (api.Checkpoint, error) {
	tmp, err := os.MkdirTemp(c.Dir, ".tmp-")
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (api.Checkpoint, error) {
		os.RemoveAll(tmp)
		return api.Checkpoint{}, fmt.Errorf("checkpoint at step %d: %w", step, err)
	}
	manifest := map[string]string{}
	var size int64
	for name, data := range files {
		if err := c.writeFile(filepath.Join(tmp, name), data); err != nil {
			return fail(err)
		}
		sum := sha256.Sum256(data)
		manifest[name] = hex.EncodeToString(sum[:])
		size += int64(len(data))
	}
	mb, _ := json.MarshalIndent(manifest, "", "  ")
	if err := c.writeFile(filepath.Join(tmp, manifestFile), mb); err != nil {
		return fail(err)
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	now := time.Now().UTC()
	final := filepath.Join(c.Dir, fmt.Sprintf("ckpt-%010d-%013d", step, now.UnixMilli()))
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(c.Dir); err != nil {
		return api.Checkpoint{}, fmt.Errorf("checkpoint at step %d: %w", step, err)
	}
	c.prune()
	return api.Checkpoint{Path: final, Step: step, At: now, Bytes: size}, nil
}

// List returns the checkpoint directories, newest first.
func (c *Checkpoints) List() []string {
	ents, _ := os.ReadDir(c.Dir)
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "ckpt-") {
			out = append(out, filepath.Join(c.Dir, e.Name()))
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func (c *Checkpoints) prune() {
	list := c.List()
	for _, old := range list[min(int(c.Keep.Load()), len(list)):] {
		os.RemoveAll(old)
	}
}

// Read returns a checkpoint's files after checking them against its
// manifest.
func Read(dir string) (map[string][]byte, error) {
	mb, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var manifest map[string]string
	if err := json.Unmarshal(mb, &manifest); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	files := map[string][]byte{}
	for name, want := range manifest {
		if strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("%s names %q", manifestFile, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != want {
			return nil, fmt.Errorf("%s does not match its checksum (damaged)", name)
		}
		files[name] = data
	}
	return files, nil
}

// Restore tries the checkpoints newest first, handing each one's files to
// load; a damaged one (or one load refuses) is skipped and reported in
// skipped. It returns the directory restored, or "" if none was.
func (c *Checkpoints) Restore(load func(files map[string][]byte) error) (restored string, skipped []error) {
	for _, dir := range c.List() {
		files, err := Read(dir)
		if err == nil {
			err = load(files)
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("skipping checkpoint %s: %w", filepath.Base(dir), err))
			continue
		}
		return dir, skipped
	}
	return "", skipped
}
