package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/link"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/safetensors"
)

// fleetSource gives the fleet link the daemon's state. It reads only the
// assigner's published copy of the weights and the statistics: a pull
// never waits for a training step.
type fleetSource struct{ d *Daemon }

func (f fleetSource) Step() int                          { return f.d.assign.Step() }
func (f fleetSource) Snapshot() (*fleet.Snapshot, error) { return f.d.fleetSnapshot() }

func (f fleetSource) Base() (string, bool) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	return f.d.base, f.d.wantsBase
}

// LoadBase hands a checked base to the trainer goroutine, which loads it
// between two steps; a device that did not ask keeps its weights.
func (f fleetSource) LoadBase(digest string, b []byte) error {
	d := f.d
	d.mu.Lock()
	wants := d.wantsBase
	d.mu.Unlock()
	if !wants {
		return fmt.Errorf("base %.12s refused: this device has weights of its own (step %d); swavctl fleet rebase replaces them", digest, d.assign.Step())
	}
	file, meta, err := model.ParseCheckpoint(b)
	if err != nil {
		return fmt.Errorf("base %.12s refused: %w", digest, err)
	}
	req := baseLoad{digest: digest, file: file, meta: meta, reply: make(chan error, 1)}
	select {
	case d.baseReq <- req:
	case <-time.After(5 * time.Minute):
		return errors.New("base not loaded: the trainer did not take it within 5 minutes")
	}
	return <-req.reply
}

// baseLoad is a base for the trainer to load between steps.
type baseLoad struct {
	digest string
	file   *safetensors.File
	meta   model.CheckpointMeta
	reply  chan error
}

// loadBase runs on the trainer goroutine: the weights (and optimizer
// state) become the base's, the assigner gets them, and a checkpoint
// records the new start.
func (d *Daemon) loadBase(req baseLoad) error {
	d.settle()
	if err := d.sess.Trainer.LoadState(req.file, req.meta); err != nil {
		err = fmt.Errorf("base %.12s refused: %w", req.digest, err)
		d.o.Log.Warnf("fleet: %v", err)
		return err
	}
	d.mu.Lock()
	d.base, d.wantsBase, d.awaitBase = req.digest, false, false
	d.training.Step = d.sess.Trainer.Step
	d.mu.Unlock()
	d.assign.Publish(d.sess.Model, d.sess.Trainer.Step)
	d.o.Log.Infof("fleet: started from base %s at step %d", req.digest, d.sess.Trainer.Step)
	if _, err := d.checkpointNow(); err != nil {
		d.o.Log.Errorf("%v", err)
	}
	return nil
}

// handleRebase writes a checkpoint, then asks the fleet for its base; the
// device keeps training until the base arrives and replaces the weights.
func (d *Daemon) handleRebase(w http.ResponseWriter, r *http.Request) error {
	if d.fleet == nil {
		return errorf(http.StatusConflict, "no fleet link (fleet.url): there is no base to take")
	}
	c, err := d.RequestCheckpoint(r.Context())
	if err != nil {
		return errorf(http.StatusInternalServerError, "rebase not started: the checkpoint before it failed: %v", err)
	}
	d.mu.Lock()
	d.wantsBase = true
	d.mu.Unlock()
	d.fleet.Announce()
	writeJSON(w, http.StatusOK, api.RebaseResult{Checkpoint: c, State: "waiting for the fleet base; training goes on until it arrives"})
	return nil
}

// deviceID is fleet.device_id, or else the machine id.
func (d *Daemon) deviceID() (string, error) {
	if id := d.config().Fleet.DeviceID; id != "" {
		return id, fleet.CheckDeviceID(id)
	}
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return "", fmt.Errorf("fleet.device_id is empty and the machine id is unreadable: %w", err)
	}
	id := strings.TrimSpace(string(b))
	return id, fleet.CheckDeviceID(id)
}

