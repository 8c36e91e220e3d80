package daemon

import (
	"fmt"
	"math"
	"sync"

	"github.com/swavd/swavd/augment"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/safetensors"
)

// Assigner gives frames their cluster: the center view through the encoder
// in inference mode, the head and the prototypes, then a softmax at the
// SwAV temperature. It runs on its own CPU backend with a copy of the
// weights the trainer publishes every few steps, so assigning a frame
// never waits for a training step (on either backend) and a training step
// never sees half-updated weights.
type Assigner struct {
	mu    sync.Mutex
	be    compute.Backend
	m     *model.Model
	views *augment.Views
	size  int // input side: the global crop size the network trains on
	inSz  int // working size frames arrive at
	inC   int
	temp  float64
	step  int
	host  []float32
	sc    []float32
	tmp   [][]float32 // host copies of the published tensors
}

// NewAssigner builds an assigner with freshly initialized weights.
func NewAssigner(cfg *config.Config) (*Assigner, error) {
	be := cpu.New()
	m, err := model.New(be, cfg.Model, cfg.Seed)
	if err != nil {
		return nil, err
	}
	s := cfg.Views.Global.Size
	v := cfg.Views
	return &Assigner{be: be, m: m, views: &v, size: s, inSz: cfg.Input.Size, inC: cfg.Input.Channels,
		temp: cfg.SwAV.Temperature, host: make([]float32, 3*s*s), sc: make([]float32, cfg.Model.Prototypes)}, nil
}

// Close releases the assigner's model.
func (a *Assigner) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m.Close()
}

func inferenceState(m *model.Model) []compute.Tensor {
	var ts []compute.Tensor
	for _, p := range m.Params() {
		ts = append(ts, p.W)
	}
	_, bufs := m.Buffers()
	return append(ts, bufs...)
}

// Publish copies the weights and batch-norm statistics of src (the
// trainer's model, on any backend) taken at the given step.
func (a *Assigner) Publish(src *model.Model, step int) {
	from := inferenceState(src)
	if a.tmp == nil {
		for _, t := range from {
			a.tmp = append(a.tmp, make([]float32, t.Len()))
		}
	}
	sbe := src.Backend()
	for i, t := range from { // download outside the lock: assignment goes on meanwhile
		sbe.Download(a.tmp[i], t)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, t := range inferenceState(a.m) {
		a.be.Upload(t, a.tmp[i])
	}
	// Training normalizes the prototypes before each step, so after one
	// they are slightly off the sphere; use (and serve) them as the next
	// step would.
	a.be.L2NormalizeRows(a.m.Prototypes.W)
	a.step = step
}

// Step is the training step of the weights in use.
func (a *Assigner) Step() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.step
}

