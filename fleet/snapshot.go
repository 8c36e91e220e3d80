package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/swavd/swavd/safetensors"
)

// Snapshot is what a device shares: its prototypes (unit rows), how many
// frames each cluster has been assigned since the device started counting
// and among the recent window, and, when the device shares its model, the
// model's tensors ("model." names). Encoded as safetensors; the SHA-256 of
// the encoding is the snapshot's digest, and so its version.
type Snapshot struct {
	Meta       SnapshotMeta
	Prototypes []float32 // [K, D]
	// Centroids is each cluster's mean embedding [K, D]: unit rows, zero
	// for a cluster without recent frames; nil from a device that does
	// not send them (the codebook then merges prototypes).
	Centroids []float32
	Counts    []int64 // [K]
	Recent    []int64 // [K]
	Model     []safetensors.Tensor
	// Exemplars, when the device shares them: each cluster's newest frame
	// as an ExemplarSize square thumbnail, [K, S, S, C] bytes; all zero for
	// a cluster never assigned.
	Exemplars        []uint8
	ExemplarChannels int
}

// ExemplarSize is the side of a shared thumbnail.
const ExemplarSize = 32

// SnapshotMeta is the snapshot's __metadata__.
type SnapshotMeta struct {
	Device       string
	Step         int
	Preset       string
	Arch         string // the model architecture, as JSON
	ConfigDigest string // SHA-256 of the model configuration
	Version      string // software version
	Base         string // digest of the fleet base the weights started from; "" for none
	TakenAt      time.Time
	K, D         int
}

// Names of the snapshot's tensors.
const (
	TensorPrototypes = "prototypes"
	TensorCentroids  = "centroids"
	TensorCounts     = "counts"
	TensorRecent     = "recent"
	TensorExemplars  = "exemplars"
	ModelPrefix      = "model."
)

// Digest is the hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// IsDigest says whether s looks like a Digest.
func IsDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Encode writes the snapshot as safetensors.
func (s *Snapshot) Encode() ([]byte, error) {
	m := s.Meta
	meta := map[string]string{
		"device": m.Device, "step": strconv.Itoa(m.Step), "preset": m.Preset, "arch": m.Arch,
		"config_digest": m.ConfigDigest, "version": m.Version, "taken_at": m.TakenAt.UTC().Format(time.RFC3339Nano),
		"k": strconv.Itoa(m.K), "d": strconv.Itoa(m.D),
	}
	if m.Base != "" {
		meta["base"] = m.Base
	}
	ts := []safetensors.Tensor{
		{Name: TensorPrototypes, Shape: []int{m.K, m.D}, Data: s.Prototypes},
		{Name: TensorCounts, Shape: []int{m.K}, Ints: s.Counts},
		{Name: TensorRecent, Shape: []int{m.K}, Ints: s.Recent},
	}
	if s.Centroids != nil {
		ts = append(ts, safetensors.Tensor{Name: TensorCentroids, Shape: []int{m.K, m.D}, Data: s.Centroids})
	}
	if s.Exemplars != nil {
		ts = append(ts, safetensors.Tensor{Name: TensorExemplars, Shape: []int{m.K, ExemplarSize, ExemplarSize, s.ExemplarChannels}, Bytes: s.Exemplars})
	}
	for _, t := range s.Model {
		if !strings.HasPrefix(t.Name, ModelPrefix) {
			return nil, fmt.Errorf("snapshot: model tensor %q lacks the %q prefix", t.Name, ModelPrefix)
		}
		ts = append(ts, t)
	}
	var b bytes.Buffer
	if err := safetensors.Write(&b, ts, meta); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return b.Bytes(), nil
}

