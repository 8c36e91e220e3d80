package computetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/swavd/swavd/compute"
)

// op is a differentiable operation under test: forward maps the inputs to
// one output; backward, given dy, returns the gradient of each input
// listed in wrt (by index). Tensors the closures allocate are theirs to
// release.
type op struct {
	name     string
	inputs   [][]int // shapes
	wrt      []int
	positive []bool // inputs kept away from zero (norms, variances)
	forward  func(be compute.Backend, in []compute.Tensor) compute.Tensor
	backward func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor
}

func download(be compute.Backend, x compute.Tensor) []float32 {
	d := make([]float32, x.Len())
	be.Download(d, x)
	return d
}

// dot is sum(a*b) in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// check compares the analytic gradient of L = sum(r*y) (r random) with
// central differences at sampled coordinates of each input, in relative
// norm: float32 differences are noisy, so a wrong formula shows up as an
// O(1) error while rounding stays well under the tolerance.
func (o op) check(t *testing.T, be compute.Backend, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	in := make([]compute.Tensor, len(o.inputs))
	host := make([][]float32, len(o.inputs))
	for i, s := range o.inputs {
		host[i] = make([]float32, compute.Size(s))
		for j := range host[i] {
			v := float32(rng.NormFloat64())
			if len(o.positive) > i && o.positive[i] {
				v = 0.5 + float32(rng.Float64())
			}
			host[i][j] = v
		}
		in[i] = be.New(s...)
		be.Upload(in[i], host[i])
	}
	defer be.Release(in...)
	y := o.forward(be, in)
	r := make([]float32, y.Len())
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	dy := be.New(y.Shape()...)
	be.Upload(dy, r)
	grads := o.backward(be, in, y, dy)
	be.Release(y, dy)
	loss := func() float64 {
		y := o.forward(be, in)
		defer be.Release(y)
		return dot(download(be, y), r)
	}
	const h = 5e-3
	for gi, idx := range o.wrt {
		an := download(be, grads[gi])
		be.Release(grads[gi])
		coords := rng.Perm(len(host[idx]))
		if len(coords) > 24 {
			coords = coords[:24]
		}
		var num2, diff2 float64
		for _, c := range coords {
			orig := host[idx][c]
			host[idx][c] = orig + h
			be.Upload(in[idx], host[idx])
			lp := loss()
			host[idx][c] = orig - h
			be.Upload(in[idx], host[idx])
			lm := loss()
			host[idx][c] = orig
			be.Upload(in[idx], host[idx])
			num := (lp - lm) / (2 * h)
			num2 += num * num
			d := num - float64(an[c])
			diff2 += d * d
		}
		rel := math.Sqrt(diff2) / math.Max(math.Sqrt(num2), 1e-6)
		t.Logf("%s input %d rel %.3g", o.name, idx, rel)
		if rel > 1e-2 || math.IsNaN(rel) {
			t.Errorf("%s: gradient of input %d off by %.3g in relative norm", o.name, idx, rel)
		}
	}
}

func convOp(name string, c, n, hw, co, k, stride int) op {
	p := compute.ConvParams{Kernel: k, Stride: stride, Pad: k / 2}
	ho := p.OutSize(hw)
	return op{
		name:   name,
		inputs: [][]int{{c, n, hw, hw}, {co, c, k, k}},
		wrt:    []int{0, 1},
		forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
			y := be.New(co, n, ho, ho)
			be.Conv2D(y, in[0], in[1], p)
			return y
		},
		backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
			dx, dw := be.New(c, n, hw, hw), be.New(co, c, k, k)
			be.Conv2DGradInput(dx, dy, in[1], p)
			be.Fill(dw, 1) // beta=0 must overwrite
			be.Conv2DGradFilter(dw, dy, in[0], p, 0)
			return []compute.Tensor{dx, dw}
		},
	}
}

func batchNormOp(relu bool, shape ...int) op {
	c := shape[0]
	name := fmt.Sprintf("batchnorm %v relu=%v", shape, relu)
	fwd := func(be compute.Backend, in []compute.Tensor) (y, mean, inv compute.Tensor) {
		y, mean, inv = be.New(shape...), be.New(c), be.New(c)
		rm, rv := be.New(c), be.New(c)
		be.BatchNormTrain(y, in[0], in[1], in[2], mean, inv, rm, rv, 0.1, 1e-5, relu)
		be.Release(rm, rv)
		return y, mean, inv
	}
	return op{
		name:   name,
		inputs: [][]int{shape, {c}, {c}},
		wrt:    []int{0, 1, 2},
		forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
			y, m, i := fwd(be, in)
			be.Release(m, i)
			return y
		},
		backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
			y2, m, i := fwd(be, in)
			dx, dg, db := be.New(shape...), be.New(c), be.New(c)
			be.BatchNormBackward(dx, dg, db, dy, in[0], y2, in[1], m, i, relu)
			be.Release(y2, m, i)
			return []compute.Tensor{dx, dg, db}
		},
	}
}

