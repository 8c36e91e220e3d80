// Package cpu is the reference backend: float32 tensors in host memory on
// gorgonia.org/tensor, matrix products on a packed, cache-blocked SGEMM in
// C (sgemm.c; AVX-512, AVX2+FMA, NEON or generic chosen at run time;
// gonum's SGEMM only in builds without cgo), convolutions as products
// (Winograd F(4x4,3x3) for 3x3 stride 1, winograd.c; im2col otherwise,
// lower.c), and loops split over all cores for the memory-bound operations
// (batch norm's in C, norm.c; add+ReLU's, elementwise.c). Each C loop has
// a Go twin: the build without cgo, and the reference its tests compare
// with.
package cpu

import (
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"gorgonia.org/tensor"

	"github.com/swavd/swavd/compute"
)

// Tensor is the CPU backend's handle: a gorgonia dense tensor, or a view
// into one.
type Tensor struct {
	dense    *tensor.Dense // nil for a view
	data     []float32
	shape    []int
	released bool // its storage went back to the pool; releasing again does nothing
}

func (t *Tensor) Shape() []int { return t.shape }
func (t *Tensor) Len() int     { return len(t.data) }

// Backend is safe for concurrent use: operations keep no state but the
// buffer pool, which is locked.
type Backend struct {
	mu   sync.Mutex
	free map[int][]*tensor.Dense // released storage by length
	// A 3x3 stride-1 convolution goes through Winograd when it has at
	// least winogradMin input and output channels (0: never) and
	// winogradMinPixels output pixels over the batch: below either, the
	// transforms and 36 small products cost more than one lowered product
	// (the first layer; inference on one frame, whose 16x16 layers ran
	// faster lowered: 660 against 586 frames/s). At 1024, the 8x8 and 4x4
	// layers of a batch of 16 take Winograd too: a step 190.8 -> 140.1 ms
	// (medians of 4, interleaved), where 4096 had lowered them.
	winogradMin, winogradMinPixels int
	// winogradPlanes turns the fused Winograd path (a block of images per
	// core, see blocking) off: every transform and product is then split
	// over the cores. Tests run both.
	winogradPlanes bool
	// lowerChunks does the same for the lowered convolutions (see
	// lowerBlocks).
	lowerChunks bool
	// unpackedInput has the fused Winograd path's input transform write
	// its planes as they are, packed then by each product (tests compare
	// the two).
	unpackedInput bool
}

// New returns a CPU backend.
func New() *Backend {
	return &Backend{free: map[int][]*tensor.Dense{}, winogradMin: 16, winogradMinPixels: 1024}
}

func (b *Backend) Name() string { return "cpu" }

// Err is always nil: the CPU backend has no device to lose.
func (b *Backend) Err() error { return nil }

// Finish returns at once: every operation has run when it returns.
func (b *Backend) Finish() {}
func (b *Backend) Close() error {
	b.mu.Lock()
	b.free = map[int][]*tensor.Dense{}
	b.mu.Unlock()
	return nil
}

func data(t compute.Tensor) []float32 { return t.(*Tensor).data }

// get returns a tensor of the given shape whose contents are undefined.
// Every call makes a new handle, even around reused storage, so a stale
// handle released again cannot give away storage someone else holds.
func (b *Backend) get(shape []int) *Tensor {
	n := compute.Size(shape)
	b.mu.Lock()
	var d *tensor.Dense
	if l := b.free[n]; len(l) > 0 {
		d = l[len(l)-1]
		b.free[n] = l[:len(l)-1]
	}
	b.mu.Unlock()
	if d == nil {
		d = tensor.New(tensor.WithShape(n), tensor.Of(tensor.Float32))
	}
	return &Tensor{dense: d, data: d.Data().([]float32), shape: append([]int(nil), shape...)}
}

func (b *Backend) New(shape ...int) compute.Tensor {
	if len(shape) == 0 {
		panic("cpu: New with no dimensions")
	}
	t := b.get(shape)
	clear(t.data)
	return t
}

func (b *Backend) Empty(shape ...int) compute.Tensor {
	if len(shape) == 0 {
		panic("cpu: Empty with no dimensions")
	}
	return b.get(shape)
}

