// Package model is the SwAV network (ResNet encoder, projection head,
// prototypes), the SwAV objective and the optimizer, written against the
// compute.Backend interface: it never sees which backend runs it.
package model

import (
	"math"
	"math/rand/v2"

	"github.com/swavd/swavd/compute"
)

// Param is one learnable tensor with its gradient and momentum buffer.
type Param struct {
	Name  string
	Shape []int
	W     compute.Tensor // value
	G     compute.Tensor // gradient
	M     compute.Tensor // momentum
}

// Ctx carries what one forward/backward pass needs: the backend, the mode,
// and the activations allocated during the pass, released together by Free.
type Ctx struct {
	Be    compute.Backend
	Train bool
	live  []compute.Tensor
}

// New allocates a tensor that lives until Free.
func (c *Ctx) New(shape ...int) compute.Tensor {
	t := c.Be.New(shape...)
	c.live = append(c.live, t)
	return t
}

// Empty allocates a tensor with undefined contents that lives until Free,
// for outputs an operation overwrites whole.
func (c *Ctx) Empty(shape ...int) compute.Tensor {
	t := c.Be.Empty(shape...)
	c.live = append(c.live, t)
	return t
}

// Free releases every tensor allocated through New or Empty.
func (c *Ctx) Free() {
	c.Be.Release(c.live...)
	c.live = c.live[:0]
}

type paramSet struct {
	be     compute.Backend
	params []*Param
	// buffers are non-learned state (running statistics) that still
	// belongs in a checkpoint.
	buffers map[string]compute.Tensor
	order   []string
}

func (s *paramSet) param(name string, init []float32, shape ...int) *Param {
	p := &Param{Name: name, Shape: shape, W: s.be.New(shape...), G: s.be.New(shape...), M: s.be.New(shape...)}
	s.be.Upload(p.W, init)
	s.params = append(s.params, p)
	return p
}

func (s *paramSet) buffer(name string, init []float32, shape ...int) compute.Tensor {
	t := s.be.New(shape...)
	s.be.Upload(t, init)
	s.buffers[name] = t
	s.order = append(s.order, name)
	return t
}

func filled(n int, v float32) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = v
	}
	return d
}

// Conv is a bias-free convolution, initialized Kaiming-normal (fan_out, ReLU).
type Conv struct {
	W *Param
	P compute.ConvParams
}