// Assign returns the cluster of a frame at the working size, its
// probability, and (if probs is not nil) every cluster's probability.
func (a *Assigner) Assign(im *capture.Image, probs []float32) (cluster int, conf float64, step int, err error) {
	if im.W != a.inSz || im.H != a.inSz || im.C != a.inC {
		return 0, 0, 0, fmt.Errorf("assign: frame %dx%dx%d, want %dx%dx%d", im.W, im.H, im.C, a.inSz, a.inSz, a.inC)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.views.Resize(a.host, 1, 0, a.size, im)
	ctx := &model.Ctx{Be: a.be}
	x := ctx.New(3, 1, a.size, a.size)
	a.be.Upload(x, a.host)
	s := a.m.Scores(ctx, a.m.Features(ctx, x))
	a.be.Download(a.sc, s)
	ctx.Free()
	cluster, conf = softmax(a.sc, a.temp, probs)
	if math.IsNaN(conf) {
		return 0, 0, a.step, fmt.Errorf("assign: the model gave non-finite scores")
	}
	return cluster, conf, a.step, nil
}

// softmax of scores/temp: the argmax and its probability; all
// probabilities into probs when it is not nil.
func softmax(scores []float32, temp float64, probs []float32) (int, float64) {
	best := 0
	for i, v := range scores {
		if v > scores[best] {
			best = i
		}
	}
	mx := float64(scores[best])
	var sum float64
	for _, v := range scores {
		sum += math.Exp((float64(v) - mx) / temp)
	}
	if probs != nil {
		for i, v := range scores {
			probs[i] = float32(math.Exp((float64(v)-mx)/temp) / sum)
		}
	}
	return best, 1 / sum
}

// fitFrame brings a captured frame to the working size and channels.
func fitFrame(im *capture.Image, size, channels int) *capture.Image {
	if im.W == size && im.H == size && im.C == channels {
		return im
	}
	return augment.Fit(im, size, channels)
}

// Prototypes returns a copy of the prototypes in use and their step.
func (a *Assigner) Prototypes() ([]float32, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := make([]float32, a.m.Prototypes.W.Len())
	a.be.Download(p, a.m.Prototypes.W)
	return p, a.step
}

// Weights returns, at one step, a copy of the prototypes in use and, if
// withModel, every inference tensor of the model named "model.NAME".
func (a *Assigner) Weights(withModel bool) (protos []float32, model []safetensors.Tensor, step int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	protos = make([]float32, a.m.Prototypes.W.Len())
	a.be.Download(protos, a.m.Prototypes.W)
	if withModel {
		for _, p := range a.m.Params() {
			model = append(model, a.tensor("model."+p.Name, p.W))
		}
		names, bufs := a.m.Buffers()
		for i, b := range bufs {
			model = append(model, a.tensor("model."+names[i], b))
		}
	}
	return protos, model, a.step
}

func (a *Assigner) tensor(name string, t compute.Tensor) safetensors.Tensor {
	data := make([]float32, t.Len())
	a.be.Download(data, t)
	return safetensors.Tensor{Name: name, Shape: t.Shape(), Data: data}
}

// LoadWeights takes the model's inference tensors from a snapshot's
// "model.NAME" tensors (what Weights(true) gives), as weights of step.
func (a *Assigner) LoadWeights(tensors []safetensors.Tensor, step int) error {
	byName := map[string]safetensors.Tensor{}
	for _, t := range tensors {
		byName[t.Name] = t
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	type target struct {
		name string
		t    compute.Tensor
	}
	var targets []target
	for _, p := range a.m.Params() {
		targets = append(targets, target{"model." + p.Name, p.W})
	}
	names, bufs := a.m.Buffers()
	for i, b := range bufs {
		targets = append(targets, target{"model." + names[i], b})
	}
	for _, tg := range targets {
		src, ok := byName[tg.name]
		if !ok || len(src.Data) != tg.t.Len() {
			return fmt.Errorf("weights: %s missing or of another shape (%v)", tg.name, src.Shape)
		}
	}
	for _, tg := range targets {
		a.be.Upload(tg.t, byName[tg.name].Data)
	}
	a.step = step
	return nil
}

// centroidBatch is how many frames Centroids embeds at a time.
const centroidBatch = 64

// Centroids embeds frames (at the working size) and returns each
// cluster's centroid: the mean embedding of the frames assigned to it, as
// a unit row of [K, ProjDim]; a zero row for a cluster no frame reaches.
// The fleet merges clusters by them (see fleet/codebook). Call it on an
// assigner of its own (it holds the lock one batch at a time).
func (a *Assigner) Centroids(frames []*capture.Image) ([]float32, error) {
	K, D := a.m.Arch.Prototypes, a.m.Arch.ProjDim
	sum := make([]float64, K*D)
	host := make([]float32, 3*centroidBatch*a.size*a.size)
	sc, z := make([]float32, centroidBatch*K), make([]float32, D*centroidBatch)
	for lo := 0; lo < len(frames); lo += centroidBatch {
		n := min(centroidBatch, len(frames)-lo)
		for i, im := range frames[lo : lo+n] {
			if im.W != a.inSz || im.H != a.inSz || im.C != a.inC {
				return nil, fmt.Errorf("centroids: frame %dx%dx%d, want %dx%dx%d", im.W, im.H, im.C, a.inSz, a.inSz, a.inC)
			}
			a.views.Resize(host, n, i, a.size, im)
		}
		a.mu.Lock()
		ctx := &model.Ctx{Be: a.be}
		x := ctx.New(3, n, a.size, a.size)
		a.be.Upload(x, host[:3*n*a.size*a.size])
		s, zt := a.m.Embed(ctx, a.m.Features(ctx, x))
		a.be.Download(sc[:n*K], s)
		a.be.Download(z[:D*n], zt)
		ctx.Free()
		a.mu.Unlock()
		for j := 0; j < n; j++ {
			k, _ := softmax(sc[j*K:(j+1)*K], a.temp, nil)
			for d := 0; d < D; d++ {
				sum[k*D+d] += float64(z[d*n+j])
			}
		}
	}
	out := make([]float32, K*D)
	for k := 0; k < K; k++ {
		var n2 float64
		for _, v := range sum[k*D : (k+1)*D] {
			n2 += v * v
		}
		if n2 == 0 || math.IsNaN(n2) || math.IsInf(n2, 0) {
			continue
		}
		inv := 1 / math.Sqrt(n2)
		for d := 0; d < D; d++ {
			out[k*D+d] = float32(sum[k*D+d] * inv)
		}
	}
	return out, nil
}
