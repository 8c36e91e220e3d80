package codebook

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/swavd/swavd/fleet"
)

const base = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// dev builds a device snapshot of K prototypes in D=8: protos[k] is the
// direction e_axes[k] with a little noise (axis < 0: an unused cluster).
func dev(id string, axes []int, counts []int64, seed uint64) Input {
	const d = 8
	k := len(axes)
	r := rand.New(rand.NewPCG(seed, 1))
	s := &fleet.Snapshot{Meta: fleet.SnapshotMeta{Device: id, Step: 600, Base: base, K: k, D: d},
		Prototypes: make([]float32, k*d), Counts: counts, Recent: make([]int64, k)}
	for i, a := range axes {
		v := make([]float64, d)
		for j := range v {
			v[j] = 0.05 * r.NormFloat64()
		}
		if a >= 0 {
			v[a] += 1
		} else {
			v[d-1] += 1 // unused clusters sit elsewhere
		}
		n := math.Sqrt(dot(v, v))
		for j := range v {
			s.Prototypes[i*d+j] = float32(v[j] / n)
		}
	}
	return Input{Device: id, Digest: id + "-digest", Snapshot: s}
}

func opts(clusters int, minCount int64) Options {
	return Options{Clusters: clusters, MinCount: minCount, Base: base, K: 4, D: 8}
}

// Three devices see overlapping classes: A axes 0,1; B 1,2; C 2,3. Four
// fleet clusters; A's and B's clusters on axis 1 are the same fleet cluster.
func TestMergeFindsTheSharedClusters(t *testing.T) {
	in := []Input{
		dev("cam-a", []int{0, 1, 0, -1}, []int64{100, 80, 20, 0}, 1),
		dev("cam-b", []int{1, 2, -1, 2}, []int64{90, 60, 0, 30}, 2),
		dev("cam-c", []int{3, 2, 3, -1}, []int64{70, 50, 40, 0}, 3),
	}
	cb := Build(in, opts(4, 1))
	if len(cb.Clusters) != 4 {
		t.Fatalf("%d fleet clusters, want 4", len(cb.Clusters))
	}
	// The fleet cluster of each axis: its centre points along the axis.
	axisOf := map[int]int{}
	for _, c := range cb.Clusters {
		best := 0
		for j := 1; j < 8; j++ {
			if math.Abs(float64(c.Centroid[j])) > math.Abs(float64(c.Centroid[best])) {
				best = j
			}
		}
		axisOf[c.ID] = best
	}
	for di, x := range in {
		d := cb.Devices[di]
		if !d.Aligned || d.Device != x.Device {
			t.Fatalf("device %s: %+v", x.Device, d)
		}
		axes := map[string][]int{"cam-a": {0, 1, 0}, "cam-b": {1, 2, -1, 2}, "cam-c": {3, 2, 3}}[x.Device]
		for k, a := range axes {
			if a >= 0 && axisOf[d.Map[k]] != a {
				t.Errorf("%s cluster %d (axis %d) mapped to fleet cluster %d (axis %d)", x.Device, k, a, d.Map[k], axisOf[d.Map[k]])
			}
		}
		if d.Drift < 0.98 || d.Used != map[string]int{"cam-a": 3, "cam-b": 3, "cam-c": 3}[x.Device] {
			t.Errorf("%s: drift %v, used %d", x.Device, d.Drift, d.Used)
		}
	}
	if cb.Devices[0].Map[1] != cb.Devices[1].Map[0] {
		t.Error("cam-a and cam-b disagree on axis 1")
	}
	// Counts add up: the largest cluster first; axis 1 has 80+90.
	for _, c := range cb.Clusters {
		if axisOf[c.ID] == 1 && (c.Count != 170 || c.Devices != 2 || len(c.Members) != 2) {
			t.Errorf("axis-1 cluster: %+v", c)
		}
	}
	if cb.Clusters[0].Count < cb.Clusters[len(cb.Clusters)-1].Count {
		t.Error("clusters not sorted by count")
	}
}

