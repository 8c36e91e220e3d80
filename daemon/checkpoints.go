package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/model"
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
	Log  logging.Logger
	// writeFile writes and fsyncs one file; tests swap it to fill the disk.
	writeFile func(path string, data []byte) error

	mu    sync.Mutex
	whole map[string]bool // by name: whether the files match the manifest, once checked
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

// Save writes one checkpoint of the given files for step, then prunes
// (see prune). A failure to prune is logged: the checkpoint is written.
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
	final := filepath.Join(c.Dir, checkpointName(step, now))
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(c.Dir); err != nil {
		return api.Checkpoint{}, fmt.Errorf("checkpoint at step %d: %w", step, err)
	}
	c.setWhole(final, true)
	if err := c.prune(final); err != nil {
		c.Log.Warnf("checkpoint at step %d written, but pruning older ones failed: %v", step, err)
	}
	return api.Checkpoint{Path: final, Step: step, At: now, Bytes: size}, nil
}

func checkpointName(step int, at time.Time) string {
	return fmt.Sprintf("ckpt-%010d-%013d", step, at.UnixMilli())
}

// parseCheckpointName reads the step and time out of a checkpoint's name.
func parseCheckpointName(name string) (step int, at time.Time, ok bool) {
	var millis int64
	if n, err := fmt.Sscanf(name, "ckpt-%d-%d", &step, &millis); n != 2 || err != nil {
		return 0, time.Time{}, false
	}
	return step, time.UnixMilli(millis).UTC(), true
}

// List returns the checkpoint directories, newest step first (then newest
// time). An unreadable directory is an error, never "no checkpoints".
func (c *Checkpoints) List() ([]string, error) {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "ckpt-") {
			out = append(out, filepath.Join(c.Dir, e.Name()))
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

func (c *Checkpoints) setWhole(dir string, whole bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.whole == nil {
		c.whole = map[string]bool{}
	}
	c.whole[filepath.Base(dir)] = whole
}

// isWhole says whether dir's files match its manifest, reading them the
// first time this process asks about dir.
func (c *Checkpoints) isWhole(dir string) bool {
	c.mu.Lock()
	whole, known := c.whole[filepath.Base(dir)]
	c.mu.Unlock()
	if !known {
		_, err := Read(dir)
		whole = err == nil
		c.setWhole(dir, whole)
	}
	return whole
}

// prune keeps the newest Keep checkpoints, ranking every whole one above
// every damaged one, and never removes justWritten; an older checkpoint
// of justWritten's step is superseded by it and removed.
func (c *Checkpoints) prune(justWritten string) error {
	list, err := c.List()
	if err != nil {
		return err
	}
	step, _, _ := parseCheckpointName(filepath.Base(justWritten))
	var whole, damaged []string
	for _, dir := range list {
		switch {
		case dir == justWritten:
		case c.isWhole(dir):
			whole = append(whole, dir)
		default:
			damaged = append(damaged, dir)
		}
	}
	kept := 1 // justWritten
	var errs []error
	for _, dir := range append(whole, damaged...) {
		s, _, _ := parseCheckpointName(filepath.Base(dir))
		if s != step && kept < int(c.Keep.Load()) {
			kept++
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
// load. A damaged one (or one load refuses) is skipped; a whole one that
// load finds made for another model (model.ErrIncompatible) is moved to
// the incompatible/ subdirectory, kept but no longer counted. Each is
// reported in skipped. It returns the checkpoint restored (an empty Path
// if none was), or an error if the directory or a checkpoint cannot be
// read at all (missing permission, I/O error): starting over from step 0
// would then lose training that is still on disk.
func (c *Checkpoints) Restore(load func(files map[string][]byte) error) (restored api.Checkpoint, skipped []error, err error) {
	list, err := c.List()
	if err != nil {
		return api.Checkpoint{}, nil, err
	}
	for _, dir := range list {
		name := filepath.Base(dir)
		files, err := Read(dir)
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EIO) {
			return api.Checkpoint{}, skipped, fmt.Errorf("checkpoint %s cannot be read: %w", dir, err)
		}
		c.setWhole(dir, err == nil)
		if err == nil {
			err = load(files)
		}
		if errors.Is(err, model.ErrIncompatible) {
			aside, merr := c.setAside(dir)
			if merr != nil {
				return api.Checkpoint{}, skipped, fmt.Errorf("checkpoint %s is %v and could not be set aside: %w", dir, err, merr)
			}
			skipped = append(skipped, fmt.Errorf("checkpoint %s: %w; moved to %s", name, err, aside))
			continue
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("skipping checkpoint %s: %w", name, err))
			continue
		}
		step, at, _ := parseCheckpointName(name)
		var size int64
		for _, b := range files {
			size += int64(len(b))
		}
		return api.Checkpoint{Path: dir, Step: step, At: at, Bytes: size, Restored: true}, skipped, nil
	}
	return api.Checkpoint{}, skipped, nil
}

// IncompatibleDir is where checkpoints of another model configuration go.
const IncompatibleDir = "incompatible"

func (c *Checkpoints) setAside(dir string) (string, error) {
	asideDir := filepath.Join(c.Dir, IncompatibleDir)
	if err := os.MkdirAll(asideDir, 0o750); err != nil {
		return "", err
	}
	dest := filepath.Join(asideDir, filepath.Base(dir))
	if _, err := os.Lstat(dest); err == nil {
		dest += fmt.Sprintf("-%d", time.Now().UnixNano())
	}
	if err := os.Rename(dir, dest); err != nil {
		return "", err
	}
	return dest, syncDir(c.Dir)
}
