// Package daemon wires swavd's continual-learning service: capture feeds a
// bounded frame ring; the assigner gives every frame a cluster; a replay
// buffer feeds the trainer; statistics, checkpoints and the local API
// expose the result (the README's "How it is built" draws the flow).
package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/swavd/swavd/capture"
)

// Frame is one captured frame at the working size.
type Frame struct {
	Seq uint64
	At  time.Time // when capture returned it
	Img *capture.Image
}

// Ring is a bounded FIFO of frames. Push never blocks: when the ring is
// full the oldest frame is dropped and counted, so a slow consumer can
// never stall capture.
type Ring struct {
	mu      sync.Mutex
	buf     []Frame
	head, n int
	dropped uint64
	ready   chan struct{} // signalled (non-blocking) on push
}

// NewRing returns a ring of capacity n.
func NewRing(n int) *Ring { return &Ring{buf: make([]Frame, n), ready: make(chan struct{}, 1)} }

// Push adds f, dropping the oldest frame when full.
func (r *Ring) Push(f Frame) {
	r.mu.Lock()
	if r.n == len(r.buf) {
		r.buf[r.head] = Frame{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.dropped++
	}
	r.buf[(r.head+r.n)%len(r.buf)] = f
	r.n++
	r.mu.Unlock()
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// Pop blocks until a frame is available or ctx ends.
func (r *Ring) Pop(ctx context.Context) (Frame, bool) {
	for {
		r.mu.Lock()
		if r.n > 0 {
			f := r.buf[r.head]
			r.buf[r.head] = Frame{}
			r.head = (r.head + 1) % len(r.buf)
			r.n--
			r.mu.Unlock()
			return f, true
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return Frame{}, false
		case <-r.ready:
		}
	}
}

// Dropped is the number of frames dropped so far.
func (r *Ring) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}
