package computetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
)

// RelDiff is ||a-b|| / ||b||.
func RelDiff(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		x := float64(a[i]) - float64(b[i])
		d += x * x
		n += float64(b[i]) * float64(b[i])
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// twin holds the same tensors on a reference backend and on the backend
// under test.
type twin struct {
	ref, be compute.Backend
	rng     *rand.Rand
}

func (w *twin) random(positive bool, shape ...int) [2]compute.Tensor {
	d := make([]float32, compute.Size(shape))
	for i := range d {
		if positive {
			d[i] = 0.5 + float32(w.rng.Float64())
		} else {
			d[i] = float32(w.rng.NormFloat64())
		}
	}
	return w.upload(d, shape...)
}

func (w *twin) upload(d []float32, shape ...int) [2]compute.Tensor {
	a, b := w.ref.New(shape...), w.be.New(shape...)
	w.ref.Upload(a, d)
	w.be.Upload(b, d)
	return [2]compute.Tensor{a, b}
}

// compare checks that the backend's tensor matches the reference's.
func (w *twin) compare(t *testing.T, what string, x [2]compute.Tensor, tol float64) {
	t.Helper()
	a, b := make([]float32, x[0].Len()), make([]float32, x[1].Len())
	w.ref.Download(a, x[0])
	w.be.Download(b, x[1])
	if d := RelDiff(b, a); d > tol || math.IsNaN(d) {
		t.Errorf("%s: differs from the reference by %.3g in relative norm (tolerance %g)", what, d, tol)
	}
}

// TestParity runs every operation of the interface on ref and be with the
// same inputs, on shapes that are not multiples of any workgroup size, and
// requires every output within tol in relative norm (||be-ref||/||ref||).
func TestParity(t *testing.T, ref, be compute.Backend, tol float64) {
	w := &twin{ref: ref, be: be, rng: rand.New(rand.NewPCG(11, 13))}
	both := func(f func(b compute.Backend, i int)) { f(ref, 0); f(be, 1) }

	// Every differentiable operation, forward and backward.
	for _, o := range differentiable() {
		var in [2][]compute.Tensor
		for i, s := range o.inputs {
			x := w.random(len(o.positive) > i && o.positive[i], s...)
			in[0], in[1] = append(in[0], x[0]), append(in[1], x[1])
		}
		var y, dy [2]compute.Tensor
		var grads [2][]compute.Tensor
		both(func(b compute.Backend, i int) { y[i] = o.forward(b, in[i]) })
		w.compare(t, o.name+" forward", y, tol)
		r := w.random(false, y[0].Shape()...)
		dy = r
		both(func(b compute.Backend, i int) { grads[i] = o.backward(b, in[i], y[i], dy[i]) })
		for j := range grads[0] {
			w.compare(t, fmt.Sprintf("%s gradient of input %d", o.name, o.wrt[j]), [2]compute.Tensor{grads[0][j], grads[1][j]}, tol)
		}
	}

	// Products with every transpose, alpha and beta, odd sizes: within one
	// tile, over several tiles of either shape, and with a K long enough
	// for a GPU backend to split it.
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		for _, d := range [][3]int{{37, 53, 29}, {70, 150, 600}, {30, 300, 41}} {
			product(t, w, tr, d[0], d[1], d[2], tol)
		}
	}

	// Convolutions on shapes of the real network, odd batch.
	for _, cs := range []struct{ c, n, hw, co, k, s int }{{3, 5, 17, 8, 3, 1}, {8, 3, 17, 12, 3, 2}, {8, 3, 9, 12, 1, 2}, {6, 2, 7, 5, 1, 1}} {
		p := compute.ConvParams{Kernel: cs.k, Stride: cs.s, Pad: cs.k / 2}
		ho := p.OutSize(cs.hw)
		x, f := w.random(false, cs.c, cs.n, cs.hw, cs.hw), w.random(false, cs.co, cs.c, cs.k, cs.k)
		y, dy := w.random(false, cs.co, cs.n, ho, ho), w.random(false, cs.co, cs.n, ho, ho)
		dx, dw := w.random(false, cs.c, cs.n, cs.hw, cs.hw), w.random(false, cs.co, cs.c, cs.k, cs.k)
		name := fmt.Sprintf("conv %dx%d stride %d on %v", cs.k, cs.k, cs.s, x[0].Shape())
		both(func(b compute.Backend, i int) {
			b.Conv2D(y[i], x[i], f[i], p)
			b.Conv2DGradInput(dx[i], dy[i], f[i], p)
			b.Conv2DGradFilter(dw[i], dy[i], x[i], p, 1)
		})
		w.compare(t, name+" forward", y, tol)
		w.compare(t, name+" input gradient", dx, tol)
		w.compare(t, name+" filter gradient (accumulated)", dw, tol)
	}

	// Batch norm: running statistics and inference mode.
	{
		x, g, bt := w.random(false, 7, 3, 5, 5), w.random(true, 7), w.random(false, 7)
		rm, rv := w.random(false, 7), w.random(true, 7)
		y, mean, inv := w.random(false, 7, 3, 5, 5), w.random(false, 7), w.random(false, 7)
		both(func(b compute.Backend, i int) {
			b.BatchNormTrain(y[i], x[i], g[i], bt[i], mean[i], inv[i], rm[i], rv[i], 0.1, 1e-5, true)
		})
		w.compare(t, "batchnorm saved mean", mean, tol)
		w.compare(t, "batchnorm saved 1/std", inv, tol)
		w.compare(t, "batchnorm running mean", rm, tol)
		w.compare(t, "batchnorm running variance", rv, tol)
		both(func(b compute.Backend, i int) { b.BatchNormInfer(y[i], x[i], g[i], bt[i], rm[i], rv[i], 1e-5, false) })
		w.compare(t, "batchnorm inference", y, tol)
	}

	// Batch norm on values far from zero (1000 + noise): a variance from
	// plain sums of squares in float32 loses every digit here.
	{
		const ch, m = 5, 3000
		d := make([]float32, ch*m)
		for i := range d {
			d[i] = float32(1000 + float64(i/m) + w.rng.NormFloat64()*0.5)
		}
		x := w.upload(d, ch, 3, 1000)
		g, bt, rm, rv := w.random(true, ch), w.random(false, ch), w.random(false, ch), w.random(true, ch)
		y, mean, inv := w.random(false, ch, 3, 1000), w.random(false, ch), w.random(false, ch)
		both(func(b compute.Backend, i int) {
			b.BatchNormTrain(y[i], x[i], g[i], bt[i], mean[i], inv[i], rm[i], rv[i], 0.1, 1e-5, false)
		})
		w.compare(t, "batchnorm of offset values: 1/std", inv, tol)
		w.compare(t, "batchnorm of offset values: running variance", rv, tol)
		w.compare(t, "batchnorm of offset values: output", y, 1e-3)
	}

	// The rest: element-wise, reductions, SwAV, optimizer.
	{
		x, y := w.random(false, 9, 23), w.random(false, 9, 23)
		both(func(b compute.Backend, i int) { b.Fill(y[i], 0.25); b.Axpy(y[i], -1.5, x[i]) })
		w.compare(t, "fill + axpy", y, tol)
		wide := w.random(false, 9, 40)
		both(func(b compute.Backend, i int) { b.CopyColumns(wide[i], 11, x[i], 3, 17) })
		w.compare(t, "copy columns", wide, tol)
		bias, sums := w.random(false, 9), w.random(false, 9)
		both(func(b compute.Backend, i int) { b.AddBias(x[i], bias[i]); b.SumRows(sums[i], x[i], 1) })
		w.compare(t, "add bias", x, tol)
		w.compare(t, "sum rows (accumulated)", sums, tol)
		both(func(b compute.Backend, i int) { b.L2NormalizeRows(x[i]) })
		w.compare(t, "l2 normalize rows", x, tol)
		v := w.random(false, 6, 23)
		both(func(b compute.Backend, i int) { b.Copy(b.View(x[i], 23, 6, 23), v[i]) })
		w.compare(t, "copy into a view", x, tol)
	}
	// Sinkhorn on cosine-like scores in [lo, 1], as SwAV feeds it.
	for _, sk := range []struct {
		b, k int
		lo   float64
		eps  float32
	}{{37, 19, -1, 0.05}, {200, 128, -1, 0.05}, {11, 5, 0.9, 0.01}} {
		d := make([]float32, sk.b*sk.k)
		for i := range d {
			d[i] = float32(sk.lo + (1-sk.lo)*w.rng.Float64())
		}
		s := w.upload(d, sk.b, sk.k)
		q, p := w.random(false, sk.b, sk.k), w.random(false, sk.b, sk.k)
		both(func(b compute.Backend, i int) { b.Sinkhorn(q[i], s[i], sk.eps, 3); b.SoftmaxRows(p[i], s[i], 0.1) })
		w.compare(t, fmt.Sprintf("sinkhorn %dx%d eps %g", sk.b, sk.k, sk.eps), q, tol)
		w.compare(t, "softmax rows", p, tol)
	}
	for _, lars := range []bool{false, true} {
		wt, g, m := w.random(false, 5, 41), w.random(false, 5, 41), w.random(false, 5, 41)
		prm := compute.SGDParams{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4, LARS: lars, TrustCoef: 0.001}
		both(func(b compute.Backend, i int) { b.SGDStep(wt[i], g[i], m[i], prm); b.SGDStep(wt[i], g[i], m[i], prm) })
		w.compare(t, fmt.Sprintf("sgd step (lars=%v) weights", lars), wt, tol)
		w.compare(t, fmt.Sprintf("sgd step (lars=%v) momentum", lars), m, tol)
	}
}

// product compares C = 0.7*op(A)*op(B) + 0.3*C of m x n x k.
func product(t *testing.T, w *twin, tr [2]bool, m, n, k int, tol float64) {
	as, bs := []int{m, k}, []int{k, n}
	if tr[0] {
		as = []int{k, m}
	}
	if tr[1] {
		bs = []int{n, k}
	}
	a, bb, c := w.random(false, as...), w.random(false, bs...), w.random(false, m, n)
	w.ref.MatMul(c[0], a[0], bb[0], tr[0], tr[1], 0.7, 0.3)
	w.be.MatMul(c[1], a[1], bb[1], tr[0], tr[1], 0.7, 0.3)
	w.compare(t, fmt.Sprintf("matmul %dx%dx%d transA=%v transB=%v", m, n, k, tr[0], tr[1]), c, tol)
}
