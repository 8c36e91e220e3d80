package server

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/link"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/safetensors"
)

// fakeDevice is a link.Source with a settable step.
type fakeDevice struct {
	mu     sync.Mutex
	id     string
	step   int
	counts int64
	k, d   int // snapshot size; 4x3 when zero
	// base: the digest its weights started from; wants: asking for the
	// fleet's; loaded: the bases LoadBase took.
	base   string
	wants  bool
	loaded [][]byte
	// exemplars: share a thumbnail per used cluster (grey level = cluster)
	exemplars bool
}

func (f *fakeDevice) Base() (string, bool) { f.mu.Lock(); defer f.mu.Unlock(); return f.base, f.wants }

func (f *fakeDevice) LoadBase(digest string, b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.wants {
		return fmt.Errorf("did not ask for a base")
	}
	f.base, f.wants, f.loaded = digest, false, append(f.loaded, b)
	return nil
}

func (f *fakeDevice) Step() int { f.mu.Lock(); defer f.mu.Unlock(); return f.step }

func (f *fakeDevice) set(step int) { f.mu.Lock(); f.step = step; f.counts += 10; f.mu.Unlock() }

func (f *fakeDevice) Snapshot() (*fleet.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.k > 0 {
		s := baseSnapshot(f.id, f.step, f.counts, f.k, f.d, f.base)
		if f.exemplars {
			n := fleet.ExemplarSize * fleet.ExemplarSize
			s.Exemplars, s.ExemplarChannels = make([]uint8, f.k*n), 1
			for k := 0; k < f.k; k++ {
				for i := 0; i < n; i++ {
					s.Exemplars[k*n+i] = uint8(8 * k)
				}
			}
		}
		return s, nil
	}
	return testSnapshot(f.id, f.step, f.counts), nil
}

func testSnapshot(id string, step int, counts int64) *fleet.Snapshot {
	return sizedSnapshot(id, step, counts, 4, 3)
}

func sizedSnapshot(id string, step int, counts int64, k, d int) *fleet.Snapshot {
	return baseSnapshot(id, step, counts, k, d, "")
}

func baseSnapshot(id string, step int, counts int64, k, d int, base string) *fleet.Snapshot {
	s := &fleet.Snapshot{Meta: fleet.SnapshotMeta{Device: id, Step: step, Preset: "tiny", Arch: "{}", Version: "test",
		TakenAt: time.Unix(int64(step), 0).UTC(), K: k, D: d, Base: base}}
	s.Prototypes = make([]float32, k*d)
	s.Counts, s.Recent = make([]int64, k), make([]int64, k)
	for i := 0; i < k; i++ {
		s.Prototypes[i*d+i%d] = 1
		s.Counts[i] = counts + int64(i)
	}
	return s
}

type fleetEnv struct {
	certs string
	srv   *Server
	url   string
}

func startFleet(t *testing.T, o Options) *fleetEnv {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	o.StateDir, o.Certs, o.NATSListen, o.Log = t.TempDir(), dir, "127.0.0.1:0", logging.Printf(t.Logf)
	srv, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &fleetEnv{certs: dir, srv: srv, url: "tls://" + srv.NATSAddr()}
}

func (e *fleetEnv) issue(t *testing.T, id string) {
	t.Helper()
	if err := certs.Issue(e.certs, id); err != nil {
		t.Fatal(err)
	}
}

