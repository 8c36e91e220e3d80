package cpu

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swavd/swavd/compute"
)

// coverage runs parallelCores over n with the given grain and checks that
// every index was run exactly once, by a core numbered below GOMAXPROCS,
// and that no core number ran two ranges at once.
func coverage(t *testing.T, n, grain int) {
	t.Helper()
	hits := make([]atomic.Int32, n)
	var mu sync.Mutex
	busy := map[int]bool{}
	parallelCores(n, grain, func(core, lo, hi int) {
		mu.Lock()
		if core < 0 || core >= runtime.GOMAXPROCS(0) || busy[core] {
			t.Errorf("n=%d: core %d out of range or already running", n, core)
		}
		busy[core] = true
		mu.Unlock()
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
		mu.Lock()
		busy[core] = false
		mu.Unlock()
	})
	checkOnce(t, fmt.Sprintf("n=%d grain=%d", n, grain), hits)
}

func TestParallelCoresRunsEachIndexOnce(t *testing.T) {
	withProcs([]int{1, 2, 3, 5}, func(int) {
		for n := 0; n < 40; n++ {
			for _, grain := range []int{1, 3, 16} {
				coverage(t, n, grain)
			}
		}
	})
}

// withProcs runs fn under each GOMAXPROCS in counts, then restores it.
func withProcs(counts []int, fn func(procs int)) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range counts {
		runtime.GOMAXPROCS(procs)
		fn(procs)
	}
}

// TestParallelWorkersAfterParking: the workers park after spinFor; a call
// after that must wake them, not hang or run a range twice.
func TestParallelWorkersAfterParking(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(4)
	for i := 0; i < 5; i++ {
		coverage(t, 100, 1)
		time.Sleep(3 * spinFor)
	}
}

// TestParallelFromManyGoroutines: callers that find the workers taken (a
// second goroutine, or a range that itself calls parallelCores) run on
// goroutines of their own; every index still runs once.
func TestParallelFromManyGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				coverage(t, 7+g, 1)
			}
		}()
	}
	wg.Wait()
	inner := make([]atomic.Int32, 6*10)
	parallelCores(6, 1, func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			parallelCores(10, 1, func(_, l, h int) {
				for i := l; i < h; i++ {
					inner[o*10+i].Add(1)
				}
			})
		}
	})
	checkOnce(t, "nested", inner)
}

// TestParallelRacesParking hands out work just as the workers give up
// spinning and park, again and again: a wake-up lost between the two
// would leave a range unrun and this call waiting forever (the watchdog
// then fails the test).
func TestParallelRacesParking(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			panic("parallelCores hung: a worker missed its wake-up")
		}
	}()
	for i := 0; i < 2000; i++ {
		coverage(t, 2, 1)
		wait := spinFor - 20*time.Microsecond + time.Duration(i%40)*time.Microsecond
		for start := time.Now(); time.Since(start) < wait; {
		}
	}
}

// TestSplitBatchBalancesCores: the blocks cover the batch once, in order,
// none over the budget, and when parallelCores shares them out every core
// gets as many images as the others, give or take one.
func TestSplitBatchBalancesCores(t *testing.T) {
	withProcs([]int{1, 2, 3, 4}, func(procs int) {
		for n := 1; n <= 300; n++ {
			for _, per := range []int{1, 2, 3, 9, 13, 37, 64, 500} {
				bl, ok := splitBatch(n, 1000, per*1000+999)
				if ok != (n >= procs) {
					t.Fatalf("procs %d n %d per %d: split %v", procs, n, per, ok)
				}
				if !ok {
					continue
				}
				if bl.per() > per {
					t.Fatalf("procs %d n %d: blocks of %d images, budget %d", procs, n, bl.per(), per)
				}
				next, perCore := 0, make([]int, procs)
				parallelCores(bl.n, 1, func(core, lo, hi int) {
					for i := lo; i < hi; i++ {
						n0, n1 := bl.bounds(i)
						perCore[core] += n1 - n0
					}
				})
				for i := 0; i < bl.n; i++ {
					n0, n1 := bl.bounds(i)
					if n0 != next || n1 <= n0 || n1-n0 > bl.per() {
						t.Fatalf("procs %d n %d per %d: block %d is [%d,%d) after %d", procs, n, per, i, n0, n1, next)
					}
					next = n1
				}
				lo, hi := n, 0
				for _, c := range perCore {
					lo, hi = min(lo, c), max(hi, c)
				}
				if next != n || hi-lo > 1 || (bl.n >= procs && lo == 0) {
					t.Fatalf("procs %d n %d per %d: %d blocks end at %d, images per core %v", procs, n, per, bl.n, next, perCore)
				}
			}
		}
	})
}