// differentiable lists every backward operation of the interface with its forward.
func differentiable() []op {
	return []op{
		convOp("conv3x3 stride1", 3, 2, 7, 5, 3, 1),
		convOp("conv3x3 stride2", 4, 3, 9, 6, 3, 2),
		convOp("conv1x1 stride1", 5, 2, 6, 3, 1, 1),
		convOp("conv1x1 stride2", 5, 2, 7, 4, 1, 2),
		batchNormOp(false, 3, 4, 5, 5),
		batchNormOp(true, 3, 4, 5, 5),
		batchNormOp(true, 7, 19),
		{
			name: "add+relu", inputs: [][]int{{4, 3, 5, 5}, {4, 3, 5, 5}}, wrt: []int{0, 1},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				y := be.New(4, 3, 5, 5)
				be.AddReLU(y, in[0], in[1])
				return y
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				d := be.New(4, 3, 5, 5)
				be.ReLUBackward(d, dy, y)
				d2 := be.New(4, 3, 5, 5)
				be.Copy(d2, d)
				return []compute.Tensor{d, d2}
			},
		},
		{
			name: "global average pool", inputs: [][]int{{3, 2, 4, 5}}, wrt: []int{0},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				y := be.New(3, 2)
				be.GlobalAvgPool(y, in[0])
				return y
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				dx := be.New(3, 2, 4, 5)
				be.GlobalAvgPoolBackward(dx, dy)
				return []compute.Tensor{dx}
			},
		},
		{
			name: "linear (matmul + bias)", inputs: [][]int{{6, 5}, {4, 6}, {4}}, wrt: []int{0, 1, 2},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				y := be.New(4, 5)
				be.MatMul(y, in[1], in[0], false, false, 1, 0)
				be.AddBias(y, in[2])
				return y
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				dx, dw, db := be.New(6, 5), be.New(4, 6), be.New(4)
				be.MatMul(dx, in[1], dy, true, false, 1, 0)
				be.MatMul(dw, dy, in[0], false, true, 1, 0)
				be.SumRows(db, dy, 0)
				return []compute.Tensor{dx, dw, db}
			},
		},
		{
			name: "prototype scores (matmul, both transposed)", inputs: [][]int{{6, 5}, {7, 6}}, wrt: []int{0, 1},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				s := be.New(5, 7)
				be.MatMul(s, in[0], in[1], true, true, 1, 0)
				return s
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				dz, dp := be.New(6, 5), be.New(7, 6)
				be.MatMul(dz, in[1], dy, true, true, 1, 0)
				be.MatMul(dp, dy, in[0], true, true, 1, 0)
				return []compute.Tensor{dz, dp}
			},
		},
		{
			name: "l2 normalize columns", inputs: [][]int{{6, 5}}, wrt: []int{0},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				y, n := be.New(6, 5), be.New(5)
				be.L2NormalizeCols(y, n, in[0])
				be.Release(n)
				return y
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				y2, n, dx := be.New(6, 5), be.New(5), be.New(6, 5)
				be.L2NormalizeCols(y2, n, in[0])
				be.L2NormalizeColsBackward(dx, dy, y2, n)
				be.Release(y2, n)
				return []compute.Tensor{dx}
			},
		},
		{
			// The loss as a function of the scores, with the codes (second
			// input) held constant, as SwAV treats them.
			name: "swapped cross-entropy", inputs: [][]int{{5, 7}, {5, 7}}, wrt: []int{0}, positive: []bool{false, true},
			forward: func(be compute.Backend, in []compute.Tensor) compute.Tensor {
				l, g := be.New(1), be.New(5, 7)
				be.SwappedCE(l, g, in[0], in[1], 0.5, 0.7)
				be.Release(g)
				return l
			},
			backward: func(be compute.Backend, in []compute.Tensor, y, dy compute.Tensor) []compute.Tensor {
				l, g := be.New(1), be.New(5, 7)
				be.SwappedCE(l, g, in[0], in[1], 0.5, 0.7)
				var d [1]float32
				be.Download(d[:], dy)
				scaled := be.New(5, 7)
				be.Axpy(scaled, d[0], g)
				be.Release(l, g)
				return []compute.Tensor{scaled}
			},
		},
	}
}

// TestGradients runs the finite-difference check of every backward
// operation of the interface.
func TestGradients(t *testing.T, be compute.Backend) {
	for i, o := range differentiable() {
		o.check(t, be, uint64(i+1))
	}
}
