//go:build cgo

package cpu

import (
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
			checkGemmMatchesDefinition(t)
		})
	}
	if err := useGemmVariant("sve"); err == nil {
		t.Fatal("switching to a variant that does not exist succeeded")
	}
}
