package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/safetensors"
)

func pngBytes(w, h int) []byte {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	png.Encode(&b, m)
	return b.Bytes()
}

func TestAPIOverTheSocket(t *testing.T) {
	cfg := testConfig(t)
	cfg.Daemon.MaxRequestBytes = 4096
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "training and published weights", func() bool {
		st, err := s.client.Status(ctx)
		return err == nil && st.Training.Step >= 4 && st.Training.ModelStep >= 2 && st.Camera.Assigned > 20
	})
	st, err := s.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backend.Name != "cpu" || st.Camera.State != capture.StateStreaming || st.Camera.Source != "pattern" ||
		st.Training.State != "training" || math.IsNaN(st.Training.Loss) || st.Training.Loss <= 0 || st.Clusters.K != cfg.Model.Prototypes || st.Clusters.Used == 0 {
		t.Fatalf("status %+v", st)
	}

	// Events: one per assigned frame, in order.
	var evs []api.Assignment
	ectx, cancel := context.WithCancel(ctx)
	err = s.client.Events(ectx, func(a api.Assignment) error {
		evs = append(evs, a)
		if len(evs) == 5 {
			cancel()
		}
		return nil
	})
	if err != nil || len(evs) != 5 {
		t.Fatalf("events: %v (%d)", err, len(evs))
	}
	for i := 1; i < 5; i++ {
		if evs[i].Seq <= evs[i-1].Seq || evs[i].Cluster < 0 || evs[i].Cluster >= cfg.Model.Prototypes || evs[i].Label == nil {
			t.Fatalf("events %+v", evs)
		}
	}

	// Prototypes: safetensors of [K, D] unit rows.
	b, err := s.client.Prototypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	p := f.Tensors["prototypes"]
	if p.Shape[0] != cfg.Model.Prototypes || p.Shape[1] != cfg.Model.ProjDim || f.Metadata["preset"] != "tiny" || f.Metadata["step"] == "" {
		t.Fatalf("prototypes %v %v", p.Shape, f.Metadata)
	}
	var n2 float64
	for _, v := range p.Data[:cfg.Model.ProjDim] {
		n2 += float64(v) * float64(v)
	}
	if math.Abs(n2-1) > 1e-3 {
		t.Fatalf("prototype row norm^2 %v", n2)
	}

	// Assign an uploaded image.
	a, err := s.client.Assign(ctx, pngBytes(20, 30))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range a.Probs {
		sum += float64(v)
	}
	if len(a.Probs) != cfg.Model.Prototypes || math.Abs(sum-1) > 1e-4 || float64(a.Probs[a.Cluster]) != float32ToF(a.Confidence) {
		t.Fatalf("assign: cluster %d conf %v, %d probs summing to %v", a.Cluster, a.Confidence, len(a.Probs), sum)
	}

	// Bad requests: JSON errors with 4xx codes.
	for _, tc := range []struct {
		method, path string
		body         []byte
		code         int
		msg          string
	}{
		{"POST", "/v1/assign", []byte("not an image"), 400, "not a PNG"},
		{"POST", "/v1/assign", nil, 400, "empty body"},
		{"POST", "/v1/assign", append(pngBytes(10, 10)[:40], 0), 400, "image"},
		{"POST", "/v1/assign", make([]byte, 5000), 413, "4096-byte limit"},
		{"GET", "/v1/assign", nil, 405, "wants POST"},
		{"GET", "/v1/nope", nil, 404, "no endpoint"},
		{"GET", "/status", nil, 404, "no endpoint"},
		{"GET", "/v1/clusters?exemplars=maybe", nil, 400, "exemplars"},
	} {
		code, e := rawRequest(t, cfg.Daemon.Socket, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, code, e.Error, tc.code, tc.msg)
		}
	}
	cl, err := s.client.Clusters(ctx, true)
	if err != nil || len(cl.Clusters) == 0 || len(cl.Clusters[0].Exemplars) == 0 {
		t.Fatalf("clusters: %v %+v", err, cl)
	}
	if _, err := png.Decode(bytes.NewReader(cl.Clusters[0].Exemplars[0])); err != nil {
		t.Fatalf("exemplar is not a PNG: %v", err)
	}
	m, err := s.client.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"swavd_frames_assigned_total ", "swavd_assign_latency_seconds_bucket{le=", "swavd_assign_latency_seconds_sum ",
		"swavd_assign_latency_seconds_count ", "process_resident_memory_bytes ", "process_open_fds ", "go_gc_duration_seconds"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
}

func float32ToF(v float64) float64 { return float64(float32(v)) }

func rawRequest(t *testing.T, socket, method, path string, body []byte) (int, api.Error) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	req, _ := http.NewRequest(method, "http://swavd"+path, bytes.NewReader(body))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: error body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, e
}