func (b *Backend) Release(ts ...compute.Tensor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range ts {
		if t == nil {
			continue
		}
		ct := t.(*Tensor)
		if ct.dense == nil || ct.released {
			continue // views own nothing; released already
		}
		ct.released = true
		b.free[len(ct.data)] = append(b.free[len(ct.data)], ct.dense)
	}
}

func (b *Backend) View(t compute.Tensor, offset int, shape ...int) compute.Tensor {
	d := data(t)
	n := compute.Size(shape)
	if offset < 0 || offset+n > len(d) {
		panic(fmt.Sprintf("cpu: view [%d:%d] of a tensor of %d elements", offset, offset+n, len(d)))
	}
	return &Tensor{data: d[offset : offset+n : offset+n], shape: append([]int(nil), shape...)}
}

func (b *Backend) Upload(dst compute.Tensor, src []float32) {
	d := data(dst)
	if len(src) != len(d) {
		panic(fmt.Sprintf("cpu: upload of %d values into a tensor of %d", len(src), len(d)))
	}
	copy(d, src)
}

func (b *Backend) Download(dst []float32, src compute.Tensor) {
	s := data(src)
	if len(s) != len(dst) {
		panic(fmt.Sprintf("cpu: download of a tensor of %d values into %d", len(s), len(dst)))
	}
	copy(dst, s)
}

// parallel runs fn on ranges that together cover [0,n) once, each of at
// least grain work, on all cores: up to chunksPerCore ranges per core,
// each core taking the next range when it finishes one. On a shared host
// a core's speed changes from one call to the next; with one range per
// core, whichever finished first had waited for the other for about a
// tenth of every call.
func parallel(n, grain int, fn func(lo, hi int)) {
	chunks := min(chunksPerCore*runtime.GOMAXPROCS(0), n/max(grain, 1))
	if chunks <= 1 {
		fn(0, n)
		return
	}
	parallelBlocks(chunks, anyCore, func(_ int, blocks iter.Seq[int]) {
		for c := range blocks {
			fn(n*c/chunks, n*(c+1)/chunks)
		}
	})
}

const chunksPerCore = 4

// blockOrder says how parallelBlocks shares blocks out over the cores.
type blockOrder bool

const (
	// anyCore: each core takes the next block when it finishes one, for
	// blocks whose results do not depend on which core computes them.
	anyCore blockOrder = false
	// fixedCores: core c takes the same contiguous range of blocks on
	// every call, so per-core sums (coreSums) add the same blocks in the
	// same order and a step gives the same result bit for bit every time.
	fixedCores blockOrder = true
)

// parallelBlocks calls fn once on each core that has blocks, with the
// indices of [0,n) that it is to run, in order: per-core set-up (scratch)
// goes before the loop over them.
func parallelBlocks(n int, order blockOrder, fn func(core int, blocks iter.Seq[int])) {
	if order == fixedCores {
		parallelCores(n, 1, func(core, lo, hi int) {
			fn(core, func(yield func(int) bool) {
				for i := lo; i < hi && yield(i); i++ {
				}
			})
		})
		return
	}
	var next atomic.Int64
	claim := func(yield func(int) bool) {
		for i := int(next.Add(1) - 1); i < n && yield(i); i = int(next.Add(1) - 1) {
		}
	}
	parallelCores(min(n, runtime.GOMAXPROCS(0)), 1, func(core, _, _ int) { fn(core, claim) })
}

// parallelCores splits [0,n) into one contiguous range per core, each of
// at least grain work, and runs fn on each, telling it which core (from 0
// to below GOMAXPROCS) runs it: per-core scratch and sums.
func parallelCores(n, grain int, fn func(core, lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if grain < 1 {
		grain = 1
	}
	if w := n / grain; w < workers {
		workers = w
	}
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	t := &task{fn: fn, n: n, parts: workers}
	if runOnWorkers(t) {
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); t.runParts() }()
	}
	t.runParts()
	wg.Wait()
}

// elementGrain is the number of elements below which an element-wise loop
// is not worth a goroutine.
const elementGrain = 1 << 15

func (b *Backend) Fill(t compute.Tensor, v float32) {
	d := data(t)
	parallel(len(d), elementGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d[i] = v
		}
	})
}

