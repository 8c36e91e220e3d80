//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "lower.h"
import "C"

import "unsafe"

func cgeom(g convGeom) C.swav_conv_geom {
	return C.swav_conv_geom{C: C.int(g.C), N: C.int(g.N), H: C.int(g.H), W: C.int(g.W), Ho: C.int(g.Ho), Wo: C.int(g.Wo),
		k: C.int(g.p.Kernel), stride: C.int(g.p.Stride), pad: C.int(g.p.Pad)}
}

func fptr(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

// im2colRows writes rows [rlo,rhi) of the lowering with lower.c.
func im2colRows(col []float32, ld int, x []float32, g convGeom, n0, n1, rlo, rhi int) {
	if need := (g.rows()-1)*ld + (n1-n0)*g.Ho*g.Wo; len(col) < need || len(x) < g.C*g.N*g.H*g.W || ld < (n1-n0)*g.Ho*g.Wo {
		panic("cpu: im2col buffers too short")
	}
	C.swav_im2col(fptr(col), C.size_t(ld), fptr(x), cgeom(g), C.int(n0), C.int(n1), C.int(rlo), C.int(rhi))
}

// col2imChannels adds col onto channels [clo,chi) of dx with lower.c.
func col2imChannels(dx, col []float32, ld int, g convGeom, n0, n1, clo, chi int) {
	if need := (g.rows()-1)*ld + (n1-n0)*g.Ho*g.Wo; len(col) < need || len(dx) < g.C*g.N*g.H*g.W || ld < (n1-n0)*g.Ho*g.Wo {
		panic("cpu: col2im buffers too short")
	}
	C.swav_col2im(fptr(dx), fptr(col), C.size_t(ld), cgeom(g), C.int(n0), C.int(n1), C.int(clo), C.int(chi))
}
