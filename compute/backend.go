// Package compute defines the operations the SwAV model needs and the
// interface a backend implements to run them. Tensors are opaque handles:
// a backend may keep them in host memory (cpu) or in GPU buffers (gl), and
// nothing is copied between the two except through Upload and Download, so
// a GPU backend can run a whole training step without reading data back.
//
// Layouts. Images are channel-major, [C, N, H, W], so that a convolution is
// one matrix product whose output is again channel-major and batch
// normalization reduces over contiguous rows. Feature matrices are [D, N]
// (one column per sample); score matrices are [N, K] (one row per sample).
package compute

import "fmt"

// Tensor is a handle to a dense float32 array owned by a Backend.
type Tensor interface {
	Shape() []int
	// Len is the number of elements.
	Len() int
}

// ConvParams describes a square-kernel 2-D convolution with zero padding.
type ConvParams struct {
	Kernel, Stride, Pad int
}

// OutSize is the spatial output size for an input of size n.
func (p ConvParams) OutSize(n int) int { return (n+2*p.Pad-p.Kernel)/p.Stride + 1 }

// SGDParams are the hyper-parameters of one optimizer update.
type SGDParams struct {
	LR, Momentum, WeightDecay float32
	// LARS, when true, scales the learning rate of this tensor by
	// TrustCoef*||w|| / (||g|| + WeightDecay*||w||) (You et al. 2017).
	LARS      bool
	TrustCoef float32
}

// Backend runs the operations. Unless stated otherwise an output may not
// alias an input. Operations that "accumulate" add to their output when
// beta is 1 and overwrite it when beta is 0.
type Backend interface {
	Name() string
	// Close releases every resource of the backend.
	Close() error
	// Err is the first device error the backend met (out of memory, a
	// lost context, a hung GPU), sticky: operations do not panic on them,
	// so callers check Err after a step. Always nil on the CPU.
	Err() error
	// Finish waits until every operation issued so far has run (a GPU
	// backend runs them asynchronously); timings of phases need it.
	Finish()

	// New returns a zero-filled tensor. Release gives it back for reuse; a
	// released tensor must not be used again, but releasing it twice is
	// harmless (so a pass may free early what its owner frees at the end).
	New(shape ...int) Tensor
	// Empty returns a tensor whose contents are undefined, for outputs that
	// an operation overwrites whole: it skips the clearing New does.
	Empty(shape ...int) Tensor
	Release(ts ...Tensor)
	// View is a tensor sharing t's storage, starting offset elements in.
	View(t Tensor, offset int, shape ...int) Tensor
	Upload(dst Tensor, src []float32)
	Download(dst []float32, src Tensor)

	// Element-wise.
	Fill(t Tensor, v float32)
	Copy(dst, src Tensor)
	// CopyColumns copies n columns of the 2-D src, starting at srcCol, into
	// the 2-D dst starting at dstCol. Both have the same number of rows.
	CopyColumns(dst Tensor, dstCol int, src Tensor, srcCol, n int)
	// Axpy computes y += alpha*x.
	Axpy(y Tensor, alpha float32, x Tensor)
	// AddReLU computes y = max(a+b, 0).
	AddReLU(y, a, b Tensor)
	// ReLUBackward computes dx = dy where y > 0, else 0. dx may alias dy.
	ReLUBackward(dx, dy, y Tensor)

	// MatMul computes c = alpha*op(a)*op(b) + beta*c for 2-D tensors,
	// op being the transpose where trans is set.
	MatMul(c, a, b Tensor, transA, transB bool, alpha, beta float32)
	// AddBias adds bias[r] to every element of row r of the 2-D y.
	AddBias(y, bias Tensor)
	// SumRows computes dst[r] = beta*dst[r] + sum over row r of the 2-D x.
	SumRows(dst, x Tensor, beta float32)

	// Conv2D: x [C,N,H,W], w [Co,C,k,k], y [Co,N,Ho,Wo]. No bias.
	Conv2D(y, x, w Tensor, p ConvParams)
	// Conv2DGradInput computes dx [C,N,H,W] from dy and w.
	Conv2DGradInput(dx, dy, w Tensor, p ConvParams)
	// Conv2DGradFilter accumulates the filter gradient: dw = beta*dw + dL/dw.
	Conv2DGradFilter(dw, dy, x Tensor, p ConvParams, beta float32)

	// BatchNormTrain normalizes each row of x [C, M...] with the row's batch
	// mean and (biased) variance, then y = gamma*xhat + beta, then ReLU if
	// relu. It stores the batch mean and 1/sqrt(var+eps) in mean and invStd
	// for the backward pass and moves the running statistics towards the
	// batch ones by momentum (running variance unbiased, as PyTorch does).
	BatchNormTrain(y, x, gamma, beta, mean, invStd, runMean, runVar Tensor, momentum, eps float32, relu bool)
	// BatchNormInfer normalizes with the running statistics.
	BatchNormInfer(y, x, gamma, beta, runMean, runVar Tensor, eps float32, relu bool)
	// BatchNormBackward computes dx and accumulates dgamma and dbeta. With
	// relu, y (the forward output) masks dy first; without, y may be nil.
	BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, invStd Tensor, relu bool)

	// GlobalAvgPool: x [C,N,H,W] -> y [C,N].
	GlobalAvgPool(y, x Tensor)
	// GlobalAvgPoolBackward: dy [C,N] -> dx [C,N,H,W].
	GlobalAvgPoolBackward(dx, dy Tensor)

	// L2NormalizeCols: y[:,n] = x[:,n]/||x[:,n]||; norms [N] keeps the norms.
	L2NormalizeCols(y, norms, x Tensor)
	L2NormalizeColsBackward(dx, dy, y, norms Tensor)
	// L2NormalizeRows normalizes each row of the 2-D x in place.
	L2NormalizeRows(x Tensor)

	// Sinkhorn computes the SwAV codes q [B,K] of scores [B,K] with the
	// Sinkhorn-Knopp algorithm of the official implementation, made stable
	// by subtracting the global maximum before exp. Rows of q sum to 1.
	Sinkhorn(q, scores Tensor, epsilon float32, iters int)
	// SwappedCE adds weight * mean_b(-sum_k codes[b,k] log softmax(scores[b]/T)_k)
	// to loss[0], and its gradient with respect to scores to grad [B,K].
	SwappedCE(loss, grad, scores, codes Tensor, temperature, weight float32)
	// SoftmaxRows computes p = softmax(scores/T) row by row.
	SoftmaxRows(p, scores Tensor, temperature float32)

	// SGDStep updates w in place from its gradient g and momentum buffer m:
	// g' = g + wd*w; m = momentum*m + g'; w -= lr*m (PyTorch's SGD).
	SGDStep(w, g, m Tensor, p SGDParams)
}

