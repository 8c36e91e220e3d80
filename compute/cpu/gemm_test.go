package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// naiveGemm is the definition, in float64.
func naiveGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if tA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*ldc+j] = float32(float64(alpha)*s + float64(beta)*float64(c[i*ldc+j]))
		}
	}
}

func TestGemmMatchesDefinition(t *testing.T) { checkGemmMatchesDefinition(t, false) }

// checkGemmMatchesDefinition compares gemm with the definition on odd
// shapes, every transpose (or only A*B^T), leading dimensions wider than
// the rows, and (alpha, beta) of (0.7, 0.3), (1, 0) and (1, 1): the kernel
// writes whole tiles straight into C in the last two.
func checkGemmMatchesDefinition(t *testing.T, onlyABt bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 1, 1}, {7, 5, 3}, {6, 16, 256}, {13, 37, 300}, {97, 130, 70}, {64, 2100, 27}, {200, 90, 513}, {5, 6, 9001}} { // the last: deeper than the dot kernel's stretch of K
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				if onlyABt && (tA || !tB) {
					continue
				}
				m, n, k := sz[0], sz[1], sz[2]
				lda, ldb, ldc := k+1, n+2, n+3
				if tA {
					lda = m + 1
				}
				if tB {
					ldb = k + 2
				}
				rowsA, rowsB := m, k // of a and b as stored
				if tA {
					rowsA = k
				}
				if tB {
					rowsB = n
				}
				a := randSlice(rng, rowsA*lda)
				b := randSlice(rng, rowsB*ldb)
				for _, ab := range [][2]float32{{0.7, 0.3}, {1, 0}, {1, 1}} {
					c := randSlice(rng, m*ldc)
					want := append([]float32(nil), c...)
					naiveGemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
					gemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					name := fmt.Sprintf("%dx%dx%d tA=%v tB=%v alpha=%v beta=%v", m, n, k, tA, tB, ab[0], ab[1])
					for i := range c {
						if d := c[i] - want[i]; d > 1e-3 || d < -1e-3 {
							t.Fatalf("%s: element %d = %v, want %v", name, i, c[i], want[i])
						}
					}
				}
			}
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// BenchmarkGemm measures the convolution-shaped products of a training
// step (64x576 by 576x16384 and its two transposed forms, and a Winograd
// product, 64x64 by 64x8192) against gonum.
func BenchmarkGemm(b *testing.B) {
	m, n, k := 64, 16384, 576
	for _, c := range []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{{"forward", false, false, m, n, k}, {"grad-input", true, false, k, n, m}, {"grad-filter", false, true, m, k, n},
		{"winograd", false, false, 64, 8192, 64}} { // one of Winograd's 16 products: K is the channel count
		rng := rand.New(rand.NewPCG(3, 4))
		a, bb, cc := randSlice(rng, c.m*c.k), randSlice(rng, c.k*c.n), make([]float32, c.m*c.n)
		lda, ldb := c.k, c.n
		if c.tA {
			lda = c.m
		}
		if c.tB {
			ldb = c.k
		}
		for _, impl := range []string{"kernel", "gonum"} {
			b.Run(c.name+"/"+impl, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if impl == "kernel" {
						gemm(c.tA, c.tB, c.m, c.n, c.k, 1, a, lda, bb, ldb, 0, cc, c.n)
					} else {
						sgemm.Sgemm(trans(c.tA), trans(c.tB), c.m, c.n, c.k, 1, a, lda, bb, ldb, 0, cc, c.n)
					}
				}
				b.ReportMetric(2*float64(c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
