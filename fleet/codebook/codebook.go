// Package codebook merges the clusters of many devices into one set of
// fleet clusters, and says for every device cluster which fleet cluster
// it is. Clusters only compare across devices whose encoders share a
// feature space, so only devices on the fleet's base model are merged; the
// others are listed as unaligned, with the reason.
//
// The merge follows k-FED (Dennis et al. 2021): every used device cluster
// is a point on the unit sphere, its centroid (the mean embedding of its
// frames; its prototype where the device sends no centroids), weighted by
// its count;
// spherical k-means from a farthest-first start finds the fleet clusters;
// clusters with fewer than MinCount assignments are dropped; every device
// cluster maps to its nearest remaining fleet cluster by cosine. The same
// inputs always give the same codebook, and the same digest.
package codebook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/swavd/swavd/fleet"
)

// Input is one device's newest snapshot.
type Input struct {
	Device   string
	Digest   string // of the snapshot
	Snapshot *fleet.Snapshot
}

// Options shape the merge.
type Options struct {
	Clusters int    // fleet clusters before dropping (codebook.clusters)
	MinCount int64  // fleet clusters with fewer assignments are dropped (codebook.min_count)
	Base     string // the fleet base's digest; "" leaves every device unaligned
	K, D     int    // the base model's prototypes and their dimension
	// Previous lends its cluster ids (and so their labels) to the new
	// clusters that match its centroids.
	Previous *Codebook
	Labels   map[int]string // names of fleet clusters, by id
}

// maxIterations bounds k-means; it stops earlier once no point moves.
const maxIterations = 100

// Member is a device cluster within a fleet cluster.
type Member struct {
	Device     string  `json:"device"`
	Cluster    int     `json:"cluster"`
	Similarity float64 `json:"similarity"` // cosine to the fleet cluster's centre
	Count      int64   `json:"count"`
}

// Cluster is a fleet cluster.
type Cluster struct {
	ID       int       `json:"id"`
	Label    string    `json:"label,omitempty"`
	Count    int64     `json:"count"`   // assignments of its members
	Devices  int       `json:"devices"` // distinct devices among its members
	Members  []Member  `json:"members"`
	Centroid []float32 `json:"-"` // unit vector [D]
}

// Device is how one device aligns with the codebook.
type Device struct {
	Device   string `json:"device"`
	Snapshot string `json:"snapshot,omitempty"`
	Step     int    `json:"step"`
	Base     string `json:"base,omitempty"`
	Aligned  bool   `json:"aligned"`
	Reason   string `json:"reason,omitempty"` // why it is left out
	Used     int    `json:"used"`             // its clusters with assignments
	// Drift is the mean cosine between its used clusters (their centroids,
	// else prototypes) and their fleet clusters: 1 on the codebook, lower as
	// the device adapts away from the fleet.
	Drift float64 `json:"drift"`
	// Map gives each device cluster's fleet cluster id, Similarity its
	// cosine to that cluster's centre.
	Map        []int     `json:"map,omitempty"`
	Similarity []float64 `json:"similarity,omitempty"`
}

// Codebook is one version of the fleet's clusters.
type Codebook struct {
	Digest   string    `json:"digest"`
	Base     string    `json:"base,omitempty"`
	D        int       `json:"d"`
	Clusters []Cluster `json:"clusters"` // by count, largest first
	Devices  []Device  `json:"devices"`  // by id
	Options  struct {
		Clusters int   `json:"clusters"`
		MinCount int64 `json:"min_count"`
	} `json:"options"`
}

type point struct {
	x []float64
	w float64
}

