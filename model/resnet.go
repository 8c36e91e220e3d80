package model

import (
	"fmt"
	"math/rand/v2"

	"github.com/swavd/swavd/compute"
)

// convBN is a convolution followed by batch normalization.
type convBN struct {
	Conv Conv
	BN   BatchNorm
}

type convBNCache struct {
	x  compute.Tensor
	bn bnCache
}

func newConvBN(s *paramSet, rng *rand.Rand, name string, cin, cout, k, stride int) convBN {
	return convBN{Conv: newConv(s, rng, name+".conv", cin, cout, k, stride), BN: newBatchNorm(s, name+".bn", cout)}
}

func (l *convBN) forward(ctx *Ctx, x compute.Tensor, relu bool) (compute.Tensor, convBNCache) {
	if y, ok := l.forwardInferFused(ctx, x, nil, relu); ok {
		return y, convBNCache{}
	}
	z := l.Conv.forward(ctx, x)
	y, c := l.BN.forward(ctx, z, relu)
	return y, convBNCache{x: x, bn: c}
}

// forwardAddReLU is forward without ReLU, then the residual res added and
// ReLU: y = max(BN(conv(x)) + res, 0). In one pass where the backend
// offers it (compute.ResidualNorm), else batch norm, then AddReLU.
func (l *convBN) forwardAddReLU(ctx *Ctx, x, res compute.Tensor) (compute.Tensor, convBNCache) {
	if y, ok := l.forwardInferFused(ctx, x, res, true); ok {
		return y, convBNCache{}
	}
	z := l.Conv.forward(ctx, x)
	rn, fused := ctx.Be.(compute.ResidualNorm)
	if !fused {
		y, c := l.BN.forward(ctx, z, false)
		out := ctx.Empty(y.Shape()...)
		ctx.Be.AddReLU(out, y, res)
		return out, convBNCache{x: x, bn: c}
	}
	out := ctx.Empty(z.Shape()...)
	return out, convBNCache{x: x, bn: l.BN.forwardAddReLU(ctx, rn, out, z, res)}
}

// forwardInferFused is the layer in inference in one pass over its output
// where the backend offers it (compute.ConvNormInfer): y = BN(conv(x)),
// plus res where res is not nil, then ReLU if relu. It says false, doing
// nothing, in training or on a backend without it.
func (l *convBN) forwardInferFused(ctx *Ctx, x, res compute.Tensor, relu bool) (compute.Tensor, bool) {
	cn, ok := ctx.Be.(compute.ConvNormInfer)
	if ctx.Train || !ok {
		return nil, false
	}
	y := l.Conv.output(ctx, x)
	n := &l.BN
	cn.Conv2DNormInfer(y, x, l.Conv.W.W, l.Conv.P, n.Gamma.W, n.Beta.W, n.RunMean, n.RunVar, n.Eps, res, relu)
	return y, true
}

// release frees what the layer made in the forward pass (not its input).
func (c convBNCache) release(be compute.Backend) {
	be.Release(c.bn.x, c.bn.y, c.bn.mean, c.bn.invStd)
}

func (l *convBN) backward(ctx *Ctx, c convBNCache, dy compute.Tensor, relu, wantDX bool) compute.Tensor {
	dz := l.BN.backward(ctx, c.bn, dy, relu)
	dx := l.Conv.backward(ctx, dz, c.x, wantDX)
	ctx.Be.Release(dz)
	return dx
}

// BasicBlock is ResNet's: conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1
// conv + BN when the shape changes), then ReLU.
type BasicBlock struct {
	C1, C2 convBN
	Down   *convBN
}

type blockCache struct {
	c1, c2, down convBNCache
	x, out       compute.Tensor
}

func newBasicBlock(s *paramSet, rng *rand.Rand, name string, cin, cout, stride int) BasicBlock {
	b := BasicBlock{
		C1: newConvBN(s, rng, name+".1", cin, cout, 3, stride),
		C2: newConvBN(s, rng, name+".2", cout, cout, 3, 1),
	}
	if cin != cout || stride != 1 {
		d := newConvBN(s, rng, name+".down", cin, cout, 1, stride)
		b.Down = &d
	}
	return b
}

func (b *BasicBlock) forward(ctx *Ctx, x compute.Tensor) (compute.Tensor, blockCache) {
	var c blockCache
	c.x = x
	y1, c1 := b.C1.forward(ctx, x, true)
	c.c1 = c1
	short := x
	if b.Down != nil {
		short, c.down = b.Down.forward(ctx, x, false)
	}
	c.out, c.c2 = b.C2.forwardAddReLU(ctx, y1, short)
	return c.out, c
}