// Writes are refused for a peer that is not root, not swavd's user and not
// in the group; allowed for a member.
func TestWritesNeedRootOrTheGroup(t *testing.T) {
	post := func(h http.Handler, pc peerCred) (int, string) {
		req := httptest.NewRequest("POST", "/v1/checkpoint", nil)
		ctx, cancel := context.WithTimeout(context.WithValue(req.Context(), credKey{}, pc), 60*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		return rec.Code, rec.Body.String()
	}
	stranger := peerCred{uid: 4242, gid: 4242, ok: true}
	noGroup := testConfig(t)
	d, err := New(Options{Config: noGroup, Backend: cpu.New(), Source: patternSource(t, 10), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if code, body := post(d.Handler(), stranger); code != 403 || !strings.Contains(body, "uid 4242") {
		t.Fatalf("stranger without a group configured: %d %s", code, body)
	}
	// A running daemon with a writer group: the group's member gets the
	// checkpoint (exactly 200), the others 403.
	cfg := testConfig(t)
	cfg.Daemon.SocketGroup = "root"
	s := startDaemon(t, cfg, Options{})
	h := s.d.Handler()
	if code, body := post(h, stranger); code != 403 || !strings.Contains(body, "not in group root") {
		t.Fatalf("stranger outside the group: %d %s", code, body)
	}
	if code, body := post(h, peerCred{uid: 4242, gid: 0, ok: true}); code != http.StatusOK || !strings.Contains(body, `"checkpoint"`) {
		t.Fatalf("member of the group: %d %s, want 200 and the checkpoint", code, body)
	}
	if code, _ := post(h, peerCred{}); code != 403 {
		t.Fatalf("unknown credentials allowed: %d", code)
	}
	// Reads need no group.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/status", nil)
	h.ServeHTTP(rec, req.WithContext(context.WithValue(req.Context(), credKey{}, stranger)))
	if rec.Code != 200 {
		t.Fatalf("status for a stranger: %d", rec.Code)
	}
}

// FuzzAPIRequest: whatever the method, path and body, the API answers
// with JSON (or its documented non-JSON bodies) and never a 5xx.
func FuzzAPIRequest(f *testing.F) {
	cfg := testConfig(f)
	cfg.Daemon.MaxRequestBytes = 1 << 16
	d, err := New(Options{Config: cfg, Backend: cpu.New(), Source: patternSource(f, 10), Version: "test"})
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	h := d.Handler()
	f.Add("POST", "/v1/assign", pngBytes(8, 8))
	f.Add("POST", "/v1/assign", []byte("P5\n2 2\n255\n\x00\x01\x02\x03"))
	f.Add("POST", "/v1/assign", []byte("P6\n99999 99999\n255\n"))
	f.Add("POST", "/v1/assign", []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add("GET", "/v1/clusters?exemplars=1", []byte{})
	f.Add("GET", "/v1/status", []byte{})
	f.Add("DELETE", "/v1/../v1/status", []byte{})
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if path == "/v1/events" || path == "/v1/checkpoint" || strings.ContainsAny(path, " ?#\x00") || !strings.HasPrefix(path, "/") {
			return // streams and trainer round trips are tested elsewhere
		}
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}\x00") {
			return
		}
		req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		req.Method, req.URL.Path = method, path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e api.Error
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: %d with a non-JSON error %q", method, path, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzParseAssign: uploaded bytes either decode to a working-size frame
// or give a 400 (or 413: over the pixel limit).
func FuzzParseAssign(f *testing.F) {
	f.Add(pngBytes(5, 7))
	f.Add([]byte("P2\n2 1\n255\n0 255\n"))
	f.Add([]byte{0xFF, 0xD8})
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := parseAssign(b, 28, 1, 1<<20)
		if err != nil {
			if ae, ok := err.(*apiError); !ok || ae.code != 400 && ae.code != 413 {
				t.Fatalf("error %v is not a 400 or 413", err)
			}
			return
		}
		if im.W != 28 || im.H != 28 || im.C != 1 || im.Validate() != nil {
			t.Fatalf("frame %dx%dx%d", im.W, im.H, im.C)
		}
	})
}

// pngHeader is the start of a PNG declaring w x h 8-bit RGB pixels: all
// that DecodeConfig reads, as a hostile upload would send it.
func pngHeader(w, h uint32) []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// Uploads are bounded: an image declaring more than
// daemon.max_upload_pixels is refused with 413 from its header, a PPM
// header whose body cannot hold it with 400, and no more than
// cap(d.uploads) uploads are read and decoded at once; the others wait.
func TestUploadsAreBounded(t *testing.T) {
	cfg := testConfig(t)
	cfg.Daemon.MaxUploadPixels = 1024 * 1024
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	for name, c := range map[string]struct {
		body []byte
		code int
	}{
		"png 4096x4096":             {pngHeader(4096, 4096), 413},
		"ppm 2048x2048":             {[]byte("P6\n2048 2048\n255\n"), 413},
		"ppm 1000x1000 in 17 bytes": {[]byte("P6\n1000 1000\n255\n"), 400},
	} {
		_, err := s.client.Assign(ctx, c.body)
		if api.StatusOf(err) != c.code {
			t.Errorf("%s: %v, want %d", name, err, c.code)
		}
	}
	for range cap(s.d.uploads) { // every decoder busy
		s.d.uploads <- struct{}{}
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if a, err := s.client.Assign(short, pngBytes(20, 30)); err == nil {
		t.Fatalf("an upload was decoded while every slot was taken: %+v", a)
	}
	for range cap(s.d.uploads) {
		<-s.d.uploads
	}
	if _, err := s.client.Assign(ctx, pngBytes(20, 30)); err != nil {
		t.Fatalf("with the slots free again: %v", err)
	}
}

// A handler's panic is a JSON 500 and a log line, not a dropped
// connection; Go's own pre-handler errors stay plain text, as the README
// says.
func TestPanicsAreJSONAndPreHandlerErrorsAreDocumented(t *testing.T) {
	var logged string
	h := recoverJSON(logging.Printf(func(f string, a ...any) { logged = fmt.Sprintf(f, a...) }), func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	var e api.Error
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, "boom") || !strings.Contains(logged, "panic: boom") {
		t.Fatalf("%d %q, logged %q", rec.Code, rec.Body, logged)
	}

	cfg := testConfig(t)
	startDaemon(t, cfg, Options{})
	c, err := net.Dial("unix", cfg.Daemon.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "NOT A REQUEST\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("a malformed request line: %d %s; the README says Go answers it with a plain-text 400", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
