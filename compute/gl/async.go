package gl

import (
	"fmt"
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

// Wait blocks until the fenced copy is done and reads it.
func (p *pending) Wait(dst []float32) {
	b := p.b
	if len(dst) != p.n {
		panic(fmt.Sprintf("gl: wait for %d values into %d", p.n, len(dst)))
	}
	b.ctx.do(func() {
		f := b.ctx.fn
		for {
			r := f.ClientWaitSync(p.fence, glSyncFlushCommandsBit, 100_000_000) // 100 ms, then ask again
			if r == glWaitFailed {
				b.fail(fmt.Errorf("gl: waiting for a fence failed: %s", glErrorName(f.GetError())))
				break
			}
			if r != glTimeoutExpired {
				break
			}
		}
		f.DeleteSync(p.fence)
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