// Build merges the inputs.
func Build(inputs []Input, o Options) *Codebook {
	in := append([]Input(nil), inputs...)
	sort.Slice(in, func(i, j int) bool { return in[i].Device < in[j].Device })
	cb := &Codebook{Base: o.Base, D: o.D}
	cb.Options.Clusters, cb.Options.MinCount = o.Clusters, o.MinCount

	var aligned []int // indices into cb.Devices
	var pts []point
	for _, x := range in {
		s := x.Snapshot
		dev := Device{Device: x.Device, Snapshot: x.Digest}
		if s != nil {
			dev.Step, dev.Base = s.Meta.Step, s.Meta.Base
		}
		dev.Reason = check(s, o)
		if dev.Reason == "" {
			dev.Aligned = true
			for k := 0; k < s.Meta.K; k++ {
				if s.Counts[k] > 0 {
					dev.Used++
					pts = append(pts, point{x: position(s, k), w: float64(s.Counts[k])})
				}
			}
			aligned = append(aligned, len(cb.Devices))
		}
		cb.Devices = append(cb.Devices, dev)
	}

	centres := kmeans(pts, min(o.Clusters, len(pts)))
	// Drop the clusters that too few assignments reach.
	weight := make([]float64, len(centres))
	for _, p := range pts {
		weight[nearest(p.x, centres)] += p.w
	}
	var kept [][]float64
	for c, w := range weight {
		if w >= float64(o.MinCount) && w > 0 {
			kept = append(kept, centres[c])
		}
	}
	ids := assignIDs(kept, o.Previous)
	cb.Clusters = make([]Cluster, len(kept))
	for c := range kept {
		cb.Clusters[c] = Cluster{ID: ids[c], Label: o.Labels[ids[c]], Centroid: toFloat32(kept[c])}
	}
	// Every device cluster to its nearest kept fleet cluster.
	for _, idx := range aligned {
		dev := &cb.Devices[idx]
		s := in[idx].Snapshot
		dev.Map, dev.Similarity = make([]int, s.Meta.K), make([]float64, s.Meta.K)
		var drift float64
		for k := 0; k < s.Meta.K; k++ {
			dev.Map[k] = -1
			if len(kept) == 0 {
				continue
			}
			x := position(s, k)
			c := nearest(x, kept)
			sim := dot(x, kept[c])
			dev.Map[k], dev.Similarity[k] = ids[c], round6(sim)
			if s.Counts[k] > 0 {
				drift += sim
				cl := &cb.Clusters[c]
				cl.Members = append(cl.Members, Member{Device: dev.Device, Cluster: k, Similarity: round6(sim), Count: s.Counts[k]})
				cl.Count += s.Counts[k]
			}
		}
		if dev.Used > 0 && len(kept) > 0 {
			dev.Drift = round6(drift / float64(dev.Used))
		}
	}
	for c := range cb.Clusters {
		seen := map[string]bool{}
		for _, m := range cb.Clusters[c].Members {
			seen[m.Device] = true
		}
		cb.Clusters[c].Devices = len(seen)
	}
	sort.SliceStable(cb.Clusters, func(i, j int) bool {
		if cb.Clusters[i].Count != cb.Clusters[j].Count {
			return cb.Clusters[i].Count > cb.Clusters[j].Count
		}
		return cb.Clusters[i].ID < cb.Clusters[j].ID
	})
	cb.Digest = cb.digest()
	return cb
}

// position is where device cluster k sits in the shared embedding space:
// its centroid (the mean embedding of its frames) where the device sends
// one, else its prototype. Prototypes are placed to separate a device's
// own clusters, so the same content sits at different prototypes on
// devices that see different scenes; centroids are where it is.
func position(s *fleet.Snapshot, k int) []float64 {
	d := s.Meta.D
	if s.Centroids != nil {
		if c := s.Centroids[k*d : (k+1)*d]; slices.ContainsFunc(c, func(v float32) bool { return v != 0 }) {
			return unit(c)
		}
	}
	return unit(s.Prototypes[k*d : (k+1)*d])
}

// check says why a snapshot cannot be merged ("" if it can).
func check(s *fleet.Snapshot, o Options) string {
	switch {
	case s == nil:
		return "no snapshot yet"
	case o.Base == "":
		return "the fleet has no base model (swav-fleet base set): devices that started from their own random weights do not share a feature space"
	case s.Meta.Base == "":
		return "not on the fleet base: it started from its own random weights (fleet.base, or swavctl fleet rebase)"
	case s.Meta.Base != o.Base:
		return fmt.Sprintf("on base %.12s, the fleet's is %.12s (swavctl fleet rebase)", s.Meta.Base, o.Base)
	case s.Meta.D != o.D || s.Meta.K != o.K:
		return fmt.Sprintf("K=%d, D=%d; the base's are K=%d, D=%d", s.Meta.K, s.Meta.D, o.K, o.D)
	case len(s.Counts) != s.Meta.K || len(s.Prototypes) != s.Meta.K*s.Meta.D:
		return "no counts"
	case s.Centroids != nil && len(s.Centroids) != s.Meta.K*s.Meta.D:
		return fmt.Sprintf("%d centroid values for K=%d, D=%d", len(s.Centroids), s.Meta.K, s.Meta.D)
	}
	for i, v := range s.Centroids {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Sprintf("centroid %d is not finite", i/s.Meta.D)
		}
	}
	var total int64
	for k, c := range s.Counts {
		total += c
		for _, v := range s.Prototypes[k*s.Meta.D : (k+1)*s.Meta.D] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Sprintf("prototype %d is not finite", k)
			}
		}
	}
	if total == 0 {
		return "no assignments counted yet"
	}
	return ""
}

