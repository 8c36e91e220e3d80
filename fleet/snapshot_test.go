package fleet

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/swavd/swavd/safetensors"
)

func testSnapshot(k, d int) *Snapshot {
	s := &Snapshot{Meta: SnapshotMeta{Device: "cam-1", Step: 40, Preset: "tiny", Arch: `{"x":1}`, ConfigDigest: strings.Repeat("a", 64),
		Version: "test", TakenAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), K: k, D: d}}
	s.Prototypes = make([]float32, k*d)
	s.Counts, s.Recent = make([]int64, k), make([]int64, k)
	for i := 0; i < k; i++ {
		s.Prototypes[i*d+i%d] = 1
		s.Counts[i], s.Recent[i] = int64(1000*i)+1<<33, int64(i)
	}
	return s
}

func TestSnapshotRoundTripAndDigest(t *testing.T) {
	s := testSnapshot(8, 4)
	s.Meta.Base = strings.Repeat("b", 64)
	s.Model = []safetensors.Tensor{{Name: "model.w", Shape: []int{2}, Data: []float32{1, 2}}}
	s.Exemplars, s.ExemplarChannels = make([]uint8, 8*ExemplarSize*ExemplarSize), 1
	s.Exemplars[5] = 200
	s.Centroids = make([]float32, 8*4)
	s.Centroids[2*4+1] = 1 // cluster 2; the others have no frames
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := s.Encode()
	if !bytes.Equal(b, b2) || !IsDigest(Digest(b)) {
		t.Fatal("encoding is not deterministic, or the digest is malformed")
	}
	got, err := ParseSnapshot(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta != s.Meta || got.Counts[7] != s.Counts[7] || got.Prototypes[5] != s.Prototypes[5] || len(got.Model) != 1 ||
		got.ExemplarChannels != 1 || got.Exemplars[5] != 200 || len(got.Centroids) != 32 || got.Centroids[9] != 1 {
		t.Fatalf("parsed %+v", got.Meta)
	}
}

// Each malformed snapshot is refused with a message naming the fault.
func TestParseSnapshotRefusesBadInput(t *testing.T) {
	good, _ := testSnapshot(8, 4).Encode()
	enc := func(mod func(s *Snapshot)) []byte {
		s := testSnapshot(8, 4)
		mod(s)
		b, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"oversized":   {good, "over the limit"},
		"truncated":   {good[:len(good)-3], "safetensors"},
		"not a file":  {[]byte("hello, fleet"), "safetensors"},
		"NaN row":     {enc(func(s *Snapshot) { s.Prototypes[3] = float32(math.NaN()) }), "prototype 0"},
		"not unit":    {enc(func(s *Snapshot) { s.Prototypes[4] = 2 }), "prototype 1 has norm 2"},
		"K disagrees": {withMeta(t, good, "k", "4"), "metadata says float32 [4 4]"},
		"no counts":   {withoutTensor(t, good, TensorCounts), `no "counts" tensor`},
		"negative":    {enc(func(s *Snapshot) { s.Recent[2] = -1 }), "negative"},
		"centroid not unit": {enc(func(s *Snapshot) {
			s.Centroids = make([]float32, 8*4)
			s.Centroids[13] = 0.5
		}), "centroid 3 has norm 0.5"},
		"centroid NaN": {enc(func(s *Snapshot) {
			s.Centroids = make([]float32, 8*4)
			s.Centroids[0] = float32(math.NaN())
		}), "centroid 0"},
		"centroids short": {withTensor(t, good, safetensors.Tensor{Name: TensorCentroids, Shape: []int{4, 4}, Data: make([]float32, 16)}), `"centroids" has shape [4 4]`},
		"bad device":      {enc(func(s *Snapshot) { s.Meta.Device = "a.b" }), "device id"},
		"model is NaN": {enc(func(s *Snapshot) {
			s.Model = []safetensors.Tensor{{Name: "model.x", Shape: []int{1}, Data: []float32{float32(math.Inf(1))}}}
		}), "non-finite"},
	}
	for name, c := range cases {
		limit := 1 << 20
		if name == "oversized" {
			limit = len(good) - 1
		}
		_, err := ParseSnapshot(c.b, limit)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

// withMeta re-encodes a snapshot with one metadata value changed.
func withMeta(t *testing.T, b []byte, key, val string) []byte {
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata[key] = val
	return rewrite(t, f, "")
}

func withTensor(t *testing.T, b []byte, add safetensors.Tensor) []byte {
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f.Tensors[add.Name] = add
	return rewrite(t, f, "")
}

func withoutTensor(t *testing.T, b []byte, name string) []byte {
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return rewrite(t, f, name)
}

func rewrite(t *testing.T, f *safetensors.File, drop string) []byte {
	delete(f.Tensors, drop)
	var out bytes.Buffer
	if err := f.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestSubjectsAndIDs(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "-x", strings.Repeat("x", 65)} {
		if CheckDeviceID(bad) == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
	if err := CheckDeviceID("cam-07_b"); err != nil {
		t.Fatal(err)
	}
	if id, ok := DeviceFromAnnounce(AnnounceSubject("cam-07_b")); !ok || id != "cam-07_b" {
		t.Fatalf("announce subject round trip: %q %v", id, ok)
	}
	if _, ok := DeviceFromAnnounce("swav.dev.a.b.announce"); ok {
		t.Fatal("a two-token id parsed")
	}
}