func (e *fleetEnv) link(t *testing.T, src *fakeDevice) *link.Link {
	t.Helper()
	cert, key := certs.DeviceFiles(e.certs, src.id)
	l, err := link.Start(link.Options{URL: e.url, DeviceID: src.id, CA: filepath.Join(e.certs, certs.CAFile), Cert: cert, Key: key,
		Version: "test", Preset: "tiny", Share: "prototypes", AnnounceEvery: time.Second, SnapshotEvery: time.Hour, Log: logging.Printf(t.Logf)}, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// dial connects as device id with a raw NATS client (what an attacker
// holding that device's certificate could do).
func (e *fleetEnv) dial(t *testing.T, id string, errs chan<- error) (*nats.Conn, error) {
	t.Helper()
	cert, key := certs.DeviceFiles(e.certs, id)
	tlsCfg, err := certs.ClientTLS(filepath.Join(e.certs, certs.CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return nats.Connect(e.url, nats.Secure(tlsCfg), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func device(t *testing.T, s *Server, id string) *Device {
	d, _, err := s.store.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPullUnchangedAndRetention(t *testing.T) {
	e := startFleet(t, Options{History: 2})
	e.issue(t, "cam-1")
	src := &fakeDevice{id: "cam-1", step: 10}
	l := e.link(t, src)
	// A new device is pulled as soon as it announces itself.
	waitUntil(t, "the first pull", func() bool { d := device(t, e.srv, "cam-1"); return d != nil && d.Digest != "" })
	first := device(t, e.srv, "cam-1")
	if first.Step != 10 || !first.Online(time.Now()) || first.Preset != "tiny" {
		t.Fatalf("device after the first pull: %+v", first)
	}
	b, err := e.srv.store.Snapshot(context.Background(), first.Digest)
	if err != nil || fleet.Digest(b) != first.Digest {
		t.Fatalf("stored snapshot: %v", err)
	}
	// Nothing changed: no bytes, nothing stored.
	before, _ := e.srv.store.SnapshotCount(context.Background())
	r := e.srv.Pull(context.Background(), "cam-1")
	after, _ := e.srv.store.SnapshotCount(context.Background())
	if r.Result != ResultUnchanged || r.Bytes != 0 || r.Stored || after != before {
		t.Fatalf("unchanged pull: %+v, objects %d -> %d", r, before, after)
	}
	if st := l.Status(); st.Unchanged != 1 || st.State != link.StateConnected {
		t.Fatalf("link status %+v", st)
	}
	// New weights: a new snapshot; a third one pushes the first out of the
	// history (2) and its object is deleted.
	var digests []string
	for _, step := range []int{20, 30} {
		src.set(step)
		r := e.srv.Pull(context.Background(), "cam-1")
		if r.Result != ResultSnapshot || !r.Stored || r.Step != step {
			t.Fatalf("pull at step %d: %+v", step, r)
		}
		digests = append(digests, r.Digest)
	}
	d := device(t, e.srv, "cam-1")
	if len(d.Snapshots) != 2 || d.Snapshots[0].Digest != digests[1] || d.Snapshots[1].Digest != digests[0] {
		t.Fatalf("history %+v", d.Snapshots)
	}
	// Every pull is counted under its result: three snapshots, one unchanged.
	if got := testutil.ToFloat64(e.srv.metrics.pulls.WithLabelValues(ResultSnapshot)); got != 3 {
		t.Errorf("snapshot pulls counted: %v, want 3", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.pulls.WithLabelValues(ResultUnchanged)); got != 1 {
		t.Errorf("unchanged pulls counted: %v, want 1", got)
	}
	if _, err := e.srv.store.Snapshot(context.Background(), first.Digest); err == nil {
		t.Fatal("the snapshot that left the history is still stored")
	}
}

// A device's certificate gives it its own two subjects and replies only.
func TestDeviceCannotActForAnother(t *testing.T) {
	e := startFleet(t, Options{})
	e.issue(t, "cam-1")
	e.issue(t, "cam-2")
	src := &fakeDevice{id: "cam-1", step: 1}
	e.link(t, src)
	waitUntil(t, "cam-1 pulled", func() bool { d := device(t, e.srv, "cam-1"); return d != nil && d.Digest != "" })

	errs := make(chan error, 16)
	nc, err := e.dial(t, "cam-2", errs)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	attempts := map[string]func() error{
		"subscribe to cam-1's pulls": func() error { _, err := nc.SubscribeSync(fleet.PullSubject("cam-1")); return err },
		"subscribe to all pulls":     func() error { _, err := nc.SubscribeSync("swav.dev.*.pull"); return err },
		"announce as cam-1":          func() error { return nc.Publish(fleet.AnnounceSubject("cam-1"), []byte(`{"id":"cam-1"}`)) },
		"answer an inbox":            func() error { return nc.Publish("_INBOX.anything", []byte("forged")) },
		"use JetStream":              func() error { return nc.Publish("$JS.API.INFO", nil) },
		"read the inventory":         func() error { _, err := nc.SubscribeSync("$KV.swav_devices.>"); return err },
	}
	for what, try := range attempts {
		for len(errs) > 0 {
			<-errs
		}
		if err := try(); err != nil {
			continue // refused on the spot
		}
		nc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: %v, want a permissions violation", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: allowed", what)
		}
	}
	// cam-1's pulls still reach cam-1 only, and nothing forged was recorded.
	if r := e.srv.Pull(context.Background(), "cam-1"); r.Result != ResultUnchanged {
		t.Fatalf("cam-1 after the attempts: %+v", r)
	}
	if d := device(t, e.srv, "cam-2"); d != nil {
		t.Fatalf("cam-2 recorded from forged messages: %+v", d)
	}
}

func TestForeignNoneAndRevokedCertificatesAreRefused(t *testing.T) {
	e := startFleet(t, Options{})
	e.issue(t, "cam-1")
	other := t.TempDir()
	if err := certs.Init(other, nil); err != nil {
		t.Fatal(err)
	}
	if err := certs.Issue(other, "cam-9"); err != nil {
		t.Fatal(err)
	}
	cert, key := certs.DeviceFiles(other, "cam-9")
	foreign, _ := certs.ClientTLS(filepath.Join(e.certs, certs.CAFile), cert, key)
	if nc, err := nats.Connect(e.url, nats.Secure(foreign), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a certificate from another CA connected")
	}
	noCert, _ := certs.ClientTLS(filepath.Join(e.certs, certs.CAFile), filepath.Join(e.certs, "cam-1.pem"), filepath.Join(e.certs, "cam-1-key.pem"))
	noCert.Certificates = nil
	if nc, err := nats.Connect(e.url, nats.Secure(noCert), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without a certificate connected")
	}
	if nc, err := nats.Connect(strings.Replace(e.url, "tls://", "nats://", 1), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a plain connection was accepted")
	}

	errs := make(chan error, 4)
	nc, err := e.dial(t, "cam-1", errs)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := certs.Revoke(e.certs, "cam-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dial(t, "cam-1", errs); err == nil {
		t.Fatal("a revoked device connected")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.srv.Run(ctx) // its sweep closes connections whose certificate is revoked
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's open connection was not closed")
	}
	// TLS refuses the foreign, missing and plain ones before authentication;
	// the revoked one is refused (and counted) by the authenticator.
	if e.srv.auth.refused.Load() != 1 {
		t.Fatalf("refusals counted: %d", e.srv.auth.refused.Load())
	}
}

// A device answering with something malformed is rejected, counted, and
// leaves what is stored as it was.
func TestBadSnapshotsAreRejected(t *testing.T) {
	e := startFleet(t, Options{MaxSnapshotBytes: 4096})
	e.issue(t, "cam-1")
	src := &fakeDevice{id: "cam-1", step: 5}
	l := e.link(t, src)
	waitUntil(t, "cam-1 pulled", func() bool { d := device(t, e.srv, "cam-1"); return d != nil && d.Digest != "" })
	good := device(t, e.srv, "cam-1")
	l.Close()

	// Now a hostile cam-1 (its own certificate) answers pulls itself.
	errs := make(chan error, 4)
	nc, err := e.dial(t, "cam-1", errs)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var answer func() *nats.Msg
	nc.Subscribe(fleet.PullSubject("cam-1"), func(m *nats.Msg) {
		mu.Lock()
		r := answer()
		mu.Unlock()
		r.Subject = m.Reply
		m.RespondMsg(r)
	})
	if err := nc.Flush(); err != nil { // the subscription is in place before the first pull
		t.Fatal(err)
	}
	snapshot := func(b []byte, digest string) func() *nats.Msg {
		return func() *nats.Msg {
			m := nats.NewMsg("")
			m.Header.Set(fleet.HeaderStatus, fleet.StatusSnapshot)
			m.Header.Set(fleet.HeaderDigest, digest)
			m.Data = b
			return m
		}
	}
	other, _ := testSnapshot("cam-2", 6, 1).Encode()
	misshaped := reshaped(t, "cam-1", 6)
	valid, _ := testSnapshot("cam-1", 6, 1).Encode()
	big := testSnapshot("cam-1", 6, 1)
	big.Prototypes = make([]float32, 4*400)
	for i := 0; i < 4; i++ {
		big.Prototypes[i*400] = 1
	}
	big.Meta.D = 400
	bigB, _ := big.Encode()
	cases := map[string]struct {
		answer func() *nats.Msg
		want   string
	}{
		"truncated":       {snapshot(valid[:len(valid)-5], fleet.Digest(valid[:len(valid)-5])), "safetensors"},
		"digest mismatch": {snapshot(valid, strings.Repeat("0", 64)), "does not match"},
		"another device":  {snapshot(other, fleet.Digest(other)), `names device "cam-2"`},
		"shape vs meta":   {snapshot(misshaped, fleet.Digest(misshaped)), "the metadata says"},
		"oversized":       {snapshot(bigB, fleet.Digest(bigB)), "over the limit"},
		"no status":       {func() *nats.Msg { return nats.NewMsg("") }, "status"},
		"false unchanged": {func() *nats.Msg {
			m := nats.NewMsg("")
			m.Header.Set(fleet.HeaderStatus, fleet.StatusUnchanged)
			m.Header.Set(fleet.HeaderDigest, strings.Repeat("1", 64))
			return m
		}, "unchanged"},
	}
	n := 0
	for name, c := range cases {
		mu.Lock()
		answer = c.answer
		mu.Unlock()
		r := e.srv.Pull(context.Background(), "cam-1")
		n++
		if r.Result != ResultRejected || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: %+v, want rejected with %q", name, r, c.want)
		}
		d := device(t, e.srv, "cam-1")
		if d.Digest != good.Digest || len(d.Snapshots) != 1 || d.Rejected != n {
			t.Errorf("%s: device record changed: digest %s, %d snapshots, %d rejected", name, d.Digest, len(d.Snapshots), d.Rejected)
		}
	}
	if count, _ := e.srv.store.SnapshotCount(context.Background()); count != 1 {
		t.Fatalf("%d objects stored, want the one good snapshot", count)
	}
	if _, err := e.srv.store.Snapshot(context.Background(), good.Digest); err != nil {
		t.Fatalf("the good snapshot: %v", err)
	}
}

// reshaped is a snapshot whose metadata claims K=2 while it holds 4 prototypes.
func reshaped(t *testing.T, id string, step int) []byte {
	b, _ := testSnapshot(id, step, 1).Encode()
	f, err := safetensors.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["k"] = "2"
	var out bytes.Buffer
	if err := f.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Announcements do not undo the backoff of a device whose pulls fail.
func TestAnnouncementsKeepBackoff(t *testing.T) {
	e := startFleet(t, Options{MaxSnapshotBytes: 4096})
	e.issue(t, "cam-1")
	src := &fakeDevice{id: "cam-1", step: 1, k: 128, d: 64} // 33 KiB: the device says it is over the limit
	e.link(t, src)                                          // announces every second
	waitUntil(t, "the first pull failed", func() bool { d := device(t, e.srv, "cam-1"); return d != nil && d.Failures >= 1 })
	time.Sleep(2500 * time.Millisecond) // two more announcements
	if d := device(t, e.srv, "cam-1"); d.Failures != 1 || d.RetryAt == nil || !strings.Contains(d.LastError, "over the server's message limit") {
		t.Fatalf("after announcements: %d failures, retry %v, %q", d.Failures, d.RetryAt, d.LastError)
	}
	if n := testutil.ToFloat64(e.srv.metrics.pulls.WithLabelValues(ResultFailed)); n != 1 {
		t.Fatalf("%v pulls during the backoff, want the one", n)
	}
}

// A device already pulled in this round that looks away and announces
// again (the store missed its announcements in a failover) is not pulled a
// second time in the round.
func TestOncePerRoundAfterLookingAway(t *testing.T) {
	e := startFleet(t, Options{PullInterval: time.Hour})
	e.issue(t, "cam-1")
	e.link(t, &fakeDevice{id: "cam-1", step: 1})
	waitUntil(t, "the first pull", func() bool { d := device(t, e.srv, "cam-1"); return d != nil && d.Digest != "" })
	if _, err := e.srv.store.UpdateDevice(context.Background(), "cam-1", func(d *Device) error { d.Offline = true; return nil }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "it announced again", func() bool { return !device(t, e.srv, "cam-1").Offline })
	time.Sleep(300 * time.Millisecond)
	if n := testutil.ToFloat64(e.srv.metrics.pulls.WithLabelValues(ResultSnapshot)) + testutil.ToFloat64(e.srv.metrics.pulls.WithLabelValues(ResultUnchanged)); n != 1 {
		t.Fatalf("%v pulls in one round, want 1", n)
	}
}