func (b *BasicBlock) backward(ctx *Ctx, c blockCache, dout compute.Tensor) compute.Tensor {
	be := ctx.Be
	d := be.Empty(dout.Shape()...)
	be.ReLUBackward(d, dout, c.out)
	dy1 := b.C2.backward(ctx, c.c2, d, false, true)
	dx := b.C1.backward(ctx, c.c1, dy1, true, true)
	be.Release(dy1)
	if b.Down != nil {
		ds := b.Down.backward(ctx, c.down, d, false, true)
		be.Axpy(dx, 1, ds)
		be.Release(ds)
	} else {
		be.Axpy(dx, 1, d)
	}
	be.Release(d)
	// The block's activations are spent: free them now, not at the end of
	// the step, so peak memory is one pass of activations, not two.
	c.c1.release(be)
	c.c2.release(be)
	if b.Down != nil {
		c.down.release(be)
	}
	be.Release(c.out)
	return dx
}

// Encoder is the ResNet backbone: a conv3x3 stem, stages of BasicBlocks
// (the first at stride 1, the others at stride 2), global average pooling.
type Encoder struct {
	Stem   convBN
	Blocks []BasicBlock
	OutDim int
}

type encoderCache struct {
	stem   convBNCache
	blocks []blockCache
	last   compute.Tensor
}

// blocks calls fn for each BasicBlock of the encoder in order: its stage,
// index in the stage, widths and stride (the first block of every stage
// but the first halves the resolution). It returns the output width.
func (a Arch) blocks(fn func(stage, j, cin, cout, stride int)) int {
	cin := a.StemWidth
	for i, width := range a.Stages {
		for j := 0; j < a.BlocksPerStage; j++ {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			fn(i, j, cin, width, stride)
			cin = width
		}
	}
	return cin
}

func newEncoder(s *paramSet, rng *rand.Rand, a Arch) (Encoder, error) {
	if len(a.Stages) == 0 || a.BlocksPerStage < 1 {
		return Encoder{}, fmt.Errorf("model: encoder needs at least one stage of at least one block")
	}
	e := Encoder{Stem: newConvBN(s, rng, "encoder.stem", a.InputChannels, a.StemWidth, 3, 1)}
	e.OutDim = a.blocks(func(stage, j, cin, cout, stride int) {
		e.Blocks = append(e.Blocks, newBasicBlock(s, rng, fmt.Sprintf("encoder.stage%d.%d", stage+1, j), cin, cout, stride))
	})
	return e, nil
}

// forward maps images [C,N,H,W] to pooled features [OutDim, N].
func (e *Encoder) forward(ctx *Ctx, x compute.Tensor) (compute.Tensor, encoderCache) {
	var c encoderCache
	h, sc := e.Stem.forward(ctx, x, true)
	c.stem = sc
	for i := range e.Blocks {
		var bc blockCache
		h, bc = e.Blocks[i].forward(ctx, h)
		c.blocks = append(c.blocks, bc)
	}
	c.last = h
	f := ctx.Empty(e.OutDim, x.Shape()[1])
	ctx.Be.GlobalAvgPool(f, h)
	return f, c
}

// backward accumulates parameter gradients from df [OutDim, N].
func (e *Encoder) backward(ctx *Ctx, c encoderCache, df compute.Tensor) {
	d := ctx.Be.Empty(c.last.Shape()...)
	ctx.Be.GlobalAvgPoolBackward(d, df)
	for i := len(e.Blocks) - 1; i >= 0; i-- {
		dx := e.Blocks[i].backward(ctx, c.blocks[i], d)
		ctx.Be.Release(d)
		d = dx
	}
	e.Stem.backward(ctx, c.stem, d, true, false)
	c.stem.release(ctx.Be)
	ctx.Be.Release(d)
}

// Head is the projection head: Linear-BN-ReLU-Linear, L2-normalized.
type Head struct {
	L1 Linear
	BN BatchNorm
	L2 Linear
}

type headCache struct {
	x, a1, z, norms compute.Tensor
	bn              bnCache
}

func newHead(s *paramSet, rng *rand.Rand, in, hidden, out int) Head {
	return Head{
		L1: newLinear(s, rng, "head.0", in, hidden),
		BN: newBatchNorm(s, "head.1", hidden),
		L2: newLinear(s, rng, "head.3", hidden, out),
	}
}

func (h *Head) forward(ctx *Ctx, x compute.Tensor) (compute.Tensor, headCache) {
	c := headCache{x: x}
	h1 := h.L1.forward(ctx, x)
	c.a1, c.bn = h.BN.forward(ctx, h1, true)
	h2 := h.L2.forward(ctx, c.a1)
	c.z = ctx.Empty(h2.Shape()...)
	c.norms = ctx.Empty(h2.Shape()[1])
	ctx.Be.L2NormalizeCols(c.z, c.norms, h2)
	return c.z, c
}

// backward returns the gradient for the input features; caller releases.
func (h *Head) backward(ctx *Ctx, c headCache, dz compute.Tensor) compute.Tensor {
	be := ctx.Be
	dh2 := be.Empty(dz.Shape()...)
	be.L2NormalizeColsBackward(dh2, dz, c.z, c.norms)
	da1 := h.L2.backward(ctx, dh2, c.a1)
	dh1 := h.BN.backward(ctx, c.bn, da1, true)
	dx := h.L1.backward(ctx, dh1, c.x)
	be.Release(dh2, da1, dh1)
	return dx
}
