// Package choose opens the compute backend a configuration names, the one
// place that decides between GL and the CPU for swavd run, train, eval and
// bench:
//   - cpu: the CPU backend;
//   - gl, gles: that GL API, which must open and pass its self-test against
//     the CPU, or the command fails;
//   - auto: GL 4.3, then GLES 3.1, the first that runs on a GPU (not a
//     software renderer such as llvmpipe, which trains tens of times
//     slower than the CPU backend) and passes the self-test; otherwise
//     the CPU, with the reason for each API kept for status.
//
// With auto, a GL backend that fails mid-run gives way to the CPU
// (Choice.Fallback).
package choose

import (
	"fmt"
	"strings"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
)

// Choice is the backend opened for a configuration, and why.
type Choice struct {
	Backend compute.Backend
	// NotGL says why auto did not take GL ("" when it did, or was not asked).
	NotGL string
	auto  bool
}

// Status is what the daemon's status says of the backend.
func (c Choice) Status() api.Backend {
	s := api.Backend{Name: c.Backend.Name(), Fallback: c.NotGL}
	if g, ok := c.Backend.(*gl.Backend); ok {
		in := g.Info()
		s.Renderer, s.GL = in.Renderer, in.Version
	}
	return s
}

// Fallback is the backend to move to when this one fails mid-run: the CPU
// with auto; nil (no fallback: training stops) with gl or gles.
func (c Choice) Fallback() func() compute.Backend {
	if !c.auto || c.Backend.Name() == "cpu" {
		return nil
	}
	return func() compute.Backend { return cpu.New() }
}

// GL is how a GL backend is opened and checked; Open uses the real ones,
// tests others.
type GL struct {
	Open     func(gl.API) (*gl.Backend, error)
	SelfTest func(*gl.Backend) error
	// Software tells a software renderer, which auto refuses.
	Software func(gl.Info) bool
}

// Real opens GL through EGL, self-tests against the CPU backend and knows
// software renderers by name.
var Real = GL{Open: gl.New, SelfTest: func(b *gl.Backend) error { return gl.SelfTest(b, cpu.New()) }, Software: gl.Info.Software}

// Open opens the backend cfg names with the real GL.
func Open(cfg *config.Config) (Choice, error) { return Real.Choose(cfg) }

// Choose opens the backend cfg.Compute.Backend names (see the package
// comment); GL backends get compute.gl_fence_timeout.
func (g GL) Choose(cfg *config.Config) (Choice, error) {
	switch cfg.Compute.Backend {
	case "cpu":
		return Choice{Backend: cpu.New()}, nil
	case "gl", "gles":
		api := gl.GL43
		if cfg.Compute.Backend == "gles" {
			api = gl.GLES31
		}
		b, err := g.open(api, cfg, false)
		if err != nil {
			return Choice{}, err
		}
		return Choice{Backend: b}, nil
	case "auto":
		var why []string
		for _, api := range []gl.API{gl.GL43, gl.GLES31} {
			b, err := g.open(api, cfg, true)
			if err == nil {
				return Choice{Backend: b, auto: true}, nil
			}
			why = append(why, fmt.Sprintf("%v: %v", api, err))
		}
		return Choice{Backend: cpu.New(), NotGL: strings.Join(why, "; "), auto: true}, nil
	}
	return Choice{}, fmt.Errorf("compute.backend %q: want auto, gl, gles or cpu", cfg.Compute.Backend)
}

// open opens api, refusing a software renderer when gpuOnly, and
// self-tests it.
func (g GL) open(api gl.API, cfg *config.Config, gpuOnly bool) (*gl.Backend, error) {
	b, err := g.Open(api)
	if err != nil {
		return nil, err
	}
	if in := b.Info(); gpuOnly && g.Software(in) {
		b.Close()
		return nil, fmt.Errorf("%s is a software renderer, slower than the CPU backend (compute.backend: %s uses it anyway)",
			in.Renderer, map[gl.API]string{gl.GL43: "gl", gl.GLES31: "gles"}[api])
	}
	if err := g.SelfTest(b); err != nil {
		b.Close()
		return nil, err
	}
	b.FenceTimeout = cfg.Compute.GLFenceTimeout
	return b, nil
}
