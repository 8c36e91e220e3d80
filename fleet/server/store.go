package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream buckets.
const (
	devicesBucket   = "swav_devices"   // key-value: one Device per id
	snapshotsBucket = "swav_snapshots" // object store: snapshots named by their SHA-256
	claimsBucket    = "swav_claims"    // key-value: who pulls a device in a round
	basesBucket     = "swav_bases"     // object store: base models named by their SHA-256
	metaBucket      = "swav_meta"      // key-value: the fleet's current base, codebook labels
)

// Device is the fleet's record of one device (the inventory).
type Device struct {
	ID            string        `json:"id"`
	Version       string        `json:"version,omitempty"`
	Preset        string        `json:"preset,omitempty"`
	AnnouncedStep int           `json:"announced_step"`
	LastSeen      time.Time     `json:"last_seen"`
	AnnounceEvery time.Duration `json:"announce_every"`
	// Offline is set when a pull found no one answering, and cleared by the
	// next announcement.
	Offline bool `json:"offline,omitempty"`
	// The newest snapshot.
	Digest   string     `json:"digest,omitempty"`
	Step     int        `json:"step"`
	PulledAt *time.Time `json:"pulled_at,omitempty"` // last pull that succeeded, changed or not
	// Failures counts pulls failed in a row; RetryAt is when the next may
	// be tried (exponential backoff); LastError says why the last failed.
	Failures  int        `json:"failures"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Rejected  int        `json:"rejected"` // snapshots refused (corrupt, oversized, wrong digest...)
	// Base is the digest of the fleet base its weights started from, as it
	// announced; WantsBase while it asks for the fleet's; BaseError why the
	// last delivery failed or was refused.
	Base      string `json:"base,omitempty"`
	WantsBase bool   `json:"wants_base,omitempty"`
	BaseError string `json:"base_error,omitempty"`
	// Snapshots is the history kept, newest first.
	Snapshots []SnapshotRef `json:"snapshots"`
}

// SnapshotRef is one stored snapshot of a device.
type SnapshotRef struct {
	Digest   string    `json:"digest"`
	Step     int       `json:"step"`
	Bytes    int       `json:"bytes"`
	TakenAt  time.Time `json:"taken_at"`
	PulledAt time.Time `json:"pulled_at"`
}

// Online says whether the device announced itself recently and was not
// found gone since.
func (d *Device) Online(now time.Time) bool {
	every := d.AnnounceEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	return !d.Offline && now.Sub(d.LastSeen) < 3*every
}

// Store is the fleet's JetStream state, the same embedded or on a cluster.
type Store struct {
	devices   jetstream.KeyValue
	snapshots jetstream.ObjectStore
	claims    jetstream.KeyValue
	bases     jetstream.ObjectStore
	meta      jetstream.KeyValue

	mu    sync.RWMutex
	cache map[string]*Device // kept current by a watcher on the devices bucket
}

// OpenStore creates (or opens) the buckets with the given replicas.
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int, claimTTL time.Duration) (*Store, error) {
	s := &Store{cache: map[string]*Device{}}
	var err error
	if s.devices, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: devicesBucket, History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "swav-fleet device inventory"}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", devicesBucket, err)
	}
	if s.snapshots, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: snapshotsBucket,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "swav-fleet snapshots by SHA-256"}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", snapshotsBucket, err)
	}
	if s.claims, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: claimsBucket, History: 1, TTL: claimTTL,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "swav-fleet pull claims per round"}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", claimsBucket, err)
	}
	if s.bases, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: basesBucket,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "swav-fleet base models by SHA-256"}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", basesBucket, err)
	}
	if s.meta, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: metaBucket, History: 16,
		Storage: jetstream.FileStorage, Replicas: replicas, Description: "swav-fleet base and codebook labels"}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", metaBucket, err)
	}
	return s, nil
}

// Watch keeps the device cache current until ctx ends; it returns once
// the cache holds every device stored now.
func (s *Store) Watch(ctx context.Context) error {
	w, err := s.devices.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("store: watch: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer w.Stop()
		loaded := false
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the initial values are all delivered
					if !loaded {
						close(ready)
						loaded = true
					}
					continue
				}
				s.mu.Lock()
				if e.Operation() != jetstream.KeyValuePut {
					delete(s.cache, e.Key())
				} else {
					var d Device
					if json.Unmarshal(e.Value(), &d) == nil {
						s.cache[e.Key()] = &d
					}
				}
				s.mu.Unlock()
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("store: the device inventory did not load in 30 s")
	}
}

// Devices returns every device, sorted by id (copies).
func (s *Store) Devices() []Device {
	s.mu.RLock()
	out := make([]Device, 0, len(s.cache))
	for _, d := range s.cache {
		out = append(out, *d)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Device reads one device from the bucket itself (not the cache).
func (s *Store) Device(ctx context.Context, id string) (*Device, uint64, error) {
	e, err := s.devices.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var d Device
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return nil, 0, fmt.Errorf("store: device %s: %w", id, err)
	}
	return &d, e.Revision(), nil
}

// UpdateDevice applies fn to device id's record (a new one if none) and
// stores it with a compare-and-set, retrying when another replica wrote
// in between. fn may be called more than once.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(d *Device) error) (*Device, error) {
	for attempt := 0; ; attempt++ {
		d, rev, err := s.Device(ctx, id)
		if err != nil {
			return nil, err
		}
		if d == nil {
			d = &Device{ID: id}
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(d)
		if rev == 0 {
			_, err = s.devices.Create(ctx, id, b)
		} else {
			_, err = s.devices.Update(ctx, id, b, rev)
		}
		if err == nil {
			s.mu.Lock()
			s.cache[id] = d
			s.mu.Unlock()
			return d, nil
		}
		if !isConflict(err) || attempt >= 20 {
			return nil, fmt.Errorf("store: device %s: %w", id, err)
		}
	}
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// PutSnapshot stores data under its digest unless an object of that name
// is there already (content-addressed: stored once). It reports whether it
// wrote.
func (s *Store) PutSnapshot(ctx context.Context, digest string, data []byte) (bool, error) {
	if _, err := s.snapshots.GetInfo(ctx, digest); err == nil {
		return false, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, err
	}
	if _, err := s.snapshots.PutBytes(ctx, digest, data); err != nil {
		return false, err
	}
	return true, nil
}

// Snapshot reads a stored snapshot.
func (s *Store) Snapshot(ctx context.Context, digest string) ([]byte, error) {
	return s.snapshots.GetBytes(ctx, digest)
}

// DeleteSnapshot removes a stored snapshot.
func (s *Store) DeleteSnapshot(ctx context.Context, digest string) error {
	err := s.snapshots.Delete(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	return err
}

// SnapshotCount is how many snapshots are stored.
func (s *Store) SnapshotCount(ctx context.Context) (int, error) {
	list, err := s.snapshots.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	return len(list), err
}

// Claim takes device id for round for replica by; false if another
// replica has it. A claim that exists already and names by is by's: a
// create whose answer was lost (a timeout while the cluster elected a
// leader) and then retried.
func (s *Store) Claim(ctx context.Context, round int64, id, by string) (bool, error) {
	key := fmt.Sprintf("%d.%s", round, id)
	_, err := s.claims.Create(ctx, key, []byte(by))
	if err == nil {
		return true, nil
	}
	if !isConflict(err) {
		return false, err
	}
	e, err := s.claims.Get(ctx, key)
	if err != nil {
		return false, err
	}
	return string(e.Value()) == by, nil
}

// Base is the fleet's base model: a `swavd train` checkpoint every device
// with fleet.base starts from, so that their embeddings share one space.
type Base struct {
	Digest string    `json:"digest"`
	Preset string    `json:"preset"`
	Arch   string    `json:"arch"` // JSON
	Step   int       `json:"step"`
	Bytes  int       `json:"bytes"`
	SetAt  time.Time `json:"set_at"`
}

const baseKey = "base"

// SetBase stores a base (content-addressed) and makes it the fleet's.
func (s *Store) SetBase(ctx context.Context, b Base, data []byte) error {
	if _, err := s.bases.GetInfo(ctx, b.Digest); errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := s.bases.PutBytes(ctx, b.Digest, data); err != nil {
			return fmt.Errorf("store: base: %w", err)
		}
	} else if err != nil {
		return err
	}
	j, _ := json.Marshal(b)
	_, err := s.meta.Put(ctx, baseKey, j)
	return err
}

// Base returns the fleet's base (nil if none) and, if withData, its bytes.
func (s *Store) Base(ctx context.Context, withData bool) (*Base, []byte, error) {
	e, err := s.meta.Get(ctx, baseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var b Base
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		return nil, nil, fmt.Errorf("store: base record: %w", err)
	}
	if !withData {
		return &b, nil, nil
	}
	data, err := s.bases.GetBytes(ctx, b.Digest)
	return &b, data, err
}
