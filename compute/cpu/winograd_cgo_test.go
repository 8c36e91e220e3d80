//go:build cgo

package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/swavd/swavd/compute"
)

// TestWinogradPackedInputMatchesUnpacked: the fused Winograd path with its
// input transform writing the planes packed for the products gives, bit
// for bit, what it gives when each product packs them itself (the same
// kernel on the same panels), forward and input gradient (the filter
// gradient does not take this path), with every kernel variant (panels of
// 32 and of 16 columns): widths of 16, 32, 48 and 64 pixels, channel counts
// that are no block size, blocks whose tiles end inside a panel, and
// blocks of more tiles than the kernel takes columns at once (NC).
func TestWinogradPackedInputMatchesUnpacked(t *testing.T) {
	vs := gemmVariants()
	defer func() {
		if err := useGemmVariant(vs[0]); err != nil {
			t.Fatal(err)
		}
	}()
	rng := rand.New(rand.NewPCG(31, 32))
	p := compute.ConvParams{Kernel: 3, Stride: 1, Pad: 1}
	type shape struct{ c, co, h, w, n int }
	for _, v := range vs {
		if err := useGemmVariant(v); err != nil {
			t.Fatal(err)
		}
		for _, sh := range []shape{{5, 16, 16, 16, 3}, {17, 3, 2, 16, 5}, {16, 16, 32, 32, 4}, {3, 17, 7, 48, 3}, {64, 32, 16, 16, 9}, {1, 1, 64, 64, 48}} {
			packed, unpacked := withWinograd(1), withWinograd(1)
			unpacked.unpackedInput = true
			g := convGeom{C: sh.c, N: sh.n, H: sh.h, W: sh.w, Co: sh.co, Ho: sh.h, Wo: sh.w, p: p}
			if _, fused := packed.blocking(g, winogradPackedBlockBudget); !fused || !packed.packedInput(g) || sh.n < runtime.GOMAXPROCS(0) {
				t.Fatalf("%+v does not take the packed path (fused %v)", sh, fused)
			}
			if bl, _ := packed.blocking(g, winogradPackedBlockBudget); sh.n == 48 && bl.per()*winoTiles(sh.h, sh.w) <= 2048 {
				t.Fatalf("%+v: blocks of %d images, %d tiles: not more than 2048", sh, bl.per(), bl.per()*winoTiles(sh.h, sh.w))
			}
			x, w, dy := randSlice(rng, sh.c*sh.n*sh.h*sh.w), randSlice(rng, sh.co*sh.c*9), randSlice(rng, sh.co*sh.n*sh.h*sh.w)
			dw0 := randSlice(rng, sh.co*sh.c*9)
			got, want := convProducts(packed, rng, g, x, w, dy, dw0), convProducts(unpacked, rng, g, x, w, dy, dw0)
			name := fmt.Sprintf("%s: %+v", v, sh)
			equal(t, name+" forward", got[0], want[0])
			equal(t, name+" input gradient", got[1], want[1])
		}
	}
}