func (b *Backend) Copy(dst, src compute.Tensor) {
	d, s := data(dst), data(src)
	if len(d) != len(s) {
		panic(fmt.Sprintf("cpu: copy of %d values into %d", len(s), len(d)))
	}
	copy(d, s)
}

func (b *Backend) CopyColumns(dst compute.Tensor, dstCol int, src compute.Tensor, srcCol, n int) {
	ds, ss := dst.Shape(), src.Shape()
	if len(ds) != 2 || len(ss) != 2 || ds[0] != ss[0] || dstCol+n > ds[1] || srcCol+n > ss[1] {
		panic(fmt.Sprintf("cpu: copy columns of %v into %v", ss, ds))
	}
	d, s := data(dst), data(src)
	for r := 0; r < ds[0]; r++ {
		copy(d[r*ds[1]+dstCol:r*ds[1]+dstCol+n], s[r*ss[1]+srcCol:r*ss[1]+srcCol+n])
	}
}

func (b *Backend) Axpy(y compute.Tensor, alpha float32, x compute.Tensor) {
	yd, xd := data(y), data(x)
	if len(yd) != len(xd) {
		panic(fmt.Sprintf("cpu: axpy of %d values into %d", len(xd), len(yd)))
	}
	parallel(len(yd), elementGrain, func(lo, hi int) { axpy(yd[lo:hi], alpha, xd[lo:hi]) })
}

// axpyGo sets y += alpha*x.
func axpyGo(y []float32, alpha float32, x []float32) {
	for i := range y {
		y[i] += alpha * x[i]
	}
}

func (b *Backend) AddReLU(y, a, c compute.Tensor) {
	yd, ad, cd := data(y), data(a), data(c)
	parallel(len(yd), elementGrain, func(lo, hi int) { addReLU(yd[lo:hi], ad[lo:hi], cd[lo:hi]) })
}

func (b *Backend) ReLUBackward(dx, dy, y compute.Tensor) {
	dxd, dyd, yd := data(dx), data(dy), data(y)
	parallel(len(dxd), elementGrain, func(lo, hi int) { reluBackward(dxd[lo:hi], dyd[lo:hi], yd[lo:hi]) })
}

// addReLUGo sets y = max(a+c, 0): the build without cgo, and the reference
// for elementwise.c, as is reluBackwardGo.
func addReLUGo(y, a, c []float32) {
	for i := range y {
		v := a[i] + c[i]
		if v < 0 {
			v = 0
		}
		y[i] = v
	}
}

// reluBackwardGo sets dx = dy where y > 0, else 0.
func reluBackwardGo(dx, dy, y []float32) {
	for i := range dx {
		if y[i] > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

func (b *Backend) AddBias(y, bias compute.Tensor) {
	ys := y.Shape()
	yd, bd := data(y), data(bias)
	cols := ys[1]
	for r := 0; r < ys[0]; r++ {
		row := yd[r*cols : (r+1)*cols]
		v := bd[r]
		for i := range row {
			row[i] += v
		}
	}
}

func (b *Backend) SumRows(dst, x compute.Tensor, beta float32) {
	xs := x.Shape()
	dd, xd := data(dst), data(x)
	cols := len(xd) / xs[0]
	for r := 0; r < xs[0]; r++ {
		var s float64
		for _, v := range xd[r*cols : (r+1)*cols] {
			s += float64(v)
		}
		dd[r] = beta*dd[r] + float32(s)
	}
}

func (b *Backend) GlobalAvgPool(y, x compute.Tensor) {
	xs := x.Shape()
	hw := xs[2] * xs[3]
	yd, xd := data(y), data(x)
	inv := 1 / float32(hw)
	parallel(len(yd), 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var s float32
			for _, v := range xd[i*hw : (i+1)*hw] {
				s += v
			}
			yd[i] = s * inv
		}
	})
}

func (b *Backend) GlobalAvgPoolBackward(dx, dy compute.Tensor) {
	xs := dx.Shape()
	hw := xs[2] * xs[3]
	dxd, dyd := data(dx), data(dy)
	inv := 1 / float32(hw)
	parallel(len(dyd), 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := dyd[i] * inv
			row := dxd[i*hw : (i+1)*hw]
			for j := range row {
				row[j] = v
			}
		}
	})
}