// ParseSnapshot reads and checks a snapshot from an untrusted source: its
// size (at most maxBytes), the safetensors structure, the metadata, shapes
// that agree with it, finite unit-norm prototype rows, centroid rows that
// are unit or zero, and non-negative counts. It returns an error naming what is wrong.
func ParseSnapshot(b []byte, maxBytes int) (*Snapshot, error) {
	if maxBytes > 0 && len(b) > maxBytes {
		return nil, fmt.Errorf("snapshot of %d bytes is over the limit of %d", len(b), maxBytes)
	}
	f, err := safetensors.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	md := f.Metadata
	var m SnapshotMeta
	ints := map[string]*int{"step": &m.Step, "k": &m.K, "d": &m.D}
	for key, dst := range ints {
		v, err := strconv.Atoi(md[key])
		if err != nil || v < 0 {
			return nil, fmt.Errorf("snapshot: metadata %q = %q is not a count", key, md[key])
		}
		*dst = v
	}
	m.Device, m.Preset, m.Arch, m.ConfigDigest, m.Version = md["device"], md["preset"], md["arch"], md["config_digest"], md["version"]
	if m.Base = md["base"]; m.Base != "" && !IsDigest(m.Base) {
		return nil, fmt.Errorf("snapshot: metadata base %q is not a digest", m.Base)
	}
	if err := CheckDeviceID(m.Device); err != nil {
		return nil, fmt.Errorf("snapshot: metadata: %w", err)
	}
	if m.TakenAt, err = time.Parse(time.RFC3339Nano, md["taken_at"]); err != nil {
		return nil, fmt.Errorf("snapshot: metadata taken_at: %w", err)
	}
	if m.K == 0 || m.D == 0 {
		return nil, fmt.Errorf("snapshot: metadata says K=%d, D=%d", m.K, m.D)
	}
	s := &Snapshot{Meta: m}
	need := func(name string, shape []int, ints bool) (safetensors.Tensor, error) {
		t, ok := f.Tensors[name]
		if !ok {
			return t, fmt.Errorf("snapshot: no %q tensor", name)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(shape) || (t.Ints != nil) != ints {
			kind := "float32"
			if ints {
				kind = "int64"
			}
			return t, fmt.Errorf("snapshot: %q has shape %v, the metadata says %s %v", name, t.Shape, kind, shape)
		}
		return t, nil
	}
	p, err := need(TensorPrototypes, []int{m.K, m.D}, false)
	if err != nil {
		return nil, err
	}
	c, err := need(TensorCounts, []int{m.K}, true)
	if err != nil {
		return nil, err
	}
	r, err := need(TensorRecent, []int{m.K}, true)
	if err != nil {
		return nil, err
	}
	s.Prototypes, s.Counts, s.Recent = p.Data, c.Ints, r.Ints
	for k := 0; k < m.K; k++ {
		var n2 float64
		for _, v := range s.Prototypes[k*m.D : (k+1)*m.D] {
			n2 += float64(v) * float64(v)
		}
		if math.IsNaN(n2) || math.IsInf(n2, 0) || math.Abs(math.Sqrt(n2)-1) > 1e-3 {
			return nil, fmt.Errorf("snapshot: prototype %d has norm %g, want unit rows", k, math.Sqrt(n2))
		}
		if s.Counts[k] < 0 || s.Recent[k] < 0 {
			return nil, fmt.Errorf("snapshot: cluster %d has a negative count", k)
		}
	}
	for _, name := range f.Names() {
		switch t := f.Tensors[name]; {
		case name == TensorPrototypes || name == TensorCounts || name == TensorRecent:
		case name == TensorCentroids:
			if _, err := need(name, []int{m.K, m.D}, false); err != nil {
				return nil, err
			}
			for k := 0; k < m.K; k++ {
				var n2 float64
				for _, v := range t.Data[k*m.D : (k+1)*m.D] {
					n2 += float64(v) * float64(v)
				}
				if n2 != 0 && !(math.Abs(math.Sqrt(n2)-1) <= 1e-3) {
					return nil, fmt.Errorf("snapshot: centroid %d has norm %g, want a unit or zero row", k, math.Sqrt(n2))
				}
			}
			s.Centroids = t.Data
		case name == TensorExemplars:
			sh := t.Shape
			if t.Bytes == nil || len(sh) != 4 || sh[0] != m.K || sh[1] != ExemplarSize || sh[2] != ExemplarSize || (sh[3] != 1 && sh[3] != 3) {
				return nil, fmt.Errorf("snapshot: %q has shape %v, want uint8 [%d %d %d 1|3]", name, sh, m.K, ExemplarSize, ExemplarSize)
			}
			s.Exemplars, s.ExemplarChannels = t.Bytes, sh[3]
		case strings.HasPrefix(name, ModelPrefix) && t.Ints == nil && t.Bytes == nil:
			for _, v := range t.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("snapshot: %q holds a non-finite value", name)
				}
			}
			s.Model = append(s.Model, t)
		default:
			return nil, fmt.Errorf("snapshot: unexpected tensor %q", name)
		}
	}
	return s, nil
}
