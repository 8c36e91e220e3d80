package gl

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swavd/swavd/compute"
	"github.com/swavd/swavd/compute/computetest"
	"github.com/swavd/swavd/compute/cpu"
)

// backendOrSkip opens the GL backend for api; the test is skipped only when
// no EGL display can be opened at all.
func backendOrSkip(t testing.TB, api API) *Backend {
	t.Helper()
	b, err := New(api)
	skipUnavailable(t, api, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// skipUnavailable skips when err says there is no GL here at all, or no
// context of api on this driver (softpipe has GLES 3.1 but no GL 4.3),
// saying which.
func skipUnavailable(t testing.TB, api API, err error) {
	t.Helper()
	switch {
	case errors.Is(err, ErrNoDisplay):
		t.Skipf("no EGL display can be opened here, so the GL backend cannot run: %v", err)
	case errors.Is(err, ErrNoContext):
		t.Skipf("this driver offers no %v context (a display opened): %v", api, err)
	}
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

// TestSurfacelessPlatform runs the reference vectors on a context made
// through Mesa's surfaceless platform alone (the device platform is tried
// first otherwise); skipped where that platform does not exist.
func TestSurfacelessPlatform(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) {
			b, err := NewOn(api, SurfacelessPlatform)
			if errors.Is(err, ErrNoDisplay) {
				t.Skipf("no surfaceless EGL platform here: %v", err)
			}
			skipUnavailable(t, api, err)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Info().Platform != "surfaceless" {
				t.Fatalf("platform %q", b.Info().Platform)
			}
			computetest.TestVectors(t, b)
			computetest.TestParity(t, cpu.New(), b, 1e-4)
		})
	}
}

func TestReferenceVectors(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) { computetest.TestVectors(t, backendOrSkip(t, api)) })
	}
}

// skewedMatMul is the CPU backend with a matrix product that is off by 1%.
type skewedMatMul struct{ compute.Backend }

func (s skewedMatMul) MatMul(c, a, b compute.Tensor, transA, transB bool, alpha, beta float32) {
	s.Backend.MatMul(c, a, b, transA, transB, alpha*1.01, beta)
}

// The self-test that `auto` runs passes on a working driver and names the
// operation that disagrees with the reference.
func TestSelfTest(t *testing.T) {
	for _, api := range apis {
		t.Run(api.String(), func(t *testing.T) {
			b := backendOrSkip(t, api)
			if err := SelfTest(b, cpu.New()); err != nil {
				t.Fatal(err)
			}
			err := SelfTest(b, skewedMatMul{cpu.New()})
			if err == nil || !strings.Contains(err.Error(), "matmul differs") {
				t.Fatalf("against a product off by 1%%: %v", err)
			}
		})
	}
}

// A fence the GPU never reaches ends the wait with an error after
// compute.gl_fence_timeout, instead of a loop that never ends.
func TestFenceWaitTimesOut(t *testing.T) {
	calls := 0
	never := func(uint64) uint32 { calls++; time.Sleep(10 * time.Millisecond); return glTimeoutExpired }
	err := waitFence(never, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "compute.gl_fence_timeout") || calls < 5 {
		t.Fatalf("after %d waits: %v", calls, err)
	}
	signalled := 0
	if err := waitFence(func(uint64) uint32 {
		if signalled++; signalled < 3 {
			return glTimeoutExpired
		}
		return 0x911A // GL_CONDITION_SATISFIED
	}, time.Minute); err != nil {
		t.Fatalf("a fence reached on the third wait: %v", err)
	}
	if err := waitFence(func(uint64) uint32 { return glWaitFailed }, 0); !errors.Is(err, errWaitFailed) {
		t.Fatalf("a failed wait: %v", err)
	}
}