// kmeans is spherical k-means from a farthest-first start: the heaviest
// point first, then each time the point farthest (in cosine) from every
// centre so far; then Lloyd's iterations with weighted, renormalized means.
func kmeans(pts []point, k int) [][]float64 {
	if k <= 0 {
		return nil
	}
	first := 0
	for i, p := range pts {
		if p.w > pts[first].w {
			first = i
		}
	}
	centres := [][]float64{append([]float64(nil), pts[first].x...)}
	closest := make([]float64, len(pts)) // cosine to the nearest centre
	for i, p := range pts {
		closest[i] = dot(p.x, centres[0])
	}
	for len(centres) < k {
		far := -1
		for i := range pts {
			if closest[i] < 1-1e-9 && (far < 0 || closest[i] < closest[far]) {
				far = i
			}
		}
		if far < 0 {
			break // every point sits on a centre
		}
		c := append([]float64(nil), pts[far].x...)
		centres = append(centres, c)
		for i, p := range pts {
			closest[i] = math.Max(closest[i], dot(p.x, c))
		}
	}
	assign := make([]int, len(pts))
	for i := range assign {
		assign[i] = -1
	}
	for it := 0; it < maxIterations; it++ {
		moved := false
		for i, p := range pts {
			if c := nearest(p.x, centres); c != assign[i] {
				assign[i], moved = c, true
			}
		}
		if !moved {
			break
		}
		sums := make([][]float64, len(centres))
		for c := range sums {
			sums[c] = make([]float64, len(pts[0].x))
		}
		for i, p := range pts {
			for j, v := range p.x {
				sums[assign[i]][j] += p.w * v
			}
		}
		for c := range centres {
			if n := norm(sums[c]); n > 0 { // an empty cluster keeps its centre
				for j := range sums[c] {
					centres[c][j] = sums[c][j] / n
				}
			}
		}
	}
	return centres
}

// assignIDs gives each centre an id: a previous cluster's when their
// centres are close (cosine >= 0.9, best pairs first), so ids and their
// labels survive a recomputation; otherwise a new one.
func assignIDs(centres [][]float64, prev *Codebook) []int {
	ids := make([]int, len(centres))
	for i := range ids {
		ids[i] = -1
	}
	next := 0
	if prev != nil {
		type pair struct {
			c, p int
			sim  float64
		}
		var pairs []pair
		for c := range centres {
			for p, pc := range prev.Clusters {
				if pc.ID >= next {
					next = pc.ID + 1
				}
				if len(pc.Centroid) == len(centres[c]) {
					if sim := dot(centres[c], toFloat64(pc.Centroid)); sim >= 0.9 {
						pairs = append(pairs, pair{c, p, sim})
					}
				}
			}
		}
		sort.Slice(pairs, func(i, j int) bool {
			if pairs[i].sim != pairs[j].sim {
				return pairs[i].sim > pairs[j].sim
			}
			return pairs[i].c < pairs[j].c
		})
		used := map[int]bool{}
		for _, pr := range pairs {
			if ids[pr.c] < 0 && !used[pr.p] {
				ids[pr.c], used[pr.p] = prev.Clusters[pr.p].ID, true
			}
		}
	}
	for i := range ids {
		if ids[i] < 0 {
			ids[i] = next
			next++
		}
	}
	return ids
}

// digest names the codebook's content: everything but the labels.
func (cb *Codebook) digest() string {
	type centre struct {
		ID       int       `json:"id"`
		Centroid []float32 `json:"centroid"`
	}
	var cs []centre
	for _, c := range cb.Clusters {
		cs = append(cs, centre{c.ID, c.Centroid})
	}
	clusters := make([]Cluster, len(cb.Clusters))
	for i, c := range cb.Clusters {
		c.Label = ""
		clusters[i] = c
	}
	b, _ := json.Marshal(struct {
		Base     string    `json:"base"`
		D        int       `json:"d"`
		Centres  []centre  `json:"centres"`
		Clusters []Cluster `json:"clusters"`
		Devices  []Device  `json:"devices"`
		Options  any       `json:"options"`
	}{cb.Base, cb.D, cs, clusters, cb.Devices, cb.Options})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Centroids returns the fleet clusters' centres, [len(Clusters), D], in
// the order of Clusters.
func (cb *Codebook) Centroids() []float32 {
	out := make([]float32, 0, len(cb.Clusters)*cb.D)
	for _, c := range cb.Clusters {
		out = append(out, c.Centroid...)
	}
	return out
}

func nearest(x []float64, centres [][]float64) int {
	best, bestSim := 0, math.Inf(-1)
	for c, ctr := range centres {
		if s := dot(x, ctr); s > bestSim {
			best, bestSim = c, s
		}
	}
	return best
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

func unit(v []float32) []float64 {
	x := toFloat64(v)
	if n := norm(x); n > 0 {
		for i := range x {
			x[i] /= n
		}
	}
	return x
}

func toFloat64(v []float32) []float64 {
	x := make([]float64, len(v))
	for i, f := range v {
		x[i] = float64(f)
	}
	return x
}

func toFloat32(v []float64) []float32 {
	x := make([]float32, len(v))
	for i, f := range v {
		x[i] = float32(f)
	}
	return x
}

// round6 keeps reported similarities short and the digest stable.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
