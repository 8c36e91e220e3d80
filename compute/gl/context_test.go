package gl

import (
	"strings"
	"testing"
)

// openOrSkip opens a context, skipping only when EGL has no display at all
// or the driver has no context of api (a GLES-only driver asked for GL).
func openOrSkip(t *testing.T, api API) *context {
	t.Helper()
	c, err := openContext(api, AnyPlatform)
	skipUnavailable(t, api, err)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContextReportsRendererAndLimits(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) {
			c := openOrSkip(t, api)
			in := c.info
			t.Logf("%s via EGL %s: %s, %s, GLSL %s, limits %+v", in.API, in.Platform, in.Renderer, in.Version, in.GLSL, in.Limits)
			if in.Renderer == "" || in.Version == "" || in.Limits.MaxInvocations < 128 || in.Limits.MaxSSBOBindings < 4 {
				t.Errorf("%v: implausible info %+v", api, in)
			}
			c.close()
		})
	}
}

// TestCompileErrorNamesShaderAndLog: a shader the driver rejects gives an
// error with the program's name and the driver's log, not a crash.
func TestCompileErrorNamesShaderAndLog(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) {
			c := openOrSkip(t, api)
			defer c.close()
			var err error
			c.do(func() { _, err = c.compile("elementwise", map[string]string{"WG": "0", "OP_AXPY": "1"}) })
			if err == nil {
				t.Fatal("a workgroup of size 0 compiled")
			}
			for _, want := range []string{"elementwise", "OP_AXPY", c.info.Renderer} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			t.Log(err)
		})
	}
}

func TestSoftwareRenderers(t *testing.T) {
	for r, want := range map[string]bool{
		"llvmpipe (LLVM 15.0.6, 256 bits)":     true,
		"softpipe":                             true,
		"Software Rasterizer":                  true,
		"NVIDIA H100 80GB HBM3/PCIe/SSE2":      false,
		"NVIDIA Tegra Orin (nvgpu)/integrated": false,
		"V3D 4.2":                              false,
		"Mali-G610 (Panfrost)":                 false,
	} {
		if got := (Info{Renderer: r}).Software(); got != want {
			t.Errorf("%q: software %v, want %v", r, got, want)
		}
	}
}
