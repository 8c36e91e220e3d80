//go:build cgo

package cpu

// #cgo CFLAGS: -O3 -Wno-psabi
// #include <stdlib.h>
// #include "sgemm.h"
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// workspaces pools the kernel's packing buffers (2.2 MB each, one per
// running product). They come from Go, not malloc: they count towards
// GOMEMLIMIT (daemon.memory_limit_mib), and running out of memory is Go's
// error instead of a NULL the kernel would have to handle.
var workspaces = sync.Pool{New: func() any {
	buf := make([]float32, C.SWAV_SGEMM_WORK+16)
	off := 0 // align to 64 bytes, as the kernel's vector loads want
	for uintptr(unsafe.Pointer(&buf[off]))%64 != 0 {
		off++
	}
	w := buf[off : off+C.SWAV_SGEMM_WORK]
	return &w
}}

// gemmSerial runs the C kernel on one thread.
func gemmSerial(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := workspaces.Get().(*[]float32)
	defer workspaces.Put(w)
	C.swav_sgemm(cbool(tA), cbool(tB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc), (*C.float)(unsafe.Pointer(&(*w)[0])))
}

// packedK is the deepest product gemmPackedB takes.
const packedK = C.SWAV_SGEMM_KC

// gemmPanelShift is log2 of the width of the kernel's B panels (32 for
// AVX-512, 16 for the others), the layout gemmPackedB reads.
func gemmPanelShift() int {
	nr := int(C.swav_sgemm_nr())
	shift := 0
	for 1<<shift < nr {
		shift++
	}
	return shift
}

// gemmPackedB is gemmSerial(false, false, m, n, k, 1, a, lda, B, n, beta,
// c, ldc) with B already packed in bp (swav_sgemm_packed_b: panels of
// 1<<gemmPanelShift() columns, k at most packedK, bp 64-byte aligned and
// covering the last panel whole).
func gemmPackedB(m, n, k int, a []float32, lda int, bp []float32, beta float32, c []float32, ldc int) {
	nr := 1 << gemmPanelShift()
	if k > packedK || len(bp) < (n+nr-1)/nr*nr*k || uintptr(unsafe.Pointer(&bp[0]))%64 != 0 ||
		len(a) < (m-1)*lda+k || len(c) < (m-1)*ldc+n {
		panic(fmt.Sprintf("cpu: packed product %dx%dx%d of mismatched or misaligned buffers", m, n, k))
	}
	w := workspaces.Get().(*[]float32)
	defer workspaces.Put(w)
	C.swav_sgemm_packed_b(C.int(m), C.int(n), C.int(k), (*C.float)(unsafe.Pointer(&a[0])), C.int(lda),
		(*C.float)(unsafe.Pointer(&bp[0])), C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc),
		(*C.float)(unsafe.Pointer(&(*w)[0])))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// GemmKernel names the matrix-product kernel this processor runs.
func GemmKernel() string { return "packed C SGEMM, " + C.GoString(C.swav_sgemm_variant()) }

// gemmVariants lists the variants this processor runs, best first.
func gemmVariants() []string {
	var out []string
	for i := 0; ; i++ {
		name := C.swav_sgemm_supported_at(C.int(i))
		if name == nil {
			return out
		}
		out = append(out, C.GoString(name))
	}
}

// useGemmVariant switches the kernel to another variant this processor
// runs, so tests can check each against the definition. Not safe while a
// product runs.
func useGemmVariant(name string) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	if C.swav_sgemm_use(cs) != 0 {
		return fmt.Errorf("cpu: this processor does not run the %q SGEMM variant", name)
	}
	return nil
}

// setDotMode chooses when A*B^T runs on the unpacked dot-product kernel:
// dotByShape (the default), dotNever or dotAlways, so tests and benchmarks
// can run both paths. Not safe while a product runs.
func setDotMode(mode int) { C.swav_sgemm_dot_mode(C.int(mode)) }

const (
	dotByShape = -1
	dotNever   = 0
	dotAlways  = 1
)