// TestParallelBlocksRunEachIndexOnce: parallel's ranges and both orders
// of parallelBlocks cover [0,n) once; fn runs at most once per core; and
// fixedCores gives each core the contiguous range parallelCores would.
func TestParallelBlocksRunEachIndexOnce(t *testing.T) {
	withProcs([]int{1, 2, 3, 5}, func(procs int) {
		for n := 0; n < 50; n++ {
			for _, grain := range []int{1, 4, 64} {
				hits := make([]atomic.Int32, n)
				parallel(n, grain, func(lo, hi int) {
					if hi-lo < min(grain, n) {
						t.Errorf("n %d grain %d: range [%d,%d) under the grain", n, grain, lo, hi)
					}
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				})
				checkOnce(t, fmt.Sprintf("parallel procs %d n %d grain %d", procs, n, grain), hits)
			}
			for _, order := range []blockOrder{anyCore, fixedCores} {
				hits := make([]atomic.Int32, n)
				calls := make([]atomic.Int32, procs)
				var mu sync.Mutex
				ranges := map[int][]int{}
				parallelBlocks(n, order, func(core int, blocks iter.Seq[int]) {
					calls[core].Add(1)
					for i := range blocks {
						hits[i].Add(1)
						mu.Lock()
						ranges[core] = append(ranges[core], i)
						mu.Unlock()
					}
				})
				name := fmt.Sprintf("parallelBlocks procs %d n %d order %v", procs, n, order)
				checkOnce(t, name, hits)
				for c := range calls {
					if calls[c].Load() > 1 {
						t.Fatalf("%s: fn ran %d times on core %d", name, calls[c].Load(), c)
					}
				}
				if order == fixedCores {
					parallelCores(n, 1, func(core, lo, hi int) {
						want := make([]int, 0, hi-lo)
						for i := lo; i < hi; i++ {
							want = append(want, i)
						}
						if !slices.Equal(ranges[core], want) {
							t.Errorf("%s: core %d ran %v, want %v", name, core, ranges[core], want)
						}
					})
				}
			}
		}
	})
}

func checkOnce(t *testing.T, name string, hits []atomic.Int32) {
	t.Helper()
	for i := range hits {
		if h := hits[i].Load(); h != 1 {
			t.Fatalf("%s: index %d run %d times", name, i, h)
		}
	}
}

// TestFilterGradientsRepeatBitForBit: the filter gradients sum blocks per
// core (coreSums); with the blocks on fixed cores the sum comes out the
// same bit for bit on every call, as resuming a checkpoint needs. Blocks
// taken by whichever core is free would group them differently from one
// call to the next.
func TestFilterGradientsRepeatBitForBit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	be := New()
	rng := rand.New(rand.NewPCG(21, 22))
	for _, l := range []struct{ c, co, hw, k, s int }{{16, 16, 16, 3, 1}, {16, 24, 8, 3, 2}, {8, 16, 6, 1, 2}} {
		p := compute.ConvParams{Kernel: l.k, Stride: l.s, Pad: l.k / 2}
		n, ho := 96, p.OutSize(l.hw)
		x, dy := be.New(l.c, n, l.hw, l.hw), be.New(l.co, n, ho, ho)
		be.Upload(x, randSlice(rng, x.Len()))
		be.Upload(dy, randSlice(rng, dy.Len()))
		var first []float32
		for i := 0; i < 30; i++ {
			dw := be.New(l.co, l.c, l.k, l.k)
			be.Conv2DGradFilter(dw, dy, x, p, 0)
			got := make([]float32, dw.Len())
			be.Download(got, dw)
			be.Release(dw)
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				t.Fatalf("%+v: call %d differs from the first", l, i)
			}
		}
		be.Release(x, dy)
	}
}

// TestCallerRunsPartsNoWorkerTook: a worker that has not started yet
// (its core taken away by the host) must not hold a call up: the caller
// alone runs every part, each with its own part number, as a worker would.
func TestCallerRunsPartsNoWorkerTook(t *testing.T) {
	var ran []int
	tk := &task{n: 10, parts: 3, fn: func(core, lo, hi int) {
		if lo != 10*core/3 || hi != 10*(core+1)/3 {
			t.Errorf("part %d got [%d,%d)", core, lo, hi)
		}
		ran = append(ran, core)
	}}
	tk.runParts()
	if !slices.Equal(ran, []int{0, 1, 2}) || tk.done.Load() != 3 {
		t.Fatalf("the caller ran parts %v (%d done), want 0, 1, 2", ran, tk.done.Load())
	}
	tk.runParts() // a worker arriving afterwards finds nothing left
	if len(ran) != 3 {
		t.Fatalf("a late worker ran a part again: %v", ran)
	}
}
