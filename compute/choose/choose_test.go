package choose

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swavd/swavd/compute/gl"
	"github.com/swavd/swavd/config"
)

func cfgWith(t *testing.T, backend string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{Preset: "tiny", Environ: []string{"SWAVD_COMPUTE_BACKEND=" + backend, "SWAVD_COMPUTE_GL_FENCE_TIMEOUT=7s"}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// glOrSkip skips where no GL context can be made at all.
func glOrSkip(t *testing.T) {
	b, err := gl.New(gl.GLES31)
	if errors.Is(err, gl.ErrNoDisplay) || errors.Is(err, gl.ErrNoContext) {
		t.Skipf("no GL here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestCPU(t *testing.T) {
	c, err := Open(cfgWith(t, "cpu"))
	if err != nil || c.Backend.Name() != "cpu" || c.NotGL != "" || c.Fallback() != nil || c.Status().Name != "cpu" {
		t.Fatalf("%+v %v", c, err)
	}
}

// auto refuses a software renderer (llvmpipe here), says why for each API
// in status, and has nothing to fall back to.
func TestAutoRefusesSoftwareRenderers(t *testing.T) {
	glOrSkip(t)
	c, err := Open(cfgWith(t, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Name != "cpu" || !strings.Contains(st.Fallback, "OpenGL 4.3 core: ") || !strings.Contains(st.Fallback, "OpenGL ES 3.1: ") ||
		!strings.Contains(st.Fallback, "software renderer") || c.Fallback() != nil {
		t.Fatalf("auto on a software renderer: %+v, status %+v", c, st)
	}
}

// gl and gles take the renderer they are given (a software one too), with
// the configured fence timeout, and fail when the self-test fails; they
// never fall back.
func TestExplicitGLMustWork(t *testing.T) {
	glOrSkip(t)
	for _, name := range []string{"gl", "gles"} {
		c, err := Open(cfgWith(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g := c.Backend.(*gl.Backend)
		if st := c.Status(); st.Renderer == "" || st.GL == "" || st.Fallback != "" || c.Fallback() != nil || g.FenceTimeout != 7*time.Second {
			t.Errorf("%s: status %+v, fence timeout %v", name, st, g.FenceTimeout)
		}
		c.Backend.Close()
		broken := Real
		broken.SelfTest = func(*gl.Backend) error { return errors.New("gl self-test: matmul differs from the CPU by 0.5") }
		if _, err := broken.Choose(cfgWith(t, name)); err == nil || !strings.Contains(err.Error(), "matmul differs") {
			t.Errorf("%s with a failing self-test: %v", name, err)
		}
	}
}

// On a GPU (the renderer taken for one here) auto takes the first API
// whose self-test passes and falls back to the CPU if it fails mid-run;
// when no API works it takes the CPU and keeps every reason.
func TestAutoOnAGPU(t *testing.T) {
	glOrSkip(t)
	gpu := Real
	gpu.Software = func(gl.Info) bool { return false }
	var tested []string
	gpu.SelfTest = func(b *gl.Backend) error {
		tested = append(tested, b.Info().API)
		if b.Info().API == gl.GL43.String() {
			return errors.New("gl self-test: sinkhorn differs from the CPU by 0.2")
		}
		return nil
	}
	c, err := gpu.Choose(cfgWith(t, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Backend.Close()
	if g, ok := c.Backend.(*gl.Backend); !ok || g.Info().API != gl.GLES31.String() || len(tested) != 2 || c.NotGL != "" {
		t.Fatalf("auto took %s after self-testing %v", c.Backend.Name(), tested)
	}
	if fb := c.Fallback(); fb == nil || fb().Name() != "cpu" {
		t.Fatal("auto on GL has no CPU fallback")
	}
	none := gpu
	none.Open = func(api gl.API) (*gl.Backend, error) { return nil, errors.New("no driver for " + api.String()) }
	c, err = none.Choose(cfgWith(t, "auto"))
	if err != nil || c.Backend.Name() != "cpu" || !strings.Contains(c.NotGL, "no driver for OpenGL 4.3 core") || !strings.Contains(c.NotGL, "no driver for OpenGL ES 3.1") {
		t.Fatalf("auto without GL: %+v %v", c, err)
	}
}
