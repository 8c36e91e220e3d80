package gl

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/swavd/swavd/compute"
)

// Fence and sync enums (GL 3.2 / GL ES 3.0).
const (
	glSyncGPUCommandsComplete = 0x9117
	glSyncFlushCommandsBit    = 0x1
	glTimeoutExpired          = 0x911B
	glWaitFailed              = 0x911D
)

// pending is a small read in flight: the tensor was copied into a staging
// buffer on the GPU, and a fence marks when that copy is done.
type pending struct {
	b       *Backend
	staging *buffer
	n       int
	fence   uintptr
}

// ReadAsync copies t into a pooled staging buffer behind the work posted
// so far, fences it and returns without waiting.
func (b *Backend) ReadAsync(src compute.Tensor) compute.Pending {
	t := tensorOf(src)
	p := &pending{b: b, n: t.n, staging: b.newBuffer(t.n)}
	from, off := t.buf, t.off
	b.ctx.post(func() {
		b.copyRange(p.staging, 0, from, off, p.n)
		p.fence = b.ctx.fn.FenceSync(glSyncGPUCommandsComplete, 0)
		b.ctx.fn.Flush() // so the fence is reached without a later call
	})
	return p
}

var errWaitFailed = errors.New("gl: waiting for a fence failed")

// waitFence waits for a fence through wait (ClientWaitSync with a timeout
// in nanoseconds), asking again every 100 ms, for at most limit (0: no
// limit). A GPU that never reaches the fence (hung, or lost without the
// driver saying so) gives an error instead of a wait forever.
func waitFence(wait func(ns uint64) uint32, limit time.Duration) error {
	start := time.Now()
	for {
		switch wait(100_000_000) {
		case glWaitFailed:
			return errWaitFailed
		case glTimeoutExpired:
			if limit > 0 && time.Since(start) >= limit {
				return fmt.Errorf("gl: the GPU did not finish its work within %v (compute.gl_fence_timeout): it may have hung", limit)
			}
		default:
			return nil
		}
	}
}

// Wait blocks until the fenced copy is done and reads it.
func (p *pending) Wait(dst []float32) {
	b := p.b
	if len(dst) != p.n {
		panic(fmt.Sprintf("gl: wait for %d values into %d", p.n, len(dst)))
	}
	b.ctx.do(func() {
		f := b.ctx.fn
		err := waitFence(func(ns uint64) uint32 { return f.ClientWaitSync(p.fence, glSyncFlushCommandsBit, ns) }, b.FenceTimeout)
		if errors.Is(err, errWaitFailed) {
			err = fmt.Errorf("%w: %s", err, glErrorName(f.GetError()))
		}
		f.DeleteSync(p.fence)
		if err != nil {
			b.fail(err) // the backend is unusable from here: the trainer stops or falls back
			clear(dst)
			b.pool(p.staging)
			return
		}
		f.BindBuffer(glShaderStorageBuffer, p.staging.id)
		m := f.MapBufferRange(glShaderStorageBuffer, 0, 4*p.n, glMapReadBit)
		if m == nil {
			b.fail(fmt.Errorf("gl: mapping a staging buffer failed: %s", glErrorName(f.GetError())))
			clear(dst)
		} else {
			copy(dst, unsafe.Slice((*float32)(m), p.n))
			f.UnmapBuffer(glShaderStorageBuffer)
		}
		b.checkError()
		b.pool(p.staging)
		b.stats.Downloads++
		b.stats.DownloadBytes += 4 * p.n
	})
}
