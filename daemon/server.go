package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/safetensors"
)

// mayWrite decides whether a peer may change the daemon's state: root,
// the daemon's own user, or a member of the configured group.
func mayWrite(pc peerCred, group string) error {
	if !pc.ok {
		return errors.New("the caller's credentials are unknown (not a Unix socket?)")
	}
	if pc.uid == 0 || int(pc.uid) == os.Getuid() {
		return nil
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("group %q: %v", group, err)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return fmt.Errorf("group %q: gid %q", group, g.Gid)
		}
		if pc.inGroup(uint32(gid)) {
			return nil
		}
		return fmt.Errorf("uid %d is not root and its process is not in group %s", pc.uid, group)
	}
	return fmt.Errorf("uid %d is not root or swavd's user, and no daemon.socket_group is configured", pc.uid)
}

// apiError is an error with its HTTP status.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &apiError{code, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// route is one endpoint: its method, whether it changes state, its handler.
type route struct {
	method string
	write  bool
	fn     func(w http.ResponseWriter, r *http.Request) error
}

// Handler serves the /v1 API. Every error is JSON: {"error": "..."}.
func (d *Daemon) Handler() http.Handler {
	routes := map[string]route{
		"/status":         {http.MethodGet, false, d.handleStatus},
		"/clusters":       {http.MethodGet, false, d.handleClusters},
		"/prototypes":     {http.MethodGet, false, d.handlePrototypes},
		"/assign":         {http.MethodPost, false, d.handleAssign},
		"/events":         {http.MethodGet, false, d.handleEvents},
		"/checkpoint":     {http.MethodPost, true, d.handleCheckpoint},
		"/metrics":        {http.MethodGet, false, d.handleMetrics},
		"/fleet/snapshot": {http.MethodGet, false, d.handleFleetSnapshot},
		"/fleet/rebase":   {http.MethodPost, true, d.handleRebase},
	}
	return recoverJSON(d.o.Log, func(w http.ResponseWriter, r *http.Request) {
		rt, ok := routes[trimVersion(r.URL.Path)]
		var err error
		switch {
		case !ok:
			err = errorf(http.StatusNotFound, "no endpoint %s (have %s/status, clusters, prototypes, assign, events, checkpoint, metrics, fleet/snapshot, fleet/rebase)", r.URL.Path, api.Version)
		case r.Method != rt.method:
			w.Header().Set("Allow", rt.method)
			err = errorf(http.StatusMethodNotAllowed, "%s wants %s, not %s", r.URL.Path, rt.method, r.Method)
		case r.ContentLength > d.config().Daemon.MaxRequestBytes: // refused before a byte of the body is read
			err = errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes over the %d-byte limit (daemon.max_request_bytes)",
				r.ContentLength, d.config().Daemon.MaxRequestBytes)
		case rt.write:
			pc, _ := r.Context().Value(credKey{}).(peerCred)
			if werr := mayWrite(pc, d.config().Daemon.SocketGroup); werr != nil {
				err = errorf(http.StatusForbidden, "%s changes the daemon's state: %v", r.URL.Path, werr)
			}
		}
		if err == nil {
			err = rt.fn(w, r)
		}
		if err != nil {
			code := http.StatusInternalServerError
			var ae *apiError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &ae):
				code = ae.code
			case errors.As(err, &mbe):
				code = http.StatusRequestEntityTooLarge
				err = fmt.Errorf("request body over the %d-byte limit", mbe.Limit)
			case errors.Is(err, os.ErrDeadlineExceeded):
				code = http.StatusRequestTimeout
				err = fmt.Errorf("the request did not arrive within daemon.read_timeout (%v)", d.config().Daemon.ReadTimeout)
			}
			writeJSON(w, code, api.Error{Error: err.Error()})
		}
	})
}

// recoverJSON turns a handler's panic into a logged 500 with a JSON body
// (when nothing was written yet) instead of a dropped connection; the
// daemon keeps serving. Errors Go's server writes before any handler runs
// (a malformed request line, headers over the limit) stay plain text: the
// server offers no hook for them (README, The local API).
func recoverJSON(log logging.Logger, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			log.Errorf("api: %s %s: panic: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
			writeJSON(w, http.StatusInternalServerError, api.Error{Error: fmt.Sprintf("internal error serving %s: %v", r.URL.Path, v)})
		}()
		h(w, r)
	})
}

