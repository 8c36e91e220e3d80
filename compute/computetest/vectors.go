// Package computetest is the conformance suite every compute backend
// passes: reference vectors for Sinkhorn and the SwAV loss, and finite-
// difference checks of every backward operation. The CPU backend runs it
// directly; other backends run it and compare against the CPU backend.
package computetest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/swavd/swavd/compute"
)

// Vectors is ../shared/testdata/swav_vectors.json: values computed in
// float64 by an independent implementation.
type Vectors struct {
	Sinkhorn []struct {
		B, K       int
		Epsilon    float64
		Iterations int
		Scores, Q  [][]float64
	} `json:"sinkhorn"`
	Loss struct {
		B, K           int
		NCrops         int   `json:"n_crops"`
		CropsForAssign []int `json:"crops_for_assign"`
		Temperature    float64
		Epsilon        float64
		Iterations     int
		Scores         [][][]float64
		Codes          [][][]float64
		Loss           float64
		Grad           [][][]float64
	} `json:"loss"`
	Overflow struct {
		B, K       int
		Epsilon    float64
		Iterations int
		Scores, Q  [][]float64
	} `json:"sinkhorn_overflow"`
}

// VectorsPath finds the vectors: $SWAVD_TESTDATA, else shared/testdata
// beside the repository root (as CI and developers lay it out).
func VectorsPath() string {
	if p := os.Getenv("SWAVD_TESTDATA"); p != "" {
		return filepath.Join(p, "swav_vectors.json")
	}
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "testdata", "swav_vectors.json")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "shared/testdata/swav_vectors.json"
		}
		dir = parent
	}
}

// LoadVectors reads the reference vectors; a missing file fails the test,
// since the numbers cannot be trusted unchecked.
func LoadVectors(t testing.TB) *Vectors {
	t.Helper()
	p := VectorsPath()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reference vectors: %v (set SWAVD_TESTDATA to the folder holding swav_vectors.json)", err)
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("reference vectors %s: %v", p, err)
	}
	if len(v.Sinkhorn) == 0 || v.Loss.B == 0 || v.Overflow.B == 0 {
		t.Fatalf("reference vectors %s: missing cases", p)
	}
	return &v
}

func flatten(m [][]float64) []float32 {
	var out []float32
	for _, r := range m {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}

// closeTo checks got against want element-wise: |got-want| <= rel*|want| + abs.
func closeTo(t *testing.T, what string, got []float32, want [][]float64, rel, abs float64) {
	t.Helper()
	w := flatten(want)
	if len(got) != len(w) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(w))
	}
	for i := range w {
		ref := float64(w[i])
		if d := math.Abs(float64(got[i]) - ref); d > rel*math.Abs(ref)+abs || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d = %g, want %g (diff %g)", what, i, got[i], ref, d)
		}
	}
}

// Float32 tolerances from the vectors' notes.
const (
	relTol = 1e-5
	absTol = 1e-7
)

// TestVectors checks Sinkhorn (plain and overflow cases) and the swapped
// loss and its gradient against the reference.
func TestVectors(t *testing.T, be compute.Backend) {
	v := LoadVectors(t)
	download := func(x compute.Tensor) []float32 {
		d := make([]float32, x.Len())
		be.Download(d, x)
		return d
	}
	sinkhorn := func(name string, B, K int, eps float64, iters int, scores, want [][]float64) {
		s, q := be.New(B, K), be.New(B, K)
		defer be.Release(s, q)
		be.Upload(s, flatten(scores))
		be.Sinkhorn(q, s, float32(eps), iters)
		closeTo(t, name, download(q), want, relTol, absTol)
	}
	for i, c := range v.Sinkhorn {
		sinkhorn("sinkhorn case "+string(rune('0'+i)), c.B, c.K, c.Epsilon, c.Iterations, c.Scores, c.Q)
	}
	o := v.Overflow
	sinkhorn("sinkhorn overflow case", o.B, o.K, o.Epsilon, o.Iterations, o.Scores, o.Q)

	l := v.Loss
	B, K, n := l.B, l.K, l.NCrops
	scores := be.New(n*B, K)
	grad := be.New(n*B, K)
	loss := be.New(1)
	defer be.Release(scores, grad, loss)
	var all []float32
	for _, s := range l.Scores {
		all = append(all, flatten(s)...)
	}
	be.Upload(scores, all)
	crop := func(x compute.Tensor, c int) compute.Tensor { return be.View(x, c*B*K, B, K) }
	weight := float32(1 / float64(len(l.CropsForAssign)*(n-1)))
	for i, a := range l.CropsForAssign {
		codes := be.New(B, K)
		be.Sinkhorn(codes, crop(scores, a), float32(l.Epsilon), l.Iterations)
		closeTo(t, "codes of crop "+string(rune('0'+a)), download(codes), l.Codes[i], relTol, absTol)
		for c := 0; c < n; c++ {
			if c != a {
				be.SwappedCE(loss, crop(grad, c), crop(scores, c), codes, float32(l.Temperature), weight)
			}
		}
		be.Release(codes)
	}
	got := download(loss)[0]
	if d := math.Abs(float64(got) - l.Loss); d > relTol*math.Abs(l.Loss) {
		t.Fatalf("loss = %.9g, want %.9g", got, l.Loss)
	}
	g := download(grad)
	for c := 0; c < n; c++ {
		closeTo(t, "gradient of crop "+string(rune('0'+c)), g[c*B*K:(c+1)*B*K], l.Grad[c], relTol, 1e-7)
	}
}
