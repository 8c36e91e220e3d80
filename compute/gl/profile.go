package gl

import (
	"cmp"
	"slices"
	"time"
)

// OpTime is the time one program took over a run, measured by finishing
// the GPU's queue around each dispatch. That serializes the GPU, so the
// sum is above an unprofiled step; the split is what it is for.
type OpTime struct {
	Program string  `json:"program"`
	Calls   int     `json:"calls"`
	Ms      float64 `json:"ms"`
	GFLOP   float64 `json:"gflop,omitempty"` // matrix products only
}

// SetProfiling turns the per-program timing on (clearing what was
// gathered) or off.
func (b *Backend) SetProfiling(on bool) {
	b.ctx.do(func() {
		b.prof = nil
		if on {
			b.prof = map[string]*OpTime{}
		}
	})
}

// Profile returns the time per program since SetProfiling(true), the
// costliest first.
func (b *Backend) Profile() []OpTime {
	var out []OpTime
	b.ctx.do(func() {
		for _, t := range b.prof {
			out = append(out, *t)
		}
	})
	slices.SortFunc(out, func(x, y OpTime) int { return cmp.Compare(y.Ms, x.Ms) })
	return out
}

// timed runs dispatch and, while profiling, charges its time (and, for a
// matrix product, its work) to the program; on the context thread.
func (b *Backend) timed(id progID, us []uni, dispatch func()) {
	if b.prof == nil {
		dispatch()
		return
	}
	name := id.family + "/" + id.op // built only while profiling: dispatches stay allocation-free
	b.ctx.fn.Finish()               // what was queued before is not this program's
	t0 := time.Now()
	dispatch()
	b.ctx.fn.Finish()
	t := b.prof[name]
	if t == nil {
		t = &OpTime{Program: name}
		b.prof[name] = t
	}
	t.Calls++
	t.Ms += float64(time.Since(t0).Microseconds()) / 1000
	t.GFLOP += flops(us) / 1e9
}

// flops is 2*M*N*K for a matrix product (its uniforms say so), else 0.
func flops(us []uni) float64 {
	var m, n, k int32
	for _, u := range us {
		switch u.name {
		case "M":
			m = u.i
		case "N":
			n = u.i
		case "K":
			k = u.i
		}
	}
	return 2 * float64(m) * float64(n) * float64(k)
}
