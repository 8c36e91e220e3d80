package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/safetensors"
	"github.com/swavd/swavd/train"
)

// testBase is a real checkpoint of the tiny preset, as swavd train writes.
func testBase(t *testing.T) []byte {
	t.Helper()
	cfg, err := config.Load(config.Options{Preset: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := train.NewSession(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Trainer.Step = 7
	b, _, err := model.EncodeCheckpoint(s.Trainer, model.CheckpointMeta{Version: "test", Preset: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBaseIsSentToDevicesThatAskAndCheckedThere(t *testing.T) {
	e := startFleet(t, Options{})
	h := e.srv.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/base", strings.NewReader("not a checkpoint")))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("a non-checkpoint base: %d %s", rec.Code, rec.Body)
	}
	base := testBase(t)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/base", bytes.NewReader(base)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), fleet.Digest(base)) || !strings.Contains(rec.Body.String(), `"step": 7`) {
		t.Fatalf("set base: %d %s", rec.Code, rec.Body)
	}

	// A device asking for the base gets it, byte for byte.
	e.issue(t, "cam-1")
	asks := &fakeDevice{id: "cam-1", step: 1, wants: true}
	l := e.link(t, asks)
	waitUntil(t, "the base loaded", func() bool { b, _ := asks.Base(); return b == fleet.Digest(base) })
	if !bytes.Equal(asks.loaded[0], base) {
		t.Fatal("the device got other bytes than the base")
	}
	waitUntil(t, "the fleet records it", func() bool { d := device(t, e.srv, "cam-1"); return d.Base == fleet.Digest(base) && !d.WantsBase })

	// A delivery whose digest does not match its content is refused by the
	// link and never reaches the device.
	asks.mu.Lock()
	asks.wants = true
	asks.mu.Unlock()
	forged := nats.NewMsg(fleet.BaseSubject("cam-1"))
	forged.Header.Set(fleet.HeaderDigest, fleet.Digest(base))
	forged.Data = append(append([]byte{}, base...), 0)
	reply, err := e.srv.nc.RequestMsg(forged, 5*time.Second)
	if err != nil || reply.Header.Get(fleet.HeaderStatus) != fleet.StatusError || !strings.Contains(reply.Header.Get(fleet.HeaderError), "digest") {
		t.Fatalf("a tampered base: %v %v", err, reply)
	}
	if len(asks.loaded) != 1 || !strings.Contains(l.Status().BaseError, "digest") {
		t.Fatalf("tampered base reached the device (%d loads), status %q", len(asks.loaded), l.Status().BaseError)
	}

	// A device that did not ask refuses, and the fleet records why.
	e.issue(t, "cam-2")
	own := &fakeDevice{id: "cam-2", step: 3}
	e.link(t, own)
	waitUntil(t, "cam-2 known", func() bool { return device(t, e.srv, "cam-2") != nil })
	e.srv.sendBase("cam-2")
	if d := device(t, e.srv, "cam-2"); !strings.Contains(d.BaseError, "did not ask") || len(own.loaded) != 0 {
		t.Fatalf("unasked base: %+v, %d loads", d.BaseError, len(own.loaded))
	}
}

// The codebook over devices on the base: fleet clusters, the device that
// is not on the base left out with the reason, labels that travel, and the
// centres as safetensors.
func TestCodebookOverDevicesOnTheBase(t *testing.T) {
	e := startFleet(t, Options{CodebookClusters: 16}) // the fake prototypes point along 16 axes
	h := e.srv.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/v1/codebook/prototypes"); rec.Code != http.StatusNotFound {
		t.Fatalf("codebook without a base: %d", rec.Code)
	}
	baseB := testBase(t)
	b, err := e.srv.SetBase(context.Background(), baseB)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(config.Options{Preset: "tiny"})
	k, d := cfg.Model.Prototypes, cfg.Model.ProjDim
	for i, id := range []string{"cam-1", "cam-2", "cam-3"} {
		e.issue(t, id)
		src := &fakeDevice{id: id, step: 10 + i, k: k, d: d, base: b.Digest, exemplars: i == 0}
		if id == "cam-3" {
			src.base = "" // its own random start
		}
		src.counts = 5
		e.link(t, src)
		waitUntil(t, id+" pulled", func() bool { dv := device(t, e.srv, id); return dv != nil && dv.Digest != "" })
	}
	var cb struct {
		Digest   string
		Clusters []struct {
			ID      int
			Label   string
			Devices int
		}
		Devices []struct {
			Device  string
			Aligned bool
			Reason  string
			Drift   float64
		}
	}
	rec := get("/v1/codebook")
	if err := json.Unmarshal(rec.Body.Bytes(), &cb); err != nil || len(cb.Clusters) == 0 || len(cb.Devices) != 3 {
		t.Fatalf("codebook: %v %s", err, rec.Body)
	}
	for _, dv := range cb.Devices {
		if aligned := dv.Device != "cam-3"; dv.Aligned != aligned || (!aligned && !strings.Contains(dv.Reason, "own random weights")) {
			t.Errorf("%+v", dv)
		}
		if dv.Aligned && dv.Drift < 0.99 {
			t.Errorf("%s: drift %v (its prototypes are the fleet's clusters)", dv.Device, dv.Drift)
		}
	}
	// cam-1 and cam-2 hold the same prototypes: every fleet cluster has both.
	if cb.Clusters[0].Devices != 2 {
		t.Errorf("fleet cluster %+v", cb.Clusters[0])
	}
	id := cb.Clusters[0].ID
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, fmt.Sprintf("/v1/codebook/labels/%d", id), strings.NewReader(`{"name":"forklift"}`)))
	if rec.Code != http.StatusOK {
		t.Fatalf("label: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/codebook/labels/9999", strings.NewReader(`{"name":"x"}`)))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("label of no cluster: %d", rec.Code)
	}
	json.Unmarshal(get("/v1/codebook").Body.Bytes(), &cb)
	if cb.Clusters[0].ID != id || cb.Clusters[0].Label != "forklift" {
		t.Fatalf("label did not travel: %+v", cb.Clusters[0])
	}
	f, err := safetensors.Parse(get("/v1/codebook/prototypes").Body.Bytes())
	if err != nil || f.Tensors["prototypes"].Shape[1] != d || f.Metadata["codebook"] != cb.Digest || !strings.Contains(f.Metadata["labels"], "forklift") {
		t.Fatalf("codebook prototypes: %v %v", err, f)
	}
	// The page: every device, its base, the clusters with cam-1's thumbnails.
	html := get("/")
	body := html.Body.String()
	for _, want := range []string{"cam-1", "cam-2", "cam-3", "fleet base", "forklift", "data:image/png;base64,", "own random weights"} {
		if html.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the fleet page lacks %q (%d)", want, html.Code)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the page has a script")
	}
	mosaic := get("/v1/codebook/mosaic.png")
	im, err := png.Decode(mosaic.Body)
	if err != nil || im.Bounds().Dy() < len(cb.Clusters)*64 {
		t.Fatalf("mosaic: %v %v", err, im)
	}
}
