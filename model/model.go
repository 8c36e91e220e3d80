package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/swavd/swavd/compute"
)

// Arch is the shape of the network.
type Arch struct {
	InputChannels  int   `mapstructure:"input_channels"`
	StemWidth      int   `mapstructure:"stem_width"`
	Stages         []int `mapstructure:"stages"`
	BlocksPerStage int   `mapstructure:"blocks_per_stage"`
	HeadHidden     int   `mapstructure:"head_hidden"`
	ProjDim        int   `mapstructure:"proj_dim"`
	Prototypes     int   `mapstructure:"prototypes"`
}

// Model is the encoder, the projection head and the prototypes.
type Model struct {
	Arch       Arch
	Encoder    Encoder
	Head       Head
	Prototypes *Param // [K, ProjDim], rows L2-normalized before every step
	set        paramSet
}

// New builds a model with freshly initialized weights on be.
func New(be compute.Backend, a Arch, seed uint64) (*Model, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	m := &Model{Arch: a, set: paramSet{be: be, buffers: map[string]compute.Tensor{}}}
	var err error
	if m.Encoder, err = newEncoder(&m.set, rng, a); err != nil {
		return nil, err
	}
	m.Head = newHead(&m.set, rng, m.Encoder.OutDim, a.HeadHidden, a.ProjDim)
	bound := 1 / math.Sqrt(float64(a.ProjDim))
	m.Prototypes = m.set.param("prototypes.weight", uniform(rng, a.Prototypes*a.ProjDim, bound), a.Prototypes, a.ProjDim)
	be.L2NormalizeRows(m.Prototypes.W)
	return m, nil
}

// Params lists the learnable tensors in a fixed order.
func (m *Model) Params() []*Param { return m.set.params }

// Buffers lists the non-learned state (batch-norm running statistics) by name, in a fixed order.
func (m *Model) Buffers() (names []string, ts []compute.Tensor) {
	for _, n := range m.set.order {
		names = append(names, n)
		ts = append(ts, m.set.buffers[n])
	}
	return names, ts
}

// Backend is the backend the model lives on.
func (m *Model) Backend() compute.Backend { return m.set.be }

// Close releases the model's tensors.
func (m *Model) Close() {
	be := m.set.be
	for _, p := range m.set.params {
		be.Release(p.W, p.G, p.M)
	}
	for _, t := range m.set.buffers {
		be.Release(t)
	}
}

// Features returns the pooled backbone features [OutDim, N] of images
// [C,N,H,W] in inference mode (running batch-norm statistics). The result
// lives until ctx.Free.
func (m *Model) Features(ctx *Ctx, x compute.Tensor) compute.Tensor {
	if ctx.Train {
		panic("model: Features is for inference")
	}
	f, _ := m.Encoder.forward(ctx, x)
	return f
}

// Scores returns the prototype scores [N, K] of features [OutDim, N] in
// inference mode.
func (m *Model) Scores(ctx *Ctx, f compute.Tensor) compute.Tensor {
	s, _ := m.Embed(ctx, f)
	return s
}

// Embed returns the prototype scores [N, K] of features [OutDim, N] and
// the embeddings they come from, z [ProjDim, N] (unit columns), in
// inference mode.
func (m *Model) Embed(ctx *Ctx, f compute.Tensor) (scores, z compute.Tensor) {
	z, _ = m.Head.forward(ctx, f)
	scores = ctx.Empty(f.Shape()[1], m.Arch.Prototypes)
	ctx.Be.MatMul(scores, z, m.Prototypes.W, true, true, 1, 0)
	return scores, z
}

// ParamCount is the number of learned scalars.
func (m *Model) ParamCount() int {
	n := 0
	for _, p := range m.set.params {
		n += compute.Size(p.Shape)
	}
	return n
}

func (a Arch) String() string {
	return fmt.Sprintf("resnet stem %d stages %v x%d, head %d-%d, K=%d", a.StemWidth, a.Stages, a.BlocksPerStage, a.HeadHidden, a.ProjDim, a.Prototypes)
}