// Size returns the product of the dimensions.
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// MustShape panics with a clear message when t does not have shape want;
// shape mismatches are programming errors in the model, not input errors.
func MustShape(op string, t Tensor, want ...int) {
	got := t.Shape()
	if len(got) != len(want) {
		panic(fmt.Sprintf("compute: %s: shape %v, want %v", op, got, want))
	}
	for i := range got {
		if want[i] >= 0 && got[i] != want[i] {
			panic(fmt.Sprintf("compute: %s: shape %v, want %v", op, got, want))
		}
	}
}

// MatMulDims checks the shapes of c = op(a)*op(b) and returns m, n, k.
func MatMulDims(c, a, b Tensor, transA, transB bool) (m, n, k int) {
	as, bs, cs := a.Shape(), b.Shape(), c.Shape()
	m, k = as[0], as[1]
	if transA {
		m, k = k, m
	}
	k2 := bs[0]
	n = bs[1]
	if transB {
		k2, n = n, k2
	}
	if k != k2 || cs[0] != m || cs[1] != n {
		panic(fmt.Sprintf("compute: matmul %v(T=%v) x %v(T=%v) into %v", as, transA, bs, transB, cs))
	}
	return m, n, k
}

// ResidualNorm is what a backend may offer beyond Backend: the end of a
// residual block in one pass, y = max(BN(x) + res, 0), where
// BatchNormTrain (or BatchNormInfer) and AddReLU take two passes and write
// the normalized tensor in between. The model uses it where a backend has
// it; the batch-norm cache then holds no output (the backward without ReLU
// does not read it).
type ResidualNorm interface {
	BatchNormTrainAddReLU(y, x, res, gamma, beta, mean, invStd, runMean, runVar Tensor, momentum, eps float32)
	BatchNormInferAddReLU(y, x, res, gamma, beta, runMean, runVar Tensor, eps float32)
}

// ConvNormInfer is what a backend may offer beyond Backend: a convolution
// whose output goes through inference batch norm (running statistics),
// plus res where res is not nil, then ReLU if relu, applied as the
// convolution writes its output, where Conv2D, BatchNormInfer and AddReLU
// take up to three passes over it. The model uses it in inference where
// a backend has it.
type ConvNormInfer interface {
	Conv2DNormInfer(y, x, w Tensor, p ConvParams, gamma, beta, runMean, runVar Tensor, eps float32, res Tensor, relu bool)
}

// AsyncReader is a backend whose work runs asynchronously (GL): ReadAsync
// queues a copy of t behind the work issued so far and returns at once;
// Pending.Wait blocks until the copy is done and fills dst. The trainer
// reads each step's loss this way, one step late, so the CPU prepares the
// next step while the device finishes this one.
type AsyncReader interface {
	ReadAsync(t Tensor) Pending
}

// Pending is a read in flight.
type Pending interface {
	Wait(dst []float32)
}
