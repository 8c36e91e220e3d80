//go:build cgo

package cpu

// #cgo CFLAGS: -O3
// #include "sgemm.h"
import "C"

import "unsafe"

// gemmSerial runs the C kernel on one thread.
func gemmSerial(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.swav_sgemm(cbool(tA), cbool(tB), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// GemmKernel names the matrix-product kernel this processor runs.
func GemmKernel() string { return "packed C SGEMM, " + C.GoString(C.swav_sgemm_variant()) }
