package gl

import (
	"fmt"
	"unsafe"

	"github.com/swavd/swavd/compute"
)

// buffer is one GL shader storage buffer.
type buffer struct {
	id    uint32
	bytes int
}

// Tensor is the GL backend's handle: a range of a storage buffer.
type Tensor struct {
	buf   *buffer
	off   int // elements
	n     int
	shape []int
	owner bool // false for views
}

func (t *Tensor) Shape() []int { return t.shape }
func (t *Tensor) Len() int     { return t.n }

// Stats count what crosses the bus and what is allocated, so tests can
// hold a training step to its budget.
type Stats struct {
	BuffersCreated int
	Downloads      int
	DownloadBytes  int
	Uploads        int
	Dispatches     int
}

// Backend runs the compute operations as GLSL compute shaders. It is safe
// for use by one goroutine at a time; every GL call runs on the context's
// own thread.
type Backend struct {
	ctx   *context
	wg    int // workgroup size of 1-D shaders
	progs map[string]*program
	free  map[int][]*buffer
	stats Stats
	err   error // first GL error (out of memory), sticky
	prof  map[string]*OpTime
}

var _ compute.Backend = (*Backend)(nil)

// New opens a headless context for api on the first EGL platform that
// works and compiles every shader; it fails with a message naming the
// shader and the driver's log when one does not compile, and wraps
// ErrNoDisplay when EGL has no display.
func New(api API) (*Backend, error) { return NewOn(api, AnyPlatform) }

// NewOn is New restricted to the given EGL platforms.
func NewOn(api API, plat Platform) (*Backend, error) {
	ctx, err := openContext(api, plat)
	if err != nil {
		return nil, err
	}
	b := &Backend{ctx: ctx, progs: map[string]*program{}, free: map[int][]*buffer{}}
	lim := ctx.info.Limits
	if lim.MaxSSBOBindings < 4 || lim.MaxInvocations < 128 || lim.MaxSharedBytes < 16384 { // GL ES 3.1's minimum; the matmul tiles use 13 KiB
		ctx.close()
		return nil, fmt.Errorf("gl: %s lacks the compute limits swavd needs: %+v", ctx.info.Renderer, lim)
	}
	b.wg = 256
	if lim.MaxInvocations < 256 || lim.MaxGroupSize[0] < 256 {
		b.wg = 128
	}
	var cerr error
	ctx.do(func() {
		for _, p := range allPrograms() {
			if _, err := b.program(p.family, p.op, p.extra); err != nil {
				cerr = err
				return
			}
		}
	})
	if cerr != nil {
		b.Close()
		return nil, cerr
	}
	return b, nil
}

// Info describes the context: API, EGL platform, renderer, version, limits.
func (b *Backend) Info() Info { return b.ctx.info }

// Stats returns the counters since the backend was made.
func (b *Backend) Stats() Stats { return b.stats }

// Err returns the first GL error met (such as running out of memory).
func (b *Backend) Err() error { return b.err }

func (b *Backend) Name() string { return "gl (" + b.ctx.info.API + ", " + b.ctx.info.Renderer + ")" }

func (b *Backend) Close() error {
	if b.ctx == nil {
		return nil
	}
	b.ctx.do(func() {
		for _, l := range b.free {
			for _, buf := range l {
				b.ctx.fn.DeleteBuffers(1, &buf.id)
			}
		}
		for _, p := range b.progs {
			b.ctx.fn.DeleteProgram(p.id)
		}
	})
	b.ctx.close()
	b.ctx = nil
	return nil
}

func tensorOf(t compute.Tensor) *Tensor { return t.(*Tensor) }

// alloc returns a pooled buffer of n floats (contents undefined); on the
// context thread.
func (b *Backend) alloc(n int) *buffer {
	bytes := 4 * max(n, 1)
	if l := b.free[bytes]; len(l) > 0 {
		buf := l[len(l)-1]
		b.free[bytes] = l[:len(l)-1]
		return buf
	}
	f := b.ctx.fn
	buf := &buffer{bytes: bytes}
	f.GenBuffers(1, &buf.id)
	f.BindBuffer(glShaderStorageBuffer, buf.id)
	f.BufferData(glShaderStorageBuffer, bytes, nil, glDynamicCopy)
	if e := f.GetError(); e != glNoError && b.err == nil {
		b.err = fmt.Errorf("gl: allocating %d bytes on %s: GL error %#x (out of memory?)", bytes, b.ctx.info.Renderer, e)
	}
	b.stats.BuffersCreated++
	return buf
}

