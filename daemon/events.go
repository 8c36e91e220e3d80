package daemon

import (
	"sync"

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
