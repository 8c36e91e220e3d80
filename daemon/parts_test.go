package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/internal/logging"
)

func gray(size int, v uint8, label int) *capture.Image {
	im := &capture.Image{W: size, H: size, C: 1, Pix: make([]uint8, size*size), Label: label}
	for i := range im.Pix {
		im.Pix[i] = v
	}
	return im
}

func TestRingDropsOldestAndCounts(t *testing.T) {
	r := NewRing(3)
	for i := 1; i <= 5; i++ {
		r.Push(Frame{Seq: uint64(i)})
	}
	if r.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", r.Dropped())
	}
	for want := uint64(3); want <= 5; want++ {
		f, ok := r.Pop(context.Background())
		if !ok || f.Seq != want {
			t.Fatalf("popped %d, want %d", f.Seq, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, ok := r.Pop(ctx); ok {
		t.Fatal("Pop on an empty ring returned a frame")
	}
}

// The recent part holds exactly the newest frames; the reservoir holds a
// uniform sample of the older ones (checked on its mean); no frame twice.
func TestReplayRecentAndReservoir(t *testing.T) {
	r := NewReplay(1000, 4, 1, 0.2, 1)
	if err := r.Add(gray(4, 0, -1)); err != nil || r.Len() != 1 {
		t.Fatalf("one frame: len %d, %v", r.Len(), err)
	}
	r = NewReplay(1000, 4, 1, 0.2, 1)
	const n = 20000
	for i := 0; i < n; i++ {
		if err := r.Add(gray(4, uint8(i%256), i)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Len() != 1000 {
		t.Fatalf("len %d", r.Len())
	}
	recent := map[int]bool{}
	for _, l := range r.labels[:200] {
		recent[int(l)] = true
	}
	for i := n - 200; i < n; i++ {
		if !recent[i] {
			t.Fatalf("frame %d of the newest 200 is not in the recent part", i)
		}
	}
	var sum float64
	for _, l := range r.labels[200:] {
		if recent[int(l)] {
			t.Fatalf("frame %d is stored twice", l)
		}
		sum += float64(l)
	}
	// Uniform over the n-200 older frames: mean ~9900, standard error
	// n/sqrt(12*800) ~ 204.
	if mean := sum / 800; math.Abs(mean-(n-200)/2) > 1000 {
		t.Fatalf("reservoir mean label %.0f, want about %d", mean, (n-200)/2)
	}
	if err := r.Add(gray(5, 0, 0)); err == nil {
		t.Fatal("a frame of the wrong size was accepted")
	}
	dst := make([]*capture.Image, 8)
	if err := r.Sample(dst, rand.New(rand.NewPCG(1, 2))); err != nil || dst[7].W != 4 {
		t.Fatalf("sample: %v", err)
	}
}

func TestReplaySaveRestore(t *testing.T) {
	r := NewReplay(50, 4, 1, 0.5, 1)
	for i := 0; i < 70; i++ {
		r.Add(gray(4, uint8(i), i))
	}
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	r2 := NewReplay(50, 4, 1, 0.5, 1)
	if err := r2.Restore(bytes.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if r2.Len() != r.Len() || !bytes.Equal(r2.pix, r.pix) || r2.seen != r.seen {
		t.Fatal("restored buffer differs")
	}
	if err := NewReplay(60, 4, 1, 0.5, 1).Restore(bytes.NewReader(b.Bytes())); err == nil {
		t.Fatal("a buffer of another geometry was restored")
	}
	if err := r2.Restore(bytes.NewReader(b.Bytes()[:len(b.Bytes())-10])); err == nil {
		t.Fatal("a truncated buffer was restored")
	}
}

// A replay file holds the filled slots only (it held all 20,000 before:
// 15.8 MB for 595 frames), and a file of the first format still loads.
func TestReplayFileHoldsTheFilledSlotsOnly(t *testing.T) {
	const frame = 28 * 28
	for _, n := range []int{0, 595, 9000} { // ring part filled; ring full and reservoir part filled
		r := NewReplay(20000, 28, 1, 0.25, 1)
		for i := 0; i < n; i++ {
			r.Add(gray(28, uint8(i), i%10))
		}
		var b bytes.Buffer
		if _, err := r.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		if want := len(replayMagic) + 9*8 + n*(4+frame); b.Len() != want {
			t.Errorf("%d frames: file of %d bytes, want %d", n, b.Len(), want)
		}
		r2 := NewReplay(20000, 28, 1, 0.25, 1)
		if err := r2.Restore(bytes.NewReader(b.Bytes())); err != nil {
			t.Fatal(err)
		}
		if r2.Len() != n || !bytes.Equal(r2.pix, r.pix) || !slices.Equal(r2.labels, r.labels) || r2.seen != r.seen {
			t.Fatalf("%d frames: restored buffer differs", n)
		}
	}
	// Version 1: every slot.
	r := NewReplay(8, 2, 1, 0.5, 1)
	for i := 0; i < 3; i++ {
		r.Add(gray(2, uint8(10+i), i))
	}
	var v1 bytes.Buffer
	v1.WriteString(replayMagicV1)
	binary.Write(&v1, binary.LittleEndian, []uint64{2, 2, 1, 8, 4, uint64(r.recentPos), uint64(r.recentLen), 0, 0})
	binary.Write(&v1, binary.LittleEndian, r.labels)
	v1.Write(r.pix)
	r2 := NewReplay(8, 2, 1, 0.5, 1)
	if err := r2.Restore(&v1); err != nil {
		t.Fatal(err)
	}
	if r2.Len() != 3 || !bytes.Equal(r2.pix, r.pix) || !slices.Equal(r2.labels, r.labels) {
		t.Fatal("a version 1 file restored differently")
	}
}

func TestStatsWindowEntropyAndSaveRestore(t *testing.T) {
	s := NewStats(4, 4, 2)
	now := time.Now()
	for i, c := range []int{0, 0, 1, 2, 3, 3} {
		s.Add(c, 0.5, now, gray(2, uint8(i), -1))
	}
	u := s.Usage()
	if u.Used != 4 || u.RecentUsed != 3 { // window holds 1, 2, 3, 3
		t.Fatalf("usage %+v", u)
	}
	if want := -(2*(1.0/6)*math.Log(1.0/6) + 2*(2.0/6)*math.Log(2.0/6)); math.Abs(u.Entropy-want) > 1e-12 {
		t.Fatalf("entropy %v, want %v", u.Entropy, want)
	}
	cl := s.Clusters(true)
	if len(cl) != 4 || cl[0].Total != 2 || len(cl[0].Exemplars) != 2 || len(cl[1].Exemplars) != 1 {
		t.Fatalf("clusters %+v", cl)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewStats(4, 4, 2)
	if err := json.Unmarshal(b, s2); err != nil {
		t.Fatal(err)
	}
	if s2.Usage() != u {
		t.Fatalf("restored usage %+v, want %+v", s2.Usage(), u)
	}
	if err := json.Unmarshal(b, NewStats(5, 4, 2)); err == nil {
		t.Fatal("statistics for 4 clusters loaded into 5")
	}
}

func TestSoftmax(t *testing.T) {
	p := make([]float32, 3)
	c, conf := softmax([]float32{0.1, 0.3, 0.2}, 0.1, p)
	e := []float64{math.Exp(-2), 1, math.Exp(-1)}
	sum := e[0] + e[1] + e[2]
	if c != 1 || math.Abs(conf-1/sum) > 1e-6 || math.Abs(float64(p[0])-e[0]/sum) > 1e-6 {
		t.Fatalf("softmax: %d %v %v", c, conf, p)
	}
}

// --socket naming an existing file, directory or link must not remove it
// (before, a regular file there was deleted).
func TestListenRefusesWhatIsNotASocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "precious.txt")
	os.WriteFile(file, []byte("keep me"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	for _, p := range []string{file, link, sub} {
		if ln, err := Listen(p, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
			if ln != nil {
				ln.Close()
			}
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the file was touched: %v", err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("the link was removed: %v", err)
	}
	// A stale socket (nothing serving) is still replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := Listen(stale, "")
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if ln, err = Listen(stale, ""); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()
}

// Events a slow reader loses are counted in status and metrics.
func TestLostEventsAreShown(t *testing.T) {
	cfg := testConfig(t)
	d, err := New(Options{Config: cfg, Backend: cpu.New(), Source: patternSource(t, 10), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ch, _ := d.events.subscribe() // never read
	defer d.events.unsubscribe(ch)
	for i := 0; i < cap(ch)+44; i++ {
		d.events.publish(api.Assignment{Seq: uint64(i)})
	}
	if ev := d.Status().Events; ev.Subscribers != 1 || ev.Lost != 44 {
		t.Fatalf("status events %+v, want 1 stream and 44 lost", ev)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics", nil))
	if !strings.Contains(rec.Body.String(), "swavd_events_lost_total 44\n") {
		t.Fatalf("metrics:\n%s", rec.Body)
	}
}

// What goes wrong with the source reaches the log, not only status: here
// a replay file that ends early.
func TestCaptureErrorsAreLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "set-images-idx3-ubyte")
	var b bytes.Buffer
	for _, v := range []uint32{0x803, 5, 28, 28} {
		b.Write([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b.Write(make([]byte, 2*28*28+100)) // 5 images promised, 2 and a part there
	os.WriteFile(path, b.Bytes(), 0o644)
	src, err := capture.OpenStream("idx:"+path, capture.StreamOptions{FPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	logf := func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&logs, f+"\n", a...); mu.Unlock() }
	startDaemon(t, testConfig(t), Options{Source: src, Log: logging.Printf(logf)})
	waitFor(t, "the truncation logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "file is truncated") && strings.Contains(logs.String(), "corrupt frames skipped")
	})
}

// A configuration within every range whose replay buffer cannot be
// allocated is refused by New with the keys named (it panicked in
// NewReplay: makeslice).
func TestOversizedReplayIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.Input.Size, cfg.Input.Channels, cfg.Daemon.ReplaySize = 4096, 3, 1<<24
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Config: cfg, Backend: cpu.New(), Source: patternSource(t, 200), Log: logging.Printf(t.Logf)})
	if err == nil || !strings.Contains(err.Error(), "daemon.replay_size") {
		t.Fatalf("New = %v, want the replay buffer refused", err)
	}
}

// badEvery gives every nth frame a pixel buffer that does not match its size.
type badEvery struct {
	capture.Source
	n, i int
}

func (b *badEvery) Next(ctx context.Context) (*capture.Image, error) {
	im, err := b.Source.Next(ctx)
	if b.i++; err == nil && b.i%b.n == 0 {
		bad := *im
		bad.Pix = bad.Pix[:len(bad.Pix)/2]
		return &bad, nil
	}
	return im, err
}

// A frame the source gives but that fails validation is counted among the
// corrupt frames and logged (it was skipped silently).
func TestInvalidFramesAreCountedAndLogged(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	logf := func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&logs, f+"\n", a...); mu.Unlock() }
	s := startDaemon(t, testConfig(t), Options{Source: &badEvery{Source: patternSource(t, 200), n: 3}, Log: logging.Printf(logf)})
	waitFor(t, "invalid frames counted", func() bool {
		st, err := s.client.Status(context.Background())
		return err == nil && st.Camera.Corrupt >= 5 && st.Camera.FramesIn >= 10
	})
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "capture: frame rejected: capture: bad image") {
		t.Errorf("log: %s", logs.String())
	}
}