// Devices that send centroids are merged by them, not by their
// prototypes: here each device's prototypes point along misleading axes
// (prototypes separate a device's own clusters, wherever its frames are),
// while the centroids say cam-a's cluster 0 and cam-b's cluster 1 hold the
// same content (axis 5). A cluster whose centroid row is zero (no frames
// since the device's centroids started) falls back to its prototype.
func TestCentroidsPlaceTheClusters(t *testing.T) {
	a := dev("cam-a", []int{0, 1, 2, 3}, []int64{50, 50, 50, 50}, 6)
	b := dev("cam-b", []int{3, 2, 1, 0}, []int64{50, 50, 50, 50}, 7)
	centroidsOf := func(axes ...int) []float32 {
		c := make([]float32, len(axes)*8)
		for k, ax := range axes {
			if ax >= 0 {
				c[k*8+ax] = 1
			}
		}
		return c
	}
	a.Snapshot.Centroids = centroidsOf(5, 6, 7, -1) // cluster 3: none yet
	b.Snapshot.Centroids = centroidsOf(4, 5, 6, 7)
	cb := Build([]Input{a, b}, opts(5, 1)) // five places: axes 3 (a prototype) to 7
	ma, mb := cb.Devices[0].Map, cb.Devices[1].Map
	if ma[0] != mb[1] || ma[1] != mb[2] || ma[2] != mb[3] {
		t.Fatalf("clusters with the same centroid map apart: cam-a %v, cam-b %v", ma, mb)
	}
	// cam-a's cluster 3 is placed by its prototype (axis 3); cam-b's
	// cluster 0 has a prototype there too, but its centroid is on axis 4.
	if ma[3] == mb[0] || ma[0] == mb[0] || cb.Devices[0].Similarity[3] < 0.99 {
		t.Fatalf("clusters placed by prototype where a centroid exists: cam-a %v, cam-b %v, similarities %v", ma, mb, cb.Devices[0].Similarity)
	}
}

// The centre of a fleet cluster is the count-weighted mean direction.
func TestCentresAreWeighted(t *testing.T) {
	mk := func(id string, v []float64, w int64) Input {
		s := &fleet.Snapshot{Meta: fleet.SnapshotMeta{Device: id, Base: base, K: 1, D: 2}, Prototypes: []float32{float32(v[0]), float32(v[1])},
			Counts: []int64{w}, Recent: []int64{0}}
		return Input{Device: id, Snapshot: s}
	}
	a, b := 0.3, -0.3
	in := []Input{mk("a", []float64{math.Cos(a), math.Sin(a)}, 9), mk("b", []float64{math.Cos(b), math.Sin(b)}, 1)}
	cb := Build(in, Options{Clusters: 1, Base: base, K: 1, D: 2})
	want := []float64{9*math.Cos(a) + math.Cos(b), 9*math.Sin(a) + math.Sin(b)}
	n := math.Hypot(want[0], want[1])
	c := cb.Clusters[0].Centroid
	if math.Abs(float64(c[0])-want[0]/n) > 1e-6 || math.Abs(float64(c[1])-want[1]/n) > 1e-6 {
		t.Fatalf("centre %v, want %v", c, []float64{want[0] / n, want[1] / n})
	}
}

// Farthest-first starts from the heaviest point and then the farthest one,
// not the next heaviest: with two clusters, the lone opposite point gets
// its own.
func TestFarthestFirstStart(t *testing.T) {
	in := []Input{
		dev("a", []int{0, 0, -1, -1}, []int64{100, 50, 0, 0}, 4),
		dev("b", []int{1, -1, -1, -1}, []int64{3, 0, 0, 0}, 5),
	}
	cb := Build(in, opts(2, 1))
	if len(cb.Clusters) != 2 || cb.Clusters[0].Count != 150 || cb.Clusters[1].Count != 3 {
		t.Fatalf("clusters %+v", cb.Clusters)
	}
}

