package gl

import (
	"fmt"
	"strconv"

	"github.com/swavd/swavd/compute"
)

// progID names one program: a shader family, the operation selected in
// it, and for matmul the tile shape (an index into gemmTiles; -1 for the
// other families). It is the key of the backend's program table, which New
// fills once: a dispatch looks its program up by this small comparable
// key, nothing is built or sorted per call.
type progID struct {
	family, op string
	tile       int
}

func (id progID) String() string {
	if id.tile >= 0 {
		return fmt.Sprintf("%s/%s[%dx%d]", id.family, id.op, gemmTiles[id.tile].bm, gemmTiles[id.tile].bn)
	}
	return id.family + "/" + id.op
}

// op is the progID of an operation of a family without variants.
func op(family, name string) progID { return progID{family, name, -1} }

// allPrograms lists every program the backend runs; New compiles them all
// up front, so a driver that cannot build one fails at start, not mid-step.
func allPrograms() []progID {
	var ps []progID
	add := func(family string, ops ...string) {
		for _, o := range ops {
			ps = append(ps, op(family, o))
		}
	}
	add("elementwise", "FILL", "COPY", "AXPY", "ADD_RELU", "RELU_BACKWARD", "ADD_BIAS", "COPY_COLUMNS", "SUM_SPLITS", "SGD")
	add("reduce", "SUM_ROWS", "SUM_SQUARES2")
	for t := range gemmTiles {
		for _, mode := range []string{"MODE_GEMM", "MODE_CONV_FWD", "MODE_CONV_DW", "MODE_CONV_DX"} {
			ps = append(ps, progID{"matmul", mode, t})
		}
	}
	add("batchnorm", "STATS", "RUNNING", "INFER_PREP", "NORMALIZE", "BACKWARD_SUMS", "BACKWARD_DX")
	add("pool", "GAP", "GAP_BACKWARD")
	add("l2norm", "COLS", "COLS_BACKWARD", "ROWS")
	add("sinkhorn", "MAX", "EXP", "COLS", "ROWS")
	add("softmax", "CE_ROWS", "CE_REDUCE", "SOFTMAX")
	return ps
}

// defines are the preprocessor defines that select id's code.
func (b *Backend) defines(id progID) map[string]string {
	d := map[string]string{"WG": strconv.Itoa(b.wg)}
	if id.family == "matmul" {
		d["WG"], d["WG_Y"] = "16", "8"
		d[id.op] = "1"
		t := gemmTiles[id.tile]
		d["BM"], d["BN"] = strconv.Itoa(t.bm), strconv.Itoa(t.bn)
	} else {
		d["OP_"+id.op] = "1"
	}
	return d
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

// dispatch posts program id over gx x gy x gz workgroups with ts bound at
// 0.. and the uniforms us.
func (b *Backend) dispatch(id progID, gx, gy, gz int, ts []compute.Tensor, us []uni) {
	bs := make([]binding, len(ts))
	for i, t := range ts {
		gt := tensorOf(t)
		if gt.buf == nil {
			panic("gl: operation on a released tensor")
		}
		bs[i] = binding{gt.buf, gt.off}
	}
	b.ctx.post(func() { b.issue(id, gx, gy, gz, bs, us) })
}

// issue binds bs, sets their offsets and us, and runs the program, then
// orders its writes before any later read or copy; on the context thread.
func (b *Backend) issue(id progID, gx, gy, gz int, bs []binding, us []uni) {
	p := b.progs[id]
	if p == nil {
		panic(fmt.Sprintf("gl: no program %v (allPrograms lists what New compiles)", id))
	}
	f := b.ctx.fn
	f.UseProgram(p.id)
	for i, bd := range bs {
		f.BindBufferRange(glShaderStorageBuffer, uint32(i), bd.buf.id, 0, bd.buf.bytes)
		if l, ok := b.location(p, offsetNames[i]); ok {
			f.Uniform1i(l, int32(bd.off))
		}
	}
	for _, u := range us {
		l, ok := b.location(p, u.name)
		switch {
		case !ok:
			continue
		case u.float:
			f.Uniform1f(l, u.f)
		default:
			f.Uniform1i(l, u.i)
		}
	}
	maxX := b.ctx.info.Limits.MaxGroupCount[0]
	gx = min(max(gx, 1), maxX)
	b.timed(id, us, func() {
		f.DispatchCompute(uint32(gx), uint32(max(gy, 1)), uint32(max(gz, 1)))
		f.MemoryBarrier(glShaderStorageBarrierBit | glBufferUpdateBarrierBit)
	})
	b.stats.Dispatches++
}

// run dispatches an element-wise program over n items (grid-stride loops
// cover any n).
func (b *Backend) run(family, name string, n int, ts []compute.Tensor, us ...uni) {
	b.dispatch(op(family, name), (n+b.wg-1)/b.wg, 1, 1, ts, us)
}

// runGroups dispatches one workgroup per item (reductions).
func (b *Backend) runGroups(family, name string, n int, ts []compute.Tensor, us ...uni) {
	b.dispatch(op(family, name), n, 1, 1, ts, us)
}

func ts(t ...compute.Tensor) []compute.Tensor { return t }
