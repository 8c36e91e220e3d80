//go:build !cgo

package cpu

// Without cgo the products run on gonum's SGEMM, serially per call.
func gemmSerial(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm.Sgemm(trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmKernel names the matrix-product kernel.
func GemmKernel() string { return "gonum SGEMM (built without cgo)" }
