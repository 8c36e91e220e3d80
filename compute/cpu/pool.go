package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workerPool runs parallelCores' ranges on goroutines that stay on their
// cores between calls. A goroutine started per call reached its core 58-75
// µs after the call began on average (a parked thread's wake-up), some 150
// times a training step at batch 16; a worker that spins for a while after
// each range took the next one within 2 µs in 85-87% of the calls, most
// gaps between two parallel calls of a step being under 128 µs. Spinning
// yields the core to any other goroutine that wants it, and parks after
// spinFor, so an idle daemon does not burn it.
var workerPool struct {
	mu      sync.Mutex // held by the one caller that uses the workers
	workers []*worker
}

// spinFor is how long a worker looks for its next range before it parks.
const spinFor = 250 * time.Microsecond

// worker is one goroutine of workerPool: next is the call it is to help
// with, handed over by give; wake rouses it once it has parked.
type worker struct {
	next   atomic.Pointer[task]
	asleep atomic.Bool
	wake   chan struct{}
}

// task is one call's ranges: part i of parts runs fn(i, n*i/parts,
// n*(i+1)/parts). Whoever is free takes the next part, the caller
// included, so a worker that starts late (the host gave its core to
// someone else for a few milliseconds) does not hold the call up: the
// caller runs that part itself. fn sees the part, not the goroutine, so
// per-core scratch and sums are the same whoever runs it.
type task struct {
	fn      func(core, lo, hi int)
	n       int
	parts   int
	claimed atomic.Int32 // parts taken so far
	done    atomic.Int32 // parts finished
}

// runParts runs parts of t until none is left to take.
func (t *task) runParts() {
	for p := int(t.claimed.Add(1)) - 1; p < t.parts; p = int(t.claimed.Add(1)) - 1 {
		t.fn(p, t.n*p/t.parts, t.n*(p+1)/t.parts)
		t.done.Add(1)
	}
}

// runOnWorkers runs t's parts here and on the workers, and returns when
// all are done. It says false, running nothing, when another caller (a
// second goroutine, or a range that itself calls parallel) has the
// workers.
func runOnWorkers(t *task) bool {
	if !workerPool.mu.TryLock() {
		return false
	}
	defer workerPool.mu.Unlock()
	for len(workerPool.workers) < t.parts-1 {
		w := &worker{wake: make(chan struct{}, 1)}
		workerPool.workers = append(workerPool.workers, w)
		go w.loop()
	}
	for _, w := range workerPool.workers[:t.parts-1] {
		w.give(t)
	}
	t.runParts()
	for i := 1; t.done.Load() != int32(t.parts); i++ {
		if i%64 == 0 {
			runtime.Gosched() // a worker woken from its park may be queued on this core
		}
	}
	return true
}

// give hands t to w, waking it if it parked. The order of the two
// stores and loads (here: next, then asleep; in await: asleep, then next)
// makes sure one side sees the other.
func (w *worker) give(t *task) {
	w.next.Store(t)
	if w.asleep.Load() {
		select {
		case w.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

func (w *worker) loop() {
	for {
		w.await().runParts()
	}
}

func (w *worker) await() *task {
	deadline := time.Now().Add(spinFor)
	for i := 1; ; i++ {
		if t := w.next.Swap(nil); t != nil {
			return t
		}
		if i%64 == 0 {
			if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	for {
		w.asleep.Store(true)
		if t := w.next.Swap(nil); t != nil {
			w.asleep.Store(false)
			return t
		}
		<-w.wake
		w.asleep.Store(false)
		if t := w.next.Swap(nil); t != nil {
			return t
		}
	}
}
