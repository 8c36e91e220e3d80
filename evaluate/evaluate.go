package evaluate

import (
	"fmt"
	"math"
	"sort"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/model"
)

// Embedding is what the model makes of a set of images.
type Embedding struct {
	D        int
	Features []float32 // N x D, rows L2-normalized backbone features
	Clusters []int     // argmax prototype of each image
	Labels   []int
}

// Embed runs m in inference mode over imgs, each resized to size x size
// without augmentation, batch images at a time.
func Embed(m *model.Model, v *augment.Views, size int, imgs []*capture.Image, batch int) (*Embedding, error) {
	be := m.Backend()
	D, K := m.Encoder.OutDim, m.Arch.Prototypes
	e := &Embedding{D: D, Features: make([]float32, len(imgs)*D), Clusters: make([]int, len(imgs)), Labels: make([]int, len(imgs))}
	host := make([]float32, 3*batch*size*size)
	for lo := 0; lo < len(imgs); lo += batch {
		hi := min(lo+batch, len(imgs))
		n := hi - lo
		for i := lo; i < hi; i++ {
			if err := imgs[i].Validate(); err != nil {
				return nil, fmt.Errorf("evaluate: image %d: %w", i, err)
			}
			v.Resize(host, n, i-lo, size, imgs[i])
			e.Labels[i] = imgs[i].Label
		}
		ctx := &model.Ctx{Be: be}
		x := ctx.New(3, n, size, size)
		be.Upload(x, host[:3*n*size*size])
		f := m.Features(ctx, x)
		s := m.Scores(ctx, f)
		fh := make([]float32, D*n)
		be.Download(fh, f)
		sh := make([]float32, n*K)
		be.Download(sh, s)
		ctx.Free()
		for j := 0; j < n; j++ {
			row := e.Features[(lo+j)*D : (lo+j+1)*D]
			var ss float64
			for d := 0; d < D; d++ {
				row[d] = fh[d*n+j]
				ss += float64(row[d]) * float64(row[d])
			}
			inv := float32(1 / math.Max(math.Sqrt(ss), 1e-12))
			for d := range row {
				row[d] *= inv
			}
			e.Clusters[lo+j] = argmax(sh[j*K : (j+1)*K])
		}
	}
	return e, nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// KNN classifies each test embedding by its k most cosine-similar bank
// embeddings, each voting for its label with weight exp(sim/T), and returns
// the top-1 accuracy. The similarities are computed on the backend.
func KNN(be compute.Backend, bank, test *Embedding, k int, T float64) float64 {
	D, nb := bank.D, len(bank.Labels)
	bt := be.New(nb, D)
	defer be.Release(bt)
	be.Upload(bt, bank.Features)
	const chunk = 500
	correct := 0
	sim := make([]float32, chunk*nb)
	type nb2 struct {
		s float32
		i int
	}
	top := make([]nb2, 0, k+1)
	votes := map[int]float64{}
	for lo := 0; lo < len(test.Labels); lo += chunk {
		hi := min(lo+chunk, len(test.Labels))
		n := hi - lo
		q := be.New(n, D)
		be.Upload(q, test.Features[lo*D:hi*D])
		s := be.New(n, nb)
		be.MatMul(s, q, bt, false, true, 1, 0)
		be.Download(sim[:n*nb], s)
		be.Release(q, s)
		for j := 0; j < n; j++ {
			top = top[:0]
			for i, v := range sim[j*nb : (j+1)*nb] {
				if len(top) < k || v > top[len(top)-1].s {
					p := sort.Search(len(top), func(x int) bool { return top[x].s < v })
					top = append(top, nb2{})
					copy(top[p+1:], top[p:])
					top[p] = nb2{v, i}
					if len(top) > k {
						top = top[:k]
					}
				}
			}
			clear(votes)
			for _, t := range top {
				votes[bank.Labels[t.i]] += math.Exp(float64(t.s) / T)
			}
			best, bestV := -1, -1.0
			for l, v := range votes {
				if v > bestV || (v == bestV && l < best) {
					best, bestV = l, v
				}
			}
			if best == test.Labels[lo+j] {
				correct++
			}
		}
	}
	return float64(correct) / float64(len(test.Labels))
}

// Report is the evaluation protocol's result.
type Report struct {
	KNNTop1          float64 `json:"knn_top1"`
	NMI              float64 `json:"nmi"`
	ARI              float64 `json:"ari"`
	NonemptyClusters int     `json:"nonempty_clusters"`
	TestImages       int     `json:"test_images"`
	BankImages       int     `json:"bank_images"`
}

// Run is the whole protocol: embed bank and test sets, kNN (k, T) on the
// backbone features, NMI/ARI of the prototype assignments of the test set.
func Run(m *model.Model, v *augment.Views, size int, bank, test []*capture.Image, k int, T float64) (*Report, error) {
	for _, im := range test {
		if im.Label < 0 {
			return nil, fmt.Errorf("evaluate: the test set has no labels")
		}
	}
	eb, err := Embed(m, v, size, bank, 256)
	if err != nil {
		return nil, err
	}
	et, err := Embed(m, v, size, test, 256)
	if err != nil {
		return nil, err
	}
	return &Report{
		KNNTop1:          KNN(m.Backend(), eb, et, k, T),
		NMI:              NMI(et.Clusters, et.Labels),
		ARI:              ARI(et.Clusters, et.Labels),
		NonemptyClusters: Distinct(et.Clusters),
		TestImages:       len(test), BankImages: len(bank),
	}, nil
}