func newConv(s *paramSet, rng *rand.Rand, name string, cin, cout, k, stride int) Conv {
	std := math.Sqrt(2 / float64(cout*k*k))
	w := make([]float32, cout*cin*k*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
	return Conv{W: s.param(name+".weight", w, cout, cin, k, k), P: compute.ConvParams{Kernel: k, Stride: stride, Pad: k / 2}}
}

func (c *Conv) forward(ctx *Ctx, x compute.Tensor) compute.Tensor {
	y := c.output(ctx, x)
	ctx.Be.Conv2D(y, x, c.W.W, c.P)
	return y
}

// output allocates the convolution's output for input x, until ctx.Free.
func (c *Conv) output(ctx *Ctx, x compute.Tensor) compute.Tensor {
	xs, ws := x.Shape(), c.W.Shape
	return ctx.Empty(ws[0], xs[1], c.P.OutSize(xs[2]), c.P.OutSize(xs[3]))
}

// backward accumulates the filter gradient and, if wanted, returns the
// input gradient, which the caller releases.
func (c *Conv) backward(ctx *Ctx, dy, x compute.Tensor, wantDX bool) compute.Tensor {
	ctx.Be.Conv2DGradFilter(c.W.G, dy, x, c.P, 1)
	if !wantDX {
		return nil
	}
	dx := ctx.Be.Empty(x.Shape()...)
	ctx.Be.Conv2DGradInput(dx, dy, c.W.W, c.P)
	return dx
}

// BatchNorm normalizes the rows of a [C, ...] tensor: channels of an image
// batch, or features of a [D, N] matrix.
type BatchNorm struct {
	Gamma, Beta     *Param
	RunMean, RunVar compute.Tensor
	Momentum, Eps   float32
}

func newBatchNorm(s *paramSet, name string, c int) BatchNorm {
	return BatchNorm{
		Gamma:    s.param(name+".weight", filled(c, 1), c),
		Beta:     s.param(name+".bias", filled(c, 0), c),
		RunMean:  s.buffer(name+".running_mean", filled(c, 0), c),
		RunVar:   s.buffer(name+".running_var", filled(c, 1), c),
		Momentum: 0.1, Eps: 1e-5,
	}
}

type bnCache struct{ x, y, mean, invStd compute.Tensor }

func (n *BatchNorm) forward(ctx *Ctx, x compute.Tensor, relu bool) (compute.Tensor, bnCache) {
	y := ctx.Empty(x.Shape()...)
	if !ctx.Train {
		ctx.Be.BatchNormInfer(y, x, n.Gamma.W, n.Beta.W, n.RunMean, n.RunVar, n.Eps, relu)
		return y, bnCache{}
	}
	c := x.Shape()[0]
	cache := bnCache{x: x, y: y, mean: ctx.Empty(c), invStd: ctx.Empty(c)}
	ctx.Be.BatchNormTrain(y, x, n.Gamma.W, n.Beta.W, cache.mean, cache.invStd, n.RunMean, n.RunVar, n.Momentum, n.Eps, relu)
	return y, cache
}

// forwardAddReLU writes y = max(BN(x) + res, 0) in one pass on a
// ResidualNorm backend.
func (n *BatchNorm) forwardAddReLU(ctx *Ctx, rn compute.ResidualNorm, y, x, res compute.Tensor) bnCache {
	if !ctx.Train {
		rn.BatchNormInferAddReLU(y, x, res, n.Gamma.W, n.Beta.W, n.RunMean, n.RunVar, n.Eps)
		return bnCache{}
	}
	c := x.Shape()[0]
	cache := bnCache{x: x, mean: ctx.Empty(c), invStd: ctx.Empty(c)}
	rn.BatchNormTrainAddReLU(y, x, res, n.Gamma.W, n.Beta.W, cache.mean, cache.invStd, n.RunMean, n.RunVar, n.Momentum, n.Eps)
	return cache
}

// backward returns dx, which the caller releases.
func (n *BatchNorm) backward(ctx *Ctx, c bnCache, dy compute.Tensor, relu bool) compute.Tensor {
	dx := ctx.Be.Empty(c.x.Shape()...)
	ctx.Be.BatchNormBackward(dx, n.Gamma.G, n.Beta.G, dy, c.x, c.y, n.Gamma.W, c.mean, c.invStd, relu)
	return dx
}

// Linear is y = W x + b on [in, N] feature matrices, initialized as
// PyTorch's nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
type Linear struct{ W, B *Param }

func uniform(rng *rand.Rand, n int, bound float64) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32((rng.Float64()*2 - 1) * bound)
	}
	return d
}

func newLinear(s *paramSet, rng *rand.Rand, name string, in, out int) Linear {
	bound := 1 / math.Sqrt(float64(in))
	return Linear{
		W: s.param(name+".weight", uniform(rng, out*in, bound), out, in),
		B: s.param(name+".bias", uniform(rng, out, bound), out),
	}
}

func (l *Linear) forward(ctx *Ctx, x compute.Tensor) compute.Tensor {
	y := ctx.Empty(l.W.Shape[0], x.Shape()[1])
	ctx.Be.MatMul(y, l.W.W, x, false, false, 1, 0)
	ctx.Be.AddBias(y, l.B.W)
	return y
}

func (l *Linear) backward(ctx *Ctx, dy, x compute.Tensor) compute.Tensor {
	ctx.Be.MatMul(l.W.G, dy, x, false, true, 1, 1)
	ctx.Be.SumRows(l.B.G, dy, 1)
	dx := ctx.Be.Empty(x.Shape()...)
	ctx.Be.MatMul(dx, l.W.W, dy, true, false, 1, 0)
	return dx
}
