package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swavd/swavd/fleet"
)

// DeviceView is a device as the API shows it.
type DeviceView struct {
	ID        string        `json:"id"`
	Online    bool          `json:"online"`
	Step      int           `json:"step"`
	Digest    string        `json:"digest,omitempty"`
	PulledAt  *time.Time    `json:"pulled_at,omitempty"`
	Preset    string        `json:"preset,omitempty"`
	Version   string        `json:"version,omitempty"`
	LastSeen  time.Time     `json:"last_seen"`
	Failures  int           `json:"failures"`
	LastError string        `json:"last_error,omitempty"`
	Rejected  int           `json:"rejected"`
	Base      string        `json:"base,omitempty"`
	BaseError string        `json:"base_error,omitempty"`
	Snapshots []SnapshotRef `json:"snapshots,omitempty"` // GET /v1/devices/{id} only
}

// Devices is GET /v1/devices.
type Devices struct {
	Devices []DeviceView `json:"devices"`
	// StoreError is the last failure to store a snapshot (a full disk),
	// empty once a store succeeds again.
	StoreError   string     `json:"store_error,omitempty"`
	StoreErrorAt *time.Time `json:"store_error_at,omitempty"`
}

func view(d Device, now time.Time, history bool) DeviceView {
	v := DeviceView{ID: d.ID, Online: d.Online(now), Step: d.Step, Digest: d.Digest, PulledAt: d.PulledAt, Preset: d.Preset,
		Version: d.Version, LastSeen: d.LastSeen, Failures: d.Failures, LastError: d.LastError, Rejected: d.Rejected,
		Base: d.Base, BaseError: d.BaseError}
	if history {
		v.Snapshots = d.Snapshots
	}
	return v
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

// Handler is the fleet server's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				code := http.StatusInternalServerError
				var he *httpError
				if errors.As(err, &he) {
					code = he.code
				}
				writeJSON(w, code, map[string]string{"error": err.Error()})
			}
		})
	}
	handle("GET /v1/devices", s.handleDevices)
	handle("GET /v1/devices/{id}", s.handleDevice)
	handle("POST /v1/devices/{id}/pull", s.handlePull)
	handle("GET /v1/snapshots/{digest}", s.handleSnapshot)
	handle("GET /{$}", s.handlePage)
	handle("GET /v1/codebook/mosaic.png", s.handleMosaic)
	handle("GET /v1/codebook", s.handleCodebook)
	handle("GET /v1/codebook/prototypes", s.handleCodebookPrototypes)
	handle("PUT /v1/codebook/labels/{id}", s.handleLabel)
	handle("GET /v1/base", s.handleGetBase)
	handle("POST /v1/base", s.handleSetBase)
	handle("POST /v1/pull", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, s.PullAll(r.Context()))
		return nil
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no endpoint %s %s (have GET / (the fleet page), /v1/devices, /v1/devices/{id}, /v1/snapshots/{sha256}, /v1/base, /v1/codebook, /v1/codebook/prototypes, /v1/codebook/mosaic.png, /metrics; POST /v1/devices/{id}/pull, /v1/pull, /v1/base; PUT /v1/codebook/labels/{id})", r.Method, r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) error {
	now := time.Now()
	out := Devices{Devices: []DeviceView{}}
	for _, d := range s.store.Devices() {
		out.Devices = append(out.Devices, view(d, now, false))
	}
	s.mu.Lock()
	if s.storeErr != "" {
		out.StoreError, out.StoreErrorAt = s.storeErr, &s.storeErrT
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := fleet.CheckDeviceID(id); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	d, _, err := s.store.Device(r.Context(), id)
	if err != nil {
		return err
	}
	if d == nil {
		return errorf(http.StatusNotFound, "no device %q", id)
	}
	writeJSON(w, http.StatusOK, view(*d, time.Now(), true))
	return nil
}

func (s *Server) handlePull(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := fleet.CheckDeviceID(id); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	res := s.Pull(r.Context(), id)
	code := http.StatusOK
	if res.Result == ResultFailed || res.Result == ResultRejected {
		code = http.StatusBadGateway
	}
	writeJSON(w, code, res)
	return nil
}

func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) error {
	dg := r.PathValue("digest")
	if !fleet.IsDigest(dg) {
		return errorf(http.StatusBadRequest, "%q is not a SHA-256 digest (64 lowercase hex digits)", dg)
	}
	b, err := s.store.Snapshot(r.Context(), dg)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return errorf(http.StatusNotFound, "no snapshot %s", dg)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.safetensors"`, dg))
	w.Write(b)
	return nil
}
