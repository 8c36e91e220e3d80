package gl

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/swavd/swavd/compute"
)

// buffer is one GL shader storage buffer. The handle is made on the
// caller's side; id is filled in on the context's thread, when the
// allocation posted for it runs (before anything posted after it).
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
// for use by one goroutine at a time. Every GL call runs on the context's
// own thread: operations are posted to it in order and return at once;
// uploads, downloads and Finish wait for it.
type Backend struct {
	// FenceTimeout bounds a wait for the GPU to reach a fence
	// (compute.gl_fence_timeout); past it the backend fails as on a lost
	// context. 0 waits for ever. Set it before use.
	FenceTimeout time.Duration

	ctx *context
	wg  int // workgroup size of 1-D shaders
	// On the context's thread only:
	progs map[progID]*program // every program, compiled by New
	free  map[int][]uint32    // pooled buffer names by size in bytes
	stats Stats
	prof  map[string]*OpTime

	errMu sync.Mutex
	err   error // first GL error (out of memory), sticky
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
	b := &Backend{ctx: ctx, progs: map[progID]*program{}, free: map[int][]uint32{}}
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
		for _, id := range allPrograms() {
			p, err := b.ctx.compile(id.family, b.defines(id))
			if err != nil {
				cerr = err
				return
			}
			b.progs[id] = p
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

// Stats returns the counters since the backend was made, once everything
// posted so far has been issued.
func (b *Backend) Stats() Stats {
	var s Stats
	b.ctx.do(func() { s = b.stats })
	return s
}

// Err returns the first GL error met (such as running out of memory).
func (b *Backend) Err() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.err
}

// fail records err unless an error was recorded before.
func (b *Backend) fail(err error) {
	b.errMu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.errMu.Unlock()
}

func (b *Backend) Name() string { return "gl (" + b.ctx.info.API + ", " + b.ctx.info.Renderer + ")" }

func (b *Backend) Close() error {
	if b.ctx == nil {
		return nil
	}
	b.ctx.do(func() {
		for _, l := range b.free {
			for _, id := range l {
				b.ctx.fn.DeleteBuffers(1, &id)
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

// newBuffer returns the handle of a buffer of n floats (contents
// undefined), taken from the pool or made on the context's thread.
func (b *Backend) newBuffer(n int) *buffer {
	buf := &buffer{bytes: 4 * max(n, 1)}
	b.ctx.post(func() { b.alloc(buf) })
	return buf
}

// alloc gives buf a pooled buffer name of its size, or a new one; on the
// context thread.
func (b *Backend) alloc(buf *buffer) {
	if l := b.free[buf.bytes]; len(l) > 0 {
		buf.id = l[len(l)-1]
		b.free[buf.bytes] = l[:len(l)-1]
		return
	}
	f := b.ctx.fn
	f.GenBuffers(1, &buf.id)
	f.BindBuffer(glShaderStorageBuffer, buf.id)
	f.BufferData(glShaderStorageBuffer, buf.bytes, nil, glDynamicCopy)
	if e := f.GetError(); e != glNoError {
		b.fail(fmt.Errorf("gl: allocating %d bytes on %s: GL error %#x (out of memory?)", buf.bytes, b.ctx.info.Renderer, e))
	}
	b.stats.BuffersCreated++
}

func (b *Backend) Empty(shape ...int) compute.Tensor {
	n := compute.Size(shape)
	return &Tensor{buf: b.newBuffer(n), n: n, shape: append([]int(nil), shape...), owner: true}
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

// recycle returns a buffer to the pool once the operations posted before
// have been issued (GL keeps their order on the GPU).
func (b *Backend) recycle(buf *buffer) { b.ctx.post(func() { b.pool(buf) }) }

// pool returns a buffer to the pool; on the context thread.
func (b *Backend) pool(buf *buffer) { b.free[buf.bytes] = append(b.free[buf.bytes], buf.id) }

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
		b.stats.Uploads++
	})
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
		b.stats.Downloads++
		b.stats.DownloadBytes += 4 * t.n
		if p == nil {
			b.fail(fmt.Errorf("gl: mapping a buffer for reading failed: GL error %#x", f.GetError()))
			clear(dst)
			return
		}
		copy(dst, unsafe.Slice((*float32)(p), t.n))
		f.UnmapBuffer(glShaderStorageBuffer)
		b.checkError()
	})
}

// postCopy posts copyRange; the buffers are the ones held when posting.
func (b *Backend) postCopy(dst *buffer, dstOff int, src *buffer, srcOff, n int) {
	b.ctx.post(func() { b.copyRange(dst, dstOff, src, srcOff, n) })
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
	if e := b.ctx.fn.GetError(); e != glNoError {
		b.fail(fmt.Errorf("gl: %s on %s", glErrorName(e), b.ctx.info.Renderer))
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