func trimVersion(p string) string {
	if len(p) > len(api.Version) && p[:len(api.Version)] == api.Version && p[len(api.Version)] == '/' {
		return p[len(api.Version):]
	}
	return "?" + p
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, d.Status())
	return nil
}

func (d *Daemon) handleClusters(w http.ResponseWriter, r *http.Request) error {
	ex, err := parseBool(r.URL.Query().Get("exemplars"))
	if err != nil {
		return errorf(http.StatusBadRequest, "exemplars: %v", err)
	}
	writeJSON(w, http.StatusOK, api.Clusters{Step: d.assign.Step(), Clusters: d.stats.Clusters(ex)})
	return nil
}

func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

func (d *Daemon) handlePrototypes(w http.ResponseWriter, r *http.Request) error {
	protos, step := d.assign.Prototypes()
	cfg := d.config()
	arch, _ := json.Marshal(cfg.Model)
	meta := map[string]string{"step": strconv.Itoa(step), "preset": cfg.Preset, "arch": string(arch),
		"temperature": strconv.FormatFloat(cfg.SwAV.Temperature, 'g', -1, 64), "version": d.o.Version,
		"saved_at": time.Now().UTC().Format(time.RFC3339)}
	var b bytes.Buffer
	err := safetensors.Write(&b, []safetensors.Tensor{{Name: "prototypes", Shape: []int{cfg.Model.Prototypes, cfg.Model.ProjDim}, Data: protos}}, meta)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="prototypes-step%d.safetensors"`, step))
	w.Write(b.Bytes())
	return nil
}

// parseAssign decodes an uploaded image and brings it to the working size.
func parseAssign(body []byte, size, channels, maxPixels int) (*capture.Image, error) {
	if len(body) == 0 {
		return nil, errorf(http.StatusBadRequest, "empty body: POST a PNG, JPEG, PGM or PPM image")
	}
	im, err := capture.DecodeBytes(body, maxPixels)
	if errors.Is(err, capture.ErrTooLarge) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "image: %v (daemon.max_upload_pixels)", err)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "image: %v", err)
	}
	if err := im.Validate(); err != nil {
		return nil, errorf(http.StatusBadRequest, "image: %v", err)
	}
	return fitFrame(im, size, channels), nil
}

// handleAssign reads, decodes and assigns an upload. At most
// cap(d.uploads) do so at once, the body read included: a burst of large
// uploads waits here instead of holding every body and decoded image in
// memory, or taking the cores from capture and training.
func (d *Daemon) handleAssign(w http.ResponseWriter, r *http.Request) error {
	select {
	case d.uploads <- struct{}{}:
		defer func() { <-d.uploads }()
	case <-r.Context().Done():
		return errorf(http.StatusServiceUnavailable, "gave up waiting for a free decoder: %v", r.Context().Err())
	}
	cfg := d.config()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.Daemon.MaxRequestBytes))
	if err != nil {
		return err
	}
	im, err := parseAssign(body, cfg.Input.Size, cfg.Input.Channels, cfg.Daemon.MaxUploadPixels)
	if err != nil {
		return err
	}
	probs := make([]float32, cfg.Model.Prototypes)
	c, conf, step, err := d.assign.Assign(im, probs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Assignment{At: time.Now(), Cluster: c, Confidence: conf, Step: step, Probs: probs})
	return nil
}

func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return errors.New("events: streaming not supported")
	}
	// A stream outlives daemon.read_timeout, which bounds reading requests.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	ch, ok := d.events.subscribe()
	if !ok {
		return errorf(http.StatusServiceUnavailable, "the daemon is stopping")
	}
	defer d.events.unsubscribe(ch)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": swavd assignments\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case a, ok := <-ch:
			if !ok {
				return nil
			}
			b, _ := json.Marshal(a)
			fmt.Fprintf(w, "event: assign\nid: %d\ndata: %s\n\n", a.Seq, b)
			fl.Flush()
		}
	}
}

func (d *Daemon) handleCheckpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := d.RequestCheckpoint(r.Context())
	if err != nil {
		return errorf(http.StatusInternalServerError, "%v", err)
	}
	writeJSON(w, http.StatusOK, api.CheckpointResult{Checkpoint: c})
	return nil
}
