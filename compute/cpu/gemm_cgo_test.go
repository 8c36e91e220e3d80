//go:build cgo

package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestGemmKernelIsTheBestThisProcessorRuns asserts which kernel runs, from
// the processor's features as Go reads them: AVX-512 or AVX2 on x86-64,
// NEON on arm64 (under qemu too), generic elsewhere.
func TestGemmKernelIsTheBestThisProcessorRuns(t *testing.T) {
	want := "generic"
	switch runtime.GOARCH {
	case "amd64":
		if cpu.X86.HasAVX512F {
			want = "avx512"
		} else if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
			want = "avx2"
		}
	case "arm64":
		if cpu.ARM64.HasASIMD {
			want = "neon"
		}
	}
	if got := GemmKernel(); !strings.HasSuffix(got, ", "+want) {
		t.Fatalf("GemmKernel() = %q, want the %s variant", got, want)
	}
	t.Logf("%s on %s", GemmKernel(), runtime.GOARCH)
}

// TestEveryGemmVariantMatchesDefinition runs the definition check with each
// variant this processor supports, the generic one included, so a variant
// that is not the default is still tested.
func TestEveryGemmVariantMatchesDefinition(t *testing.T) {
	vs := gemmVariants()
	if len(vs) == 0 || vs[len(vs)-1] != "generic" {
		t.Fatalf("variants = %v, want a list ending with generic", vs)
	}
	defer func() {
		if err := useGemmVariant(vs[0]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, v := range vs {
		t.Run(v, func(t *testing.T) {
			if err := useGemmVariant(v); err != nil {
				t.Fatal(err)
			}
			if got := GemmKernel(); !strings.HasSuffix(got, ", "+v) {
				t.Fatalf("after switching to %s, GemmKernel() = %q", v, got)
			}
			checkGemmMatchesDefinition(t, false)
			// A*B^T both ways: packed, and on the dot-product kernel that
			// reads the rows in place.
			for _, mode := range []int{dotNever, dotAlways} {
				setDotMode(mode)
				checkGemmMatchesDefinition(t, true)
			}
			setDotMode(dotByShape)
		})
	}
	if err := useGemmVariant("sve"); err == nil {
		t.Fatal("switching to a variant that does not exist succeeded")
	}
}

// BenchmarkGemmDeep compares the packed kernel with the dot-product kernel
// on A*B^T products shaped like the filter gradients: Winograd's [Co x C]
// over a chunk's tiles, and the lowered stem's [32 x 27] over pixels.
func BenchmarkGemmDeep(b *testing.B) {
	defer setDotMode(dotByShape)
	for _, s := range [][3]int{{32, 32, 8192}, {64, 64, 4096}, {128, 128, 2048}, {128, 64, 2048}, {32, 27, 65536}, {64, 288, 16384}, {128, 576, 4096}} {
		m, n, k := s[0], s[1], s[2]
		rng := rand.New(rand.NewPCG(3, 4))
		a, bb, c := randSlice(rng, m*k), randSlice(rng, n*k), make([]float32, m*n)
		for _, mode := range []struct {
			name string
			mode int
		}{{"packed", dotNever}, {"dot", dotAlways}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", m, n, k, mode.name), func(b *testing.B) {
				setDotMode(mode.mode)
				for i := 0; i < b.N; i++ {
					gemmSerial(false, true, m, n, k, 1, a, k, bb, k, 0, c, n)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
