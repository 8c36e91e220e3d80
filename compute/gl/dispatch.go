package gl

import (
	"strconv"

	"github.com/swavd/swavd/compute"
)

// progSpec names one program: a shader family, the operation selected in
// it, and any further defines.
type progSpec struct {
	family, op string
	extra      map[string]string
}

// allPrograms lists every program the backend runs; New compiles them all
// up front, so a driver that cannot build one fails at start, not mid-step.
func allPrograms() []progSpec {
	var ps []progSpec
	add := func(family string, extra map[string]string, ops ...string) {
		for _, op := range ops {
			ps = append(ps, progSpec{family, op, extra})
		}
	}
	add("elementwise", nil, "FILL", "COPY", "AXPY", "ADD_RELU", "RELU_BACKWARD", "ADD_BIAS", "COPY_COLUMNS", "SUM_SPLITS", "SGD")
	add("reduce", nil, "SUM_ROWS", "SUM_SQUARES2")
	for _, t := range gemmTiles {
		add("matmul", t.defines(), "MODE_GEMM", "MODE_CONV_FWD", "MODE_CONV_DW", "MODE_CONV_DX")
	}
	add("batchnorm", nil, "STATS", "RUNNING", "INFER_PREP", "NORMALIZE", "BACKWARD_SUMS", "BACKWARD_DX")
	add("pool", nil, "GAP", "GAP_BACKWARD")
	add("l2norm", nil, "COLS", "COLS_BACKWARD", "ROWS")
	add("sinkhorn", nil, "MAX", "EXP", "COLS", "ROWS")
	add("softmax", nil, "CE_ROWS", "CE_REDUCE", "SOFTMAX")
	return ps
}

// program returns the compiled program; on the context thread.
func (b *Backend) program(family, op string, extra map[string]string) (*program, error) {
	defines := map[string]string{"WG": strconv.Itoa(b.wg)}
	if family == "matmul" {
		defines["WG"], defines["WG_Y"] = "16", "8"
		defines[op] = "1"
	} else {
		defines["OP_"+op] = "1"
	}
	for k, v := range extra {
		defines[k] = v
	}
	key := programKey(family, defines)
	if p, ok := b.progs[key]; ok {
		return p, nil
	}
	p, err := b.ctx.compile(family, defines)
	if err != nil {
		return nil, err
	}
	b.progs[key] = p
	return p, nil
}

// uni is one uniform value.
type uni struct {
	name  string
	i     int32
	f     float32
	float bool
}

func ui(name string, v int) uni     { return uni{name: name, i: int32(v)} }
func uf(name string, v float32) uni { return uni{name: name, f: v, float: true} }
func ub(name string, v bool) uni {
	if v {
		return ui(name, 1)
	}
	return ui(name, 0)
}

var offsetNames = [4]string{"o0", "o1", "o2", "o3"}

// binding is a tensor's buffer and offset, taken when an operation is
// posted: the caller may release the tensor before the operation runs.
type binding struct {
	buf *buffer
	off int
}

// dispatch posts program (family, op, extra) over gx x gy x gz workgroups
// with ts bound at 0.. and the uniforms us.
func (b *Backend) dispatch(family, op string, extra map[string]string, gx, gy, gz int, ts []compute.Tensor, us []uni) {
	bs := make([]binding, len(ts))
	for i, t := range ts {
		gt := tensorOf(t)
		if gt.buf == nil {
			panic("gl: operation on a released tensor")
		}
		bs[i] = binding{gt.buf, gt.off}
	}
	b.ctx.post(func() { b.issue(family, op, extra, gx, gy, gz, bs, us) })
}

// issue binds bs, sets their offsets and us, and runs the program, then
// orders its writes before any later read or copy; on the context thread.
func (b *Backend) issue(family, op string, extra map[string]string, gx, gy, gz int, bs []binding, us []uni) {
	p, err := b.program(family, op, extra)
	if err != nil {
		panic(err) // every program was compiled by New
	}
	f := b.ctx.fn
	f.UseProgram(p.id)
	for i, bd := range bs {
		f.BindBufferRange(glShaderStorageBuffer, uint32(i), bd.buf.id, 0, bd.buf.bytes)
		f.Uniform1i(b.ctx.location(p, offsetNames[i]), int32(bd.off))
	}
	for _, u := range us {
		l := b.ctx.location(p, u.name)
		if u.float {
			f.Uniform1f(l, u.f)
		} else {
			f.Uniform1i(l, u.i)
		}
	}
	maxX := b.ctx.info.Limits.MaxGroupCount[0]
	gx = min(max(gx, 1), maxX)
	b.timed(family+"/"+op, us, func() {
		f.DispatchCompute(uint32(gx), uint32(max(gy, 1)), uint32(max(gz, 1)))
		f.MemoryBarrier(glShaderStorageBarrierBit | glBufferUpdateBarrierBit)
	})
	b.stats.Dispatches++
}

// run dispatches an element-wise program over n items (grid-stride loops
// cover any n).
func (b *Backend) run(family, op string, n int, ts []compute.Tensor, us ...uni) {
	b.dispatch(family, op, nil, (n+b.wg-1)/b.wg, 1, 1, ts, us)
}

// runGroups dispatches one workgroup per item (reductions).
func (b *Backend) runGroups(family, op string, n int, ts []compute.Tensor, us ...uni) {
	b.dispatch(family, op, nil, n, 1, 1, ts, us)
}

func ts(t ...compute.Tensor) []compute.Tensor { return t }
