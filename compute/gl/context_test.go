package gl

import (
	"errors"
	"testing"
)

// openOrSkip opens a context, skipping only when EGL has no display at all.
func openOrSkip(t *testing.T, api API) *context {
	t.Helper()
	c, err := openContext(api, AnyPlatform)
	if errors.Is(err, ErrNoDisplay) {
		t.Skipf("no EGL display can be opened here, so the GL backend cannot run: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContextReportsRendererAndLimits(t *testing.T) {
	for _, api := range []API{GL43, GLES31} {
		c := openOrSkip(t, api)
		in := c.info
		t.Logf("%s via EGL %s: %s, %s, GLSL %s, limits %+v", in.API, in.Platform, in.Renderer, in.Version, in.GLSL, in.Limits)
		if in.Renderer == "" || in.Version == "" || in.Limits.MaxInvocations < 128 || in.Limits.MaxSSBOBindings < 4 {
			t.Errorf("%v: implausible info %+v", api, in)
		}
		c.close()
	}
}
