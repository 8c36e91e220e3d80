package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/internal/logging"
)

// A fleet server whose disk fills up (a real 4 MiB tmpfs under its state
// directory) keeps the snapshots it stored, says so in /v1/devices and its
// metrics, and goes on answering.
func TestFullDiskKeepsEarlierSnapshots(t *testing.T) {
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	dir := t.TempDir()
	if err := certs.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	srv, err := Start(context.Background(), Options{StateDir: state, Certs: dir, NATSListen: "127.0.0.1:0", History: 1000, Log: logging.Printf(t.Logf)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := &fleetEnv{certs: dir, srv: srv, url: "tls://" + srv.NATSAddr()}
	e.issue(t, "cam-1")
	src := &fakeDevice{id: "cam-1", step: 1, k: 128, d: 64}
	e.link(t, src)
	waitUntil(t, "the first pull", func() bool { d := device(t, srv, "cam-1"); return d != nil && d.Digest != "" })
	var stored []string
	var failed PullResult
	for i := 0; i < 400 && failed.Result == ""; i++ {
		src.set(src.Step() + 1)
		r := srv.Pull(context.Background(), "cam-1")
		switch r.Result {
		case ResultSnapshot:
			stored = append(stored, r.Digest)
		default:
			failed = r
		}
	}
	if failed.Result != ResultFailed || len(stored) < 5 {
		t.Fatalf("after %d snapshots: %+v; want a store failure once the disk is full", len(stored), failed)
	}
	t.Logf("disk full after %d snapshots: %s", len(stored), failed.Error)
	srv.mu.Lock()
	storeErr := srv.storeErr
	srv.mu.Unlock()
	if storeErr == "" || testutilCount(srv) == 0 {
		t.Fatalf("full disk not reported: %q", storeErr)
	}
	for _, dg := range stored {
		if _, err := srv.store.Snapshot(context.Background(), dg); err != nil {
			t.Fatalf("snapshot %s stored before the disk filled is gone: %v", dg, err)
		}
	}
	if d := device(t, srv, "cam-1"); d.Digest != stored[len(stored)-1] {
		t.Fatalf("newest digest %s, want the last stored %s", d.Digest, stored[len(stored)-1])
	}
	// The API says so, and the server goes on answering.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/devices", nil))
	var ds Devices
	if err := json.Unmarshal(rec.Body.Bytes(), &ds); err != nil || !strings.Contains(ds.StoreError, "insufficient resources") ||
		!strings.Contains(ds.Devices[0].LastError, "storing snapshot") {
		t.Fatalf("/v1/devices on a full disk: %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "swav_fleet_store_failures_total 1") {
		t.Fatalf("metrics on a full disk:\n%s", rec.Body)
	}
	if r := srv.Pull(context.Background(), "cam-1"); r.Result != ResultFailed {
		t.Fatalf("pull on a full disk: %+v", r)
	}
}

func testutilCount(s *Server) float64 { return testutil.ToFloat64(s.metrics.storeFailures) }
