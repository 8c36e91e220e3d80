package daemon

import (
	"sort"
	"sync"
	"time"

	"github.com/swavd/swavd/api"
)

// broadcaster fans assignments out to event-stream subscribers. A slow
// subscriber loses events (counted) rather than slowing the assigner.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[chan api.Assignment]struct{}
	closed bool
	lost   uint64
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[chan api.Assignment]struct{}{}}
}

func (b *broadcaster) subscribe() (chan api.Assignment, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	ch := make(chan api.Assignment, 256)
	b.subs[ch] = struct{}{}
	return ch, true
}

func (b *broadcaster) unsubscribe(ch chan api.Assignment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

func (b *broadcaster) publish(a api.Assignment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- a:
		default:
			b.lost++
		}
	}
}

// stats are the open streams and the events lost to slow readers.
func (b *broadcaster) stats() api.Events {
	b.mu.Lock()
	defer b.mu.Unlock()
	return api.Events{Subscribers: len(b.subs), Lost: b.lost}
}

// close ends every stream.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// latencies keeps the last n capture-to-assignment latencies.
type latencies struct {
	mu   sync.Mutex
	v    []time.Duration
	pos  int
	full bool
}

func newLatencies(n int) *latencies { return &latencies{v: make([]time.Duration, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.v[l.pos] = d
	l.pos = (l.pos + 1) % len(l.v)
	l.full = l.full || l.pos == 0
	l.mu.Unlock()
}

// quantiles of the kept latencies (nil if none).
func (l *latencies) quantiles(qs ...float64) []time.Duration {
	l.mu.Lock()
	n := l.pos
	if l.full {
		n = len(l.v)
	}
	s := append([]time.Duration(nil), l.v[:n]...)
	l.mu.Unlock()
	if len(s) == 0 {
		return nil
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	out := make([]time.Duration, len(qs))
	for i, q := range qs {
		out[i] = s[min(int(q*float64(len(s))), len(s)-1)]
	}
	return out
}
