// Package gl is the OpenGL compute backend: a headless EGL context (GL 4.3
// core or GL ES 3.1) owned by one OS thread, GLSL compute shaders from the
// shaders package, and tensors in shader storage buffers.
package gl

// #cgo pkg-config: egl
// #include <stdlib.h>
// #include <EGL/egl.h>
// #include "egl.h"
// static void *proc(const char *name) { return (void *)eglGetProcAddress(name); }
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// API selects desktop OpenGL or OpenGL ES.
type API int

const (
	GL43   API = iota // OpenGL 4.3 core
	GLES31            // OpenGL ES 3.1
)

func (a API) String() string {
	if a == GLES31 {
		return "OpenGL ES 3.1"
	}
	return "OpenGL 4.3 core"
}

// Limits are the compute limits queried from the driver.
type Limits struct {
	MaxInvocations  int    `json:"max_invocations"`
	MaxGroupSize    [3]int `json:"max_group_size"`
	MaxGroupCount   [3]int `json:"max_group_count"`
	MaxSharedBytes  int    `json:"max_shared_bytes"`
	MaxSSBOBindings int    `json:"max_compute_ssbo_blocks"`
	SSBOAlignment   int    `json:"ssbo_offset_alignment"`
}

// Info describes the context.
type Info struct {
	API      string `json:"api"`
	Platform string `json:"egl_platform"`
	Vendor   string `json:"vendor"`
	Renderer string `json:"renderer"`
	Version  string `json:"version"`
	GLSL     string `json:"glsl"`
	Limits   Limits `json:"limits"`
}

// Software reports whether the renderer runs on the CPU (Mesa's llvmpipe,
// softpipe or swrast): correct, and what the tests run on, but far slower
// than the CPU backend for training.
func (i Info) Software() bool {
	r := strings.ToLower(i.Renderer)
	for _, s := range []string{"llvmpipe", "softpipe", "swrast", "software rasterizer"} {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// Platform selects which EGL platforms to try.
type Platform int

const (
	AnyPlatform Platform = C.SWAV_EGL_DEVICE | C.SWAV_EGL_SURFACELESS | C.SWAV_EGL_DEFAULT
	// DevicePlatform is EGL_EXT_platform_device (NVIDIA, Jetson; Mesa too).
	DevicePlatform Platform = C.SWAV_EGL_DEVICE
	// SurfacelessPlatform is EGL_MESA_platform_surfaceless.
	SurfacelessPlatform Platform = C.SWAV_EGL_SURFACELESS
)

// ErrNoDisplay means EGL could not open any display: there is no GL here.
var ErrNoDisplay = errors.New("gl: no EGL display")

// ErrNoContext means a display opened but its driver offers no context of
// the API and version asked for (a GLES-only board asked for GL 4.3).
var ErrNoContext = errors.New("gl: the driver offers no such context")

// context is a GL context and the goroutine, locked to its OS thread, that
// owns it: every GL call runs there, sent through do.
type context struct {
	api  API
	plat Platform
	egl  C.swav_egl
	fn   *funcs
	info Info
	work chan func()
	done chan struct{}
}

func procAddr(name string) unsafe.Pointer {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.proc(cs)
}

// openContext makes a headless context for api on a new locked thread.
func openContext(api API, plat Platform) (*context, error) {
	c := &context{api: api, plat: plat, work: make(chan func(), queueDepth), done: make(chan struct{})}
	errc := make(chan error, 1)
	go c.loop(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return c, nil
}

func (c *context) loop(errc chan<- error) {
	runtime.LockOSThread()
	defer close(c.done)
	if err := c.start(); err != nil {
		errc <- err
		return
	}
	errc <- nil
	for f := range c.work {
		f()
	}
	C.swav_egl_close(&c.egl)
}

func (c *context) start() error {
	major, minor, gles := 4, 3, 0
	if c.api == GLES31 {
		major, minor, gles = 3, 1, 1
	}
	if C.swav_egl_open(&c.egl, C.int(gles), C.int(major), C.int(minor), C.int(c.plat)) != 0 {
		if c.egl.displays > 0 {
			return fmt.Errorf("%w: %s", ErrNoContext, C.GoString(&c.egl.err[0]))
		}
		return fmt.Errorf("%w for %v: %s", ErrNoDisplay, c.api, C.GoString(&c.egl.err[0]))
	}
	var err error
	if c.api == GLES31 {
		c.fn, err = loadGLES31(procAddr)
	} else {
		c.fn, err = loadGL43(procAddr)
	}
	if err != nil {
		C.swav_egl_close(&c.egl)
		return fmt.Errorf("gl: loading %v functions: %w", c.api, err)
	}
	c.info = c.query()
	return nil
}

func (c *context) str(name uint32) string {
	p := c.fn.GetString(name)
	if p == nil {
		return ""
	}
	return C.GoString((*C.char)(unsafe.Pointer(p)))
}

func (c *context) integer(name uint32) int {
	var v int32
	c.fn.GetIntegerv(name, &v)
	return int(v)
}

func (c *context) query() Info {
	in := Info{
		API: c.api.String(), Platform: C.GoString(c.egl.platform),
		Vendor: c.str(glVendor), Renderer: c.str(glRenderer), Version: c.str(glVersion), GLSL: c.str(glShadingLanguageVersion),
	}
	l := &in.Limits
	l.MaxInvocations = c.integer(glMaxComputeWorkGroupInv)
	for i := 0; i < 3; i++ {
		var v int32
		c.fn.GetIntegeri_v(glMaxComputeWorkGroupSize, uint32(i), &v)
		l.MaxGroupSize[i] = int(v)
		c.fn.GetIntegeri_v(glMaxComputeWorkGroupCount, uint32(i), &v)
		l.MaxGroupCount[i] = int(v)
	}
	l.MaxSharedBytes = c.integer(glMaxComputeSharedMemory)
	l.MaxSSBOBindings = c.integer(glMaxComputeSSBOBlocks)
	l.SSBOAlignment = c.integer(glSSBOOffsetAlignment)
	c.fn.GetError() // queries of unknown limits must not poison the first real check
	return in
}

// queueDepth is how many posted calls may wait for the context's thread
// before post blocks.
const queueDepth = 1024

// post queues f to run on the context's thread, after everything queued
// before it, and returns at once. GL commands are asynchronous anyway; not
// waiting for the thread handoff (tens of microseconds each way) lets the
// caller prepare the next operation while this one is issued. f must only
// use what it captured at post time.
func (c *context) post(f func()) { c.work <- f }

// do runs f on the context's thread, after everything posted before, and
// waits for it.
func (c *context) do(f func()) {
	ch := make(chan struct{})
	c.work <- func() { f(); close(ch) }
	<-ch
}

func (c *context) close() {
	close(c.work)
	<-c.done
}
