package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/codebook"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/safetensors"
)

// Keys of the meta bucket the codebook uses.
const (
	labelsKey  = "labels"  // fleet cluster id -> name
	centresKey = "centres" // the last codebook's ids and centres, so ids survive restarts
)

type savedCentre struct {
	ID       int       `json:"id"`
	Centroid []float32 `json:"centroid"`
}

// Codebook is the codebook of every device's newest snapshot on the
// fleet's base, rebuilt when the snapshots, the base or the labels change.
func (s *Server) Codebook(ctx context.Context) (*codebook.Codebook, error) {
	base, _, err := s.store.Base(ctx, false)
	if err != nil {
		return nil, err
	}
	labels, err := s.labels(ctx)
	if err != nil {
		return nil, err
	}
	devices := s.store.Devices()
	o := codebook.Options{Clusters: s.o.CodebookClusters, MinCount: s.o.CodebookMinCount, Labels: labels}
	if base != nil {
		var arch model.Arch
		if err := json.Unmarshal([]byte(base.Arch), &arch); err != nil {
			return nil, fmt.Errorf("base %s: architecture: %w", base.Digest, err)
		}
		o.Base, o.K, o.D = base.Digest, arch.Prototypes, arch.ProjDim
	}
	key, _ := json.Marshal(struct {
		O       codebook.Options
		Digests []string
	}{codebook.Options{Clusters: o.Clusters, MinCount: o.MinCount, Base: o.Base, K: o.K, D: o.D, Labels: labels}, deviceDigests(devices)})

	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	if s.cb != nil && bytes.Equal(key, s.cbKey) {
		return s.cb, nil
	}
	inputs := make([]codebook.Input, 0, len(devices))
	keep := map[string]*fleet.Snapshot{}
	for _, d := range devices {
		in := codebook.Input{Device: d.ID, Digest: d.Digest}
		if d.Digest != "" {
			snap := s.snapCache[d.Digest]
			if snap == nil {
				b, err := s.store.Snapshot(ctx, d.Digest)
				if err != nil {
					return nil, fmt.Errorf("snapshot %s of %s: %w", d.Digest, d.ID, err)
				}
				if snap, err = fleet.ParseSnapshot(b, 0); err != nil {
					return nil, fmt.Errorf("snapshot %s of %s: %w", d.Digest, d.ID, err)
				}
			}
			in.Snapshot, keep[d.Digest] = snap, snap
		}
		inputs = append(inputs, in)
	}
	s.snapCache = keep
	o.Previous = s.cb
	if o.Previous == nil {
		o.Previous = s.savedCentres(ctx)
	}
	cb := codebook.Build(inputs, o)
	if s.cb == nil || cb.Digest != s.cb.Digest {
		s.o.Log.Infof("fleet: codebook %.12s: %d fleet clusters over %d aligned devices", cb.Digest, len(cb.Clusters), aligned(cb))
		s.saveCentres(ctx, cb)
	}
	s.cb, s.cbKey = cb, key
	return cb, nil
}

func deviceDigests(devices []Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.ID + "=" + d.Digest
	}
	return out
}

func aligned(cb *codebook.Codebook) int {
	n := 0
	for _, d := range cb.Devices {
		if d.Aligned {
			n++
		}
	}
	return n
}

func (s *Server) labels(ctx context.Context) (map[int]string, error) {
	e, err := s.store.meta.Get(ctx, labelsKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return map[int]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	labels := map[int]string{}
	return labels, json.Unmarshal(e.Value(), &labels)
}

// savedCentres is the codebook last stored (ids and centres only), so a
// restarted server keeps the ids its labels hang on.
func (s *Server) savedCentres(ctx context.Context) *codebook.Codebook {
	e, err := s.store.meta.Get(ctx, centresKey)
	if err != nil {
		return nil
	}
	var saved []savedCentre
	if json.Unmarshal(e.Value(), &saved) != nil {
		return nil
	}
	cb := &codebook.Codebook{}
	for _, c := range saved {
		cb.Clusters = append(cb.Clusters, codebook.Cluster{ID: c.ID, Centroid: c.Centroid})
	}
	return cb
}

func (s *Server) saveCentres(ctx context.Context, cb *codebook.Codebook) {
	saved := make([]savedCentre, len(cb.Clusters))
	for i, c := range cb.Clusters {
		saved[i] = savedCentre{c.ID, c.Centroid}
	}
	b, _ := json.Marshal(saved)
	if _, err := s.store.meta.Put(ctx, centresKey, b); err != nil {
		s.o.Log.Errorf("fleet: saving the codebook's centres: %v", err)
	}
}

// SetLabel names fleet cluster id ("" removes the name).
func (s *Server) SetLabel(ctx context.Context, id int, name string) error {
	name = strings.TrimSpace(name)
	if len(name) > 64 || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return errorf(http.StatusBadRequest, "a label is at most 64 printable characters")
	}
	cb, err := s.Codebook(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, c := range cb.Clusters {
		found = found || c.ID == id
	}
	if !found {
		return errorf(http.StatusNotFound, "no fleet cluster %d in codebook %.12s", id, cb.Digest)
	}
	for attempt := 0; ; attempt++ {
		labels := map[int]string{}
		var rev uint64
		e, err := s.store.meta.Get(ctx, labelsKey)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &labels); err != nil {
				return err
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return err
		}
		if name == "" {
			delete(labels, id)
		} else {
			labels[id] = name
		}
		b, _ := json.Marshal(labels)
		if rev == 0 {
			_, err = s.store.meta.Create(ctx, labelsKey, b)
		} else {
			_, err = s.store.meta.Update(ctx, labelsKey, b, rev)
		}
		if err == nil || !isConflict(err) || attempt > 10 {
			return err
		}
	}
}

func (s *Server) handleCodebook(w http.ResponseWriter, r *http.Request) error {
	cb, err := s.Codebook(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cb)
	return nil
}

// handleCodebookPrototypes serves the fleet clusters' centres as
// safetensors: "prototypes" [K_fleet, D] and their "ids".
func (s *Server) handleCodebookPrototypes(w http.ResponseWriter, r *http.Request) error {
	cb, err := s.Codebook(r.Context())
	if err != nil {
		return err
	}
	if len(cb.Clusters) == 0 {
		return errorf(http.StatusNotFound, "the codebook has no fleet clusters yet (a base, and snapshots of devices on it, are needed)")
	}
	ids := make([]int64, len(cb.Clusters))
	labels := map[int]string{}
	for i, c := range cb.Clusters {
		ids[i] = int64(c.ID)
		if c.Label != "" {
			labels[c.ID] = c.Label
		}
	}
	lj, _ := json.Marshal(labels)
	var b bytes.Buffer
	err = safetensors.Write(&b, []safetensors.Tensor{
		{Name: "prototypes", Shape: []int{len(cb.Clusters), cb.D}, Data: cb.Centroids()},
		{Name: "ids", Shape: []int{len(cb.Clusters)}, Ints: ids},
	}, map[string]string{"codebook": cb.Digest, "base": cb.Base, "labels": string(lj)})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="codebook-%.12s.safetensors"`, cb.Digest))
	w.Write(b.Bytes())
	return nil
}

func (s *Server) handleLabel(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return errorf(http.StatusBadRequest, "fleet cluster %q is not a number", r.PathValue("id"))
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		return errorf(http.StatusBadRequest, `body: {"name": "..."}: %v`, err)
	}
	if err := s.SetLabel(r.Context(), id, body.Name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "label": strings.TrimSpace(body.Name)})
	return nil
}
