package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"sync"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
)

// Stats counts assignments per cluster: totals, a window of the most
// recent assignments, when each cluster was last seen, its mean
// confidence, and the newest few frames as exemplars.
type Stats struct {
	mu        sync.Mutex
	k         int
	total     []uint64
	confSum   []float64
	lastSeen  []time.Time
	recent    []int32 // ring of the last assignments' clusters
	recentPos int
	recentN   int
	recentCnt []int
	exemplars [][]*capture.Image // newest first
	keep      int
	// centroid holds each cluster's mean embedding [k][d], the mean of its
	// first centroidHorizon frames, then a moving average over about as
	// many (it follows the model as it adapts); centroidN counts up to the
	// horizon. The fleet merges clusters by them: a prototype is a
	// direction that separates a device's clusters, placed relative to its
	// other clusters, while the centroid is where the cluster's frames are.
	d         int
	centroid  []float64
	centroidN []uint32
}

// centroidHorizon is how many frames a centroid averages over.
const centroidHorizon = 256

// NewStats tracks k clusters of embeddings of dimension d, a window of
// `window` recent assignments and `exemplars` thumbnails per cluster.
func NewStats(k, d, window, exemplars int) *Stats {
	return &Stats{k: k, total: make([]uint64, k), confSum: make([]float64, k), lastSeen: make([]time.Time, k),
		recent: make([]int32, window), recentCnt: make([]int, k), exemplars: make([][]*capture.Image, k), keep: exemplars,
		d: d, centroid: make([]float64, k*d), centroidN: make([]uint32, k)}
}

// Add records one assignment of frame im, whose embedding is emb (nil:
// none, or not of this model's dimension: the centroids skip it).
func (s *Stats) Add(cluster int, conf float64, at time.Time, im *capture.Image, emb []float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(emb) == s.d {
		if s.centroidN[cluster] < centroidHorizon {
			s.centroidN[cluster]++
		}
		rate := 1 / float64(s.centroidN[cluster])
		c := s.centroid[cluster*s.d : (cluster+1)*s.d]
		for i, v := range emb {
			c[i] += rate * (float64(v) - c[i])
		}
	}
	s.total[cluster]++
	s.confSum[cluster] += conf
	s.lastSeen[cluster] = at
	if s.recentN == len(s.recent) {
		s.recentCnt[s.recent[s.recentPos]]--
	} else {
		s.recentN++
	}
	s.recent[s.recentPos] = int32(cluster)
	s.recentCnt[cluster]++
	s.recentPos = (s.recentPos + 1) % len(s.recent)
	if s.keep > 0 && im != nil {
		ex := s.exemplars[cluster]
		if len(ex) < s.keep {
			ex = append(ex, nil)
		}
		copy(ex[1:], ex)
		ex[0] = im
		s.exemplars[cluster] = ex
	}
}

func entropy(counts func(i int) float64, k int) float64 {
	var n float64
	for i := 0; i < k; i++ {
		n += counts(i)
	}
	if n == 0 {
		return 0
	}
	h := 0.0
	for i := 0; i < k; i++ {
		if c := counts(i); c > 0 {
			h -= c / n * math.Log(c/n)
		}
	}
	return h
}

// Counts returns each cluster's total and recent-window counts.
func (s *Stats) Counts() (total, recent []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, recent = make([]int64, s.k), make([]int64, s.k)
	for i := 0; i < s.k; i++ {
		total[i], recent[i] = int64(s.total[i]), int64(s.recentCnt[i])
	}
	return total, recent
}

// Centroids returns each cluster's mean embedding as a unit row, [k, d];
// a zero row for a cluster without frames since the centroids were reset.
func (s *Stats) Centroids() []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]float32, s.k*s.d)
	for k := 0; k < s.k; k++ {
		c := s.centroid[k*s.d : (k+1)*s.d]
		var n2 float64
		for _, v := range c {
			n2 += v * v
		}
		if s.centroidN[k] == 0 || n2 == 0 {
			continue
		}
		inv := 1 / math.Sqrt(n2)
		for i, v := range c {
			out[k*s.d+i] = float32(v * inv)
		}
	}
	return out
}

// ResetCentroids forgets the centroids: embeddings of another model (a new
// base) do not average with the old ones.
func (s *Stats) ResetCentroids() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.centroid)
	clear(s.centroidN)
}

// Thumbnails returns each cluster's newest exemplar fitted to a size x
// size square with the given channels, [K, size, size, channels] bytes;
// zeros for a cluster without one.
func (s *Stats) Thumbnails(size, channels int) []uint8 {
	s.mu.Lock()
	newest := make([]*capture.Image, s.k)
	for i, ex := range s.exemplars {
		if len(ex) > 0 {
			newest[i] = ex[0]
		}
	}
	s.mu.Unlock()
	n := size * size * channels
	out := make([]uint8, s.k*n)
	for i, im := range newest {
		if im != nil {
			copy(out[i*n:(i+1)*n], fitFrame(im, size, channels).Pix)
		}
	}
	return out
}

