package gl

import (
	"errors"
	"testing"

	"github.com/swavd/swavd/compute/computetest"
	"github.com/swavd/swavd/compute/cpu"
)

// backendOrSkip opens the GL backend for api; the test is skipped only when
// no EGL display can be opened at all.
func backendOrSkip(t *testing.T, api API) *Backend {
	t.Helper()
	b, err := New(api)
	if errors.Is(err, ErrNoDisplay) {
		t.Skipf("no EGL display can be opened here, so the GL backend cannot run: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var apis = []API{GL43, GLES31}

func TestParityWithCPU(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) {
			b := backendOrSkip(t, api)
			t.Logf("%s on %s", b.Info().Version, b.Info().Renderer)
			computetest.TestParity(t, cpu.New(), b, 1e-4)
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReferenceVectors(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) { computetest.TestVectors(t, backendOrSkip(t, api)) })
	}
}