// Clusters with fewer than MinCount assignments are dropped, and their
// device clusters map to the nearest remaining one.
func TestMinCountDropsAndRemaps(t *testing.T) {
	in := []Input{
		dev("a", []int{0, 1, -1, -1}, []int64{100, 4, 0, 0}, 6),
		dev("b", []int{0, 2, -1, -1}, []int64{80, 200, 0, 0}, 7),
	}
	cb := Build(in, opts(3, 10))
	if len(cb.Clusters) != 2 {
		t.Fatalf("%d clusters, want the axis-1 one (4 assignments) dropped", len(cb.Clusters))
	}
	a := cb.Devices[0]
	if a.Map[1] < 0 || a.Similarity[1] > 0.5 {
		t.Fatalf("the dropped cluster's member maps to %d with cosine %v", a.Map[1], a.Similarity[1])
	}
	for k := range a.Map {
		if a.Map[k] < 0 {
			t.Fatalf("device cluster %d unmapped", k)
		}
	}
}

func TestDeterministicAndStableIDs(t *testing.T) {
	in := []Input{
		dev("cam-a", []int{0, 1, 0, -1}, []int64{100, 80, 20, 0}, 1),
		dev("cam-b", []int{1, 2, -1, 2}, []int64{90, 60, 0, 30}, 2),
		dev("cam-c", []int{3, 2, 3, -1}, []int64{70, 50, 40, 0}, 3),
	}
	one := Build(in, opts(4, 1))
	two := Build([]Input{in[2], in[0], in[1]}, opts(4, 1))
	if one.Digest != two.Digest || len(one.Digest) != 64 {
		t.Fatalf("same snapshots, digests %s and %s", one.Digest, two.Digest)
	}
	// Labels travel with the ids; the counts change, the clusters stay.
	o := opts(4, 1)
	o.Previous, o.Labels = one, map[int]string{one.Clusters[0].ID: "forklift"}
	in[0].Snapshot.Counts[0] += 500
	three := Build(in, o)
	if three.Digest == one.Digest {
		t.Fatal("new counts, same digest")
	}
	for _, c := range three.Clusters {
		if c.ID == one.Clusters[0].ID && c.Label != "forklift" {
			t.Fatalf("cluster %d lost its label", c.ID)
		}
	}
	labelled := Build(in, o)
	o.Labels = nil
	if unlabelled := Build(in, o); unlabelled.Digest != labelled.Digest {
		t.Fatal("labels changed the digest")
	}
}

// Snapshots that cannot be merged are left out with the reason.
func TestUnalignedAndBadSnapshotsAreLeftOut(t *testing.T) {
	good := dev("good", []int{0, 1, 2, 3}, []int64{5, 5, 5, 5}, 9)
	other := dev("other-base", []int{0, 1, 2, 3}, []int64{5, 5, 5, 5}, 10)
	other.Snapshot.Meta.Base = strings.Repeat("c", 64)
	own := dev("own-weights", []int{0, 1, 2, 3}, []int64{5, 5, 5, 5}, 11)
	own.Snapshot.Meta.Base = ""
	zero := dev("no-counts", []int{0, 1, 2, 3}, []int64{0, 0, 0, 0}, 12)
	nan := dev("nan", []int{0, 1, 2, 3}, []int64{5, 5, 5, 5}, 13)
	nan.Snapshot.Prototypes[3] = float32(math.NaN())
	wideD := dev("wide", []int{0, 1}, []int64{5, 5}, 14)
	none := Input{Device: "never-pulled"}
	cb := Build([]Input{good, other, own, zero, nan, wideD, none}, opts(4, 1))
	want := map[string]string{"good": "", "other-base": "on base cccccccccccc", "own-weights": "own random weights",
		"no-counts": "no assignments", "nan": "not finite", "wide": "K=2, D=8", "never-pulled": "no snapshot"}
	for _, d := range cb.Devices {
		if w := want[d.Device]; (w == "") != d.Aligned || (w != "" && !strings.Contains(d.Reason, w)) {
			t.Errorf("%s: aligned %v, reason %q; want %q", d.Device, d.Aligned, d.Reason, w)
		}
	}
	noBase := Build([]Input{good}, Options{Clusters: 4, K: 4, D: 8})
	if noBase.Devices[0].Aligned || len(noBase.Clusters) != 0 || !strings.Contains(noBase.Devices[0].Reason, "no base") {
		t.Fatalf("without a fleet base: %+v", noBase.Devices[0])
	}
}