// The self-test catches a driver that is right for each operation alone
// and wrong for one that follows dispatches of the same program with other
// uniforms: zink over lavapipe with its default uniform inlining (Mesa
// 22.3) fails it, naming the operation, and passes with inlining off. Run
// in child processes, because the driver is chosen when EGL loads; skipped
// where zink is not installed (Debian: mesa-vulkan-drivers).
func TestSelfTestCatchesZinkOrderFault(t *testing.T) {
	if os.Getenv("ZINK_SELFTEST_CHILD") != "" {
		b, err := New(GLES31)
		if err != nil {
			fmt.Println("open:", err)
			return
		}
		defer b.Close()
		fmt.Println("renderer:", b.Info().Renderer)
		fmt.Println("self-test:", SelfTest(b, cpu.New()))
		return
	}
	child := func(env ...string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSelfTestCatchesZinkOrderFault$")
		cmd.Env = append(os.Environ(), append([]string{"ZINK_SELFTEST_CHILD=1", "GALLIUM_DRIVER=zink", "LIBGL_ALWAYS_SOFTWARE=1"}, env...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v: %s", err, out)
		}
		return string(out)
	}
	out := child()
	if !strings.Contains(out, "renderer: zink") {
		t.Skipf("zink is not available here: %s", strings.TrimSpace(out))
	}
	if !strings.Contains(out, "self-test: gl self-test:") || !strings.Contains(out, "differs from the CPU") {
		t.Fatalf("the self-test passed on zink with uniform inlining: %s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "self-test:") || strings.HasPrefix(line, "renderer:") {
			t.Logf("zink, default settings: %s", line)
		}
	}
	if out := child("ZINK_INLINE_UNIFORMS=false"); !strings.Contains(out, "self-test: <nil>") {
		t.Fatalf("the self-test failed on zink with inlining off: %s", out)
	}
}

// TestOnVirgl reruns the GL tests on virgl: Mesa's virpipe driver sends
// the shaders, as TGSI, to a virgl_test_server that turns them back into
// GLSL for its own GL (llvmpipe here), a third compiler path beside
// llvmpipe and softpipe. The test starts and stops its own server; skipped
// where virgl-server is not installed.
func TestOnVirgl(t *testing.T) {
	if os.Getenv("GALLIUM_DRIVER") != "" {
		t.Skip("the tests already run on the driver GALLIUM_DRIVER names")
	}
	srvPath, err := exec.LookPath("virgl_test_server")
	if err != nil {
		t.Skip("no virgl_test_server (Debian: virgl-server)")
	}
	const sock = "/tmp/.virgl_test" // virpipe's fixed default
	srv := exec.Command(srvPath, "--use-egl-surfaceless")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // it forks a renderer per client
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-srv.Process.Pid, syscall.SIGKILL); srv.Wait() }()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode().Type() == os.ModeSocket {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("virgl_test_server did not make its socket")
		}
	}
	child := exec.Command(os.Args[0], "-test.v", "-test.run=^(TestParityWithCPU|TestReferenceVectors|TestSelfTest|TestContextReportsRendererAndLimits|TestCompileErrorNamesShaderAndLog)$")
	child.Env = append(os.Environ(), "GALLIUM_DRIVER=virpipe")
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("the GL tests on virgl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "via EGL device: virgl (") || strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("the GL tests did not all run on virgl:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "via EGL") || strings.HasPrefix(strings.TrimSpace(line), "--- PASS") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// The self-test that runs at start dispatches every program the backend
// has, so a uniform a shader lacks fails there, not mid-run.
func TestSelfTestRunsEveryProgram(t *testing.T) {
	b := backendOrSkip(t, GLES31)
	b.SetProfiling(true)
	if err := SelfTest(b, cpu.New()); err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, p := range b.Profile() {
		ran[p.Program] = true
	}
	for _, id := range allPrograms() {
		if !ran[id.family+"/"+id.op] {
			t.Errorf("the self-test does not run %v", id)
		}
	}
}

// A uniform the Go side sets that the shader does not declare is an error
// naming both (GL would ignore it and leave the value unset).
func TestUnknownUniformFails(t *testing.T) {
	b := backendOrSkip(t, GLES31)
	x := b.New(10)
	b.run("elementwise", "FILL", 10, ts(x), ui("n", 10), uf("alhpa", 1))
	b.Finish()
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), `has no uniform "alhpa"`) || !strings.Contains(err.Error(), "OP_FILL") {
		t.Fatalf("Err() = %v", err)
	}
}