func (b *Backend) Empty(shape ...int) compute.Tensor {
	n := compute.Size(shape)
	var buf *buffer
	b.ctx.do(func() { buf = b.alloc(n) })
	return &Tensor{buf: buf, n: n, shape: append([]int(nil), shape...), owner: true}
}

func (b *Backend) New(shape ...int) compute.Tensor {
	t := b.Empty(shape...)
	b.Fill(t, 0)
	return t
}

func (b *Backend) Release(ts ...compute.Tensor) {
	for _, t := range ts {
		if t == nil {
			continue
		}
		gt := tensorOf(t)
		if gt.owner && gt.buf != nil {
			b.recycle(gt.buf)
			gt.buf = nil
		}
	}
}

// recycle returns a buffer to the pool.
func (b *Backend) recycle(buf *buffer) { b.free[buf.bytes] = append(b.free[buf.bytes], buf) }

func (b *Backend) View(t compute.Tensor, offset int, shape ...int) compute.Tensor {
	gt := tensorOf(t)
	n := compute.Size(shape)
	if offset < 0 || offset+n > gt.n {
		panic(fmt.Sprintf("gl: view [%d:%d] of a tensor of %d elements", offset, offset+n, gt.n))
	}
	return &Tensor{buf: gt.buf, off: gt.off + offset, n: n, shape: append([]int(nil), shape...)}
}

func (b *Backend) Upload(dst compute.Tensor, src []float32) {
	t := tensorOf(dst)
	if len(src) != t.n {
		panic(fmt.Sprintf("gl: upload of %d values into a tensor of %d", len(src), t.n))
	}
	if t.n == 0 {
		return
	}
	b.ctx.do(func() {
		f := b.ctx.fn
		f.BindBuffer(glShaderStorageBuffer, t.buf.id)
		f.BufferSubData(glShaderStorageBuffer, 4*t.off, 4*t.n, unsafe.Pointer(&src[0]))
	})
	b.stats.Uploads++
}

func (b *Backend) Download(dst []float32, src compute.Tensor) {
	t := tensorOf(src)
	if len(dst) != t.n {
		panic(fmt.Sprintf("gl: download of a tensor of %d values into %d", t.n, len(dst)))
	}
	if t.n == 0 {
		return
	}
	b.ctx.do(func() {
		f := b.ctx.fn
		f.BindBuffer(glShaderStorageBuffer, t.buf.id)
		p := f.MapBufferRange(glShaderStorageBuffer, 4*t.off, 4*t.n, glMapReadBit)
		if p == nil {
			if b.err == nil {
				b.err = fmt.Errorf("gl: mapping a buffer for reading failed: GL error %#x", f.GetError())
			}
			clear(dst)
			return
		}
		copy(dst, unsafe.Slice((*float32)(p), t.n))
		f.UnmapBuffer(glShaderStorageBuffer)
		b.checkError()
	})
	b.stats.Downloads++
	b.stats.DownloadBytes += 4 * t.n
}

// copyRange copies n floats between buffers on the GPU; on the context thread.
func (b *Backend) copyRange(dst *buffer, dstOff int, src *buffer, srcOff, n int) {
	f := b.ctx.fn
	f.BindBuffer(glCopyReadBuffer, src.id)
	f.BindBuffer(glCopyWriteBuffer, dst.id)
	f.CopyBufferSubData(glCopyReadBuffer, glCopyWriteBuffer, 4*srcOff, 4*dstOff, 4*n)
	f.MemoryBarrier(glAllBarrierBits)
}

// Finish waits until the GPU has done all work issued so far, and
// records any GL error it raised.
func (b *Backend) Finish() {
	b.ctx.do(func() {
		b.ctx.fn.Finish()
		b.checkError()
	})
}

// checkError records the first GL error (on the context thread). A
// download ends every training step (the loss), and it checks, so a lost
// context or running out of memory surfaces through Err within a step.
func (b *Backend) checkError() {
	if e := b.ctx.fn.GetError(); e != glNoError && b.err == nil {
		b.err = fmt.Errorf("gl: %s on %s", glErrorName(e), b.ctx.info.Renderer)
	}
}

// glErrorName names the errors glGetError reports after a compute pass.
func glErrorName(e uint32) string {
	switch e {
	case 0x0505:
		return "GL_OUT_OF_MEMORY"
	case 0x0507:
		return "GL_CONTEXT_LOST (device reset or driver crash)"
	case 0x0500, 0x0501, 0x0502, 0x0506:
		return fmt.Sprintf("GL error %#x (invalid enum/value/operation/framebuffer: a swavd bug)", e)
	}
	return fmt.Sprintf("GL error %#x", e)
}