// Usage summarizes the spread over clusters.
func (s *Stats) Usage() api.Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := api.Usage{K: s.k}
	for i := 0; i < s.k; i++ {
		if s.total[i] > 0 {
			u.Used++
		}
		if s.recentCnt[i] > 0 {
			u.RecentUsed++
		}
	}
	u.Entropy = entropy(func(i int) float64 { return float64(s.total[i]) }, s.k)
	u.RecentEntropy = entropy(func(i int) float64 { return float64(s.recentCnt[i]) }, s.k)
	return u
}

// Clusters lists every cluster that was ever assigned, with PNG exemplars
// if asked.
func (s *Stats) Clusters(withExemplars bool) []api.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Cluster
	for i := 0; i < s.k; i++ {
		if s.total[i] == 0 {
			continue
		}
		last := s.lastSeen[i]
		c := api.Cluster{ID: i, Total: s.total[i], Recent: s.recentCnt[i], LastSeen: &last,
			MeanConf: s.confSum[i] / float64(s.total[i])}
		if withExemplars {
			for _, im := range s.exemplars[i] {
				c.Exemplars = append(c.Exemplars, encodePNG(im))
			}
		}
		out = append(out, c)
	}
	return out
}

// encodePNG encodes a gray or RGB frame.
func encodePNG(im *capture.Image) []byte {
	var m image.Image
	if im.C == 1 {
		m = &image.Gray{Pix: im.Pix, Stride: im.W, Rect: image.Rect(0, 0, im.W, im.H)}
	} else {
		rgba := image.NewRGBA(image.Rect(0, 0, im.W, im.H))
		for i := 0; i < im.W*im.H; i++ {
			copy(rgba.Pix[4*i:4*i+3], im.Pix[3*i:3*i+3])
			rgba.Pix[4*i+3] = 255
		}
		m = rgba
	}
	var b bytes.Buffer
	png.Encode(&b, m)
	return b.Bytes()
}

// statsFile is the statistics as saved in a checkpoint (exemplars are not
// kept: they come back as frames arrive).
type statsFile struct {
	K        int         `json:"k"`
	Total    []uint64    `json:"total"`
	ConfSum  []float64   `json:"conf_sum"`
	LastSeen []time.Time `json:"last_seen"`
	Recent   []int32     `json:"recent"` // oldest first
	// Centroids [k*d] and CentroidN [k]; absent in statistics saved
	// before them (they start again).
	D         int       `json:"d,omitempty"`
	Centroids []float64 `json:"centroids,omitempty"`
	CentroidN []uint32  `json:"centroid_n,omitempty"`
}

// MarshalJSON saves the counters.
func (s *Stats) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := statsFile{K: s.k, Total: s.total, ConfSum: s.confSum, LastSeen: s.lastSeen, D: s.d, Centroids: s.centroid, CentroidN: s.centroidN}
	start := (s.recentPos - s.recentN + len(s.recent)) % len(s.recent)
	for i := 0; i < s.recentN; i++ {
		f.Recent = append(f.Recent, s.recent[(start+i)%len(s.recent)])
	}
	return json.Marshal(f)
}

// UnmarshalJSON restores counters saved for the same number of clusters.
func (s *Stats) UnmarshalJSON(b []byte) error {
	var f statsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f.K != s.k || len(f.Total) != s.k || len(f.ConfSum) != s.k || len(f.LastSeen) != s.k {
		return fmt.Errorf("cluster statistics for %d clusters; the model has %d", f.K, s.k)
	}
	for _, c := range f.Recent {
		if c < 0 || int(c) >= s.k {
			return fmt.Errorf("cluster statistics name cluster %d of %d", c, s.k)
		}
	}
	centroids := f.D == s.d && len(f.Centroids) == s.k*s.d && len(f.CentroidN) == s.k
	for _, v := range f.Centroids {
		centroids = centroids && !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.total, f.Total)
	copy(s.confSum, f.ConfSum)
	copy(s.lastSeen, f.LastSeen)
	clear(s.centroid)
	clear(s.centroidN)
	if centroids {
		copy(s.centroid, f.Centroids)
		for k, n := range f.CentroidN {
			s.centroidN[k] = min(n, centroidHorizon)
		}
	}
	clear(s.recentCnt)
	s.recentPos, s.recentN = 0, 0
	if len(f.Recent) > len(s.recent) {
		f.Recent = f.Recent[len(f.Recent)-len(s.recent):]
	}
	for _, c := range f.Recent {
		s.recent[s.recentPos] = c
		s.recentCnt[c]++
		s.recentPos = (s.recentPos + 1) % len(s.recent)
		s.recentN++
	}
	return nil
}