// fleetSnapshot is what the device shares: the prototypes in use, each
// cluster's centroid (mean embedding) and the per-cluster counts; the
// model's weights when fleet.share is model, and thumbnails of each
// cluster's newest frame with fleet.share_exemplars.
func (d *Daemon) fleetSnapshot() (*fleet.Snapshot, error) {
	cfg := d.config()
	id, err := d.deviceID()
	if err != nil {
		return nil, err
	}
	protos, weights, step := d.assign.Weights(true)
	centroids, err := d.centroids(cfg, weights, step)
	if err != nil { // the fleet then places the clusters by their prototypes
		d.o.Log.Warnf("fleet: snapshot without centroids: %v", err)
	}
	if cfg.Fleet.Share != "model" {
		weights = nil
	}
	counts, recent := d.stats.Counts()
	arch, _ := json.Marshal(cfg.Model)
	modelCfg, _ := json.Marshal(struct {
		Input any `json:"input"`
		Model any `json:"model"`
	}{cfg.Input, cfg.Model})
	sum := sha256.Sum256(modelCfg)
	s := &fleet.Snapshot{
		Meta: fleet.SnapshotMeta{Device: id, Step: step, Preset: cfg.Preset, Arch: string(arch), ConfigDigest: hex.EncodeToString(sum[:]),
			Version: d.o.Version, TakenAt: time.Now().UTC(), K: cfg.Model.Prototypes, D: cfg.Model.ProjDim},
		Prototypes: protos, Centroids: centroids, Counts: counts, Recent: recent, Model: weights,
	}
	d.mu.Lock()
	s.Meta.Base = d.base
	d.mu.Unlock()
	if cfg.Fleet.ShareExemplars {
		s.Exemplars, s.ExemplarChannels = d.stats.Thumbnails(fleet.ExemplarSize, cfg.Input.Channels), cfg.Input.Channels
	}
	return s, nil
}

// centroidFrames is how many replay frames a snapshot's centroids average.
const centroidFrames = 2048

// centroids are the snapshot's cluster centroids under the weights it
// shares (the inference tensors of step): frames drawn from the replay
// buffer go through a private copy of the model, so the live assigner is
// not held up. Nil while the replay buffer is empty.
func (d *Daemon) centroids(cfg *config.Config, weights []safetensors.Tensor, step int) ([]float32, error) {
	n := min(d.replay.Len(), centroidFrames)
	if n == 0 {
		return nil, nil
	}
	frames := make([]*capture.Image, n)
	if err := d.replay.Sample(frames, rand.New(rand.NewPCG(uint64(step), 0xce47))); err != nil {
		return nil, err
	}
	a, err := NewAssigner(cfg)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := a.LoadWeights(weights, step); err != nil {
		return nil, err
	}
	return a.Centroids(frames)
}

// startFleet opens the fleet link when fleet.url is set. A link that
// cannot start (bad certificate files, no device id) is logged and shown
// in status; the daemon goes on without it.
func (d *Daemon) startFleet() {
	fc := d.config().Fleet
	if fc.URL == "" {
		return
	}
	id, err := d.deviceID()
	if err == nil {
		d.fleet, err = link.Start(link.Options{URL: fc.URL, DeviceID: id, CA: fc.CA, Cert: fc.Cert, Key: fc.Key,
			Version: d.o.Version, Preset: d.config().Preset, Share: fc.Share, AnnounceEvery: fc.AnnounceEvery,
			SnapshotEvery: fc.SnapshotEvery, Log: d.o.Log}, fleetSource{d})
	}
	if err != nil {
		d.fleetErr = err.Error()
		d.o.Log.Errorf("fleet: not linked: %v", err)
	}
}

func (d *Daemon) fleetStatus() api.FleetLink {
	fc := d.config().Fleet
	var st api.FleetLink
	switch {
	case d.fleet != nil:
		st = d.fleet.Status()
	case fc.URL == "":
		st = api.FleetLink{State: "off"}
	default:
		st = api.FleetLink{State: link.StateFailed, URL: fc.URL, LastError: d.fleetErr}
	}
	d.mu.Lock()
	st.Base, st.WaitingForBase = d.base, d.wantsBase
	d.mu.Unlock()
	return st
}

// handleFleetSnapshot serves the snapshot the fleet gets now: what leaves
// the device (also when no fleet is configured, to see it beforehand).
func (d *Daemon) handleFleetSnapshot(w http.ResponseWriter, r *http.Request) error {
	var b []byte
	var err error
	if d.fleet != nil {
		b, _, err = d.fleet.Current()
	} else {
		var s *fleet.Snapshot
		if s, err = d.fleetSnapshot(); err == nil {
			b, err = s.Encode()
		}
	}
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "fleet snapshot: %v", err)
	}
	digest := fleet.Digest(b)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(fleet.HeaderDigest, digest)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="fleet-snapshot-%s.safetensors"`, digest[:12]))
	_, err = w.Write(b)
	return err
}
