package cpu

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemm is gonum's SGEMM, the routine gorgonia.org/tensor's MatMul calls:
// the fallback without cgo, and the baseline in the benchmarks.
var sgemm = gonum.Implementation{}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gemm computes c = alpha*op(a)*op(b) + beta*c (row-major, leading
// dimensions lda, ldb, ldc), split over the cores by column blocks of c, or
// by row blocks when c is narrow: one block per core, since each block
// packs the whole of the other operand again.
func gemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if workers == 1 || m*n*k < 1<<18 {
		gemmSerial(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if n >= 64*workers {
		parallelCores(n/16, 1, func(_, lo, hi int) {
			j0, j1 := lo*16, hi*16
			if hi == n/16 {
				j1 = n
			}
			bOff := j0
			if tB {
				bOff = j0 * ldb
			}
			gemmSerial(tA, tB, m, j1-j0, k, alpha, a, lda, b[bOff:], ldb, beta, c[j0:], ldc)
		})
		return
	}
	parallelCores(m, 6, func(_, lo, hi int) {
		aOff := lo * lda
		if tA {
			aOff = lo
		}
		gemmSerial(tA, tB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
	})
}
