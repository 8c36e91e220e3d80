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
}

// NewStats tracks k clusters, a window of `window` recent assignments and
// `exemplars` thumbnails per cluster.
func NewStats(k, window, exemplars int) *Stats {
	return &Stats{k: k, total: make([]uint64, k), confSum: make([]float64, k), lastSeen: make([]time.Time, k),
		recent: make([]int32, window), recentCnt: make([]int, k), exemplars: make([][]*capture.Image, k), keep: exemplars}
}

// Add records one assignment of frame im.
func (s *Stats) Add(cluster int, conf float64, at time.Time, im *capture.Image) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
}

// MarshalJSON saves the counters.
func (s *Stats) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := statsFile{K: s.k, Total: s.total, ConfSum: s.confSum, LastSeen: s.lastSeen}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.total, f.Total)
	copy(s.confSum, f.ConfSum)
	copy(s.lastSeen, f.LastSeen)
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
