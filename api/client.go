package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/swavd/swavd.sock"

// ErrNotRunning means nothing answers on the socket.
var ErrNotRunning = errors.New("swavd is not running")

// HTTPError is an answer of the daemon other than 2xx: its status and the
// message of its JSON error body.
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("swavd: %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// IsNotRunning says whether err means that no daemon answers.
func IsNotRunning(err error) bool { return errors.Is(err, ErrNotRunning) }

// IsForbidden says whether err is the daemon refusing a write to this caller.
func IsForbidden(err error) bool { return StatusOf(err) == http.StatusForbidden }

// StatusOf is the HTTP status of err, or 0 if the daemon did not answer one.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// Client talks to a daemon over its Unix socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{Socket: path, http: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://swavd"+Version+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, c.Socket)
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// call makes a request and decodes its JSON answer; on any error the
// result is nil, never half filled.
func call[T any](c *Client, ctx context.Context, method, path, ctype string, body io.Reader) (*T, error) {
	resp, err := c.do(ctx, method, path, ctype, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("swavd: %s %s: bad answer: %w", method, path, err)
	}
	return &v, nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return call[Status](c, ctx, http.MethodGet, "/status", "", nil)
}

// Clusters is GET /v1/clusters, with PNG exemplars when asked.
func (c *Client) Clusters(ctx context.Context, exemplars bool) (*Clusters, error) {
	path := "/clusters"
	if exemplars {
		path += "?exemplars=1"
	}
	return call[Clusters](c, ctx, http.MethodGet, path, "", nil)
}

// Prototypes returns the current prototypes as safetensors bytes.
func (c *Client) Prototypes(ctx context.Context) ([]byte, error) {
	return c.getBytes(ctx, "/prototypes")
}

// FleetSnapshot returns the snapshot the fleet would get now (safetensors):
// exactly what leaves the device.
func (c *Client) FleetSnapshot(ctx context.Context) ([]byte, error) {
	return c.getBytes(ctx, "/fleet/snapshot")
}

// Rebase writes a checkpoint, then asks the fleet for its base model.
func (c *Client) Rebase(ctx context.Context) (*RebaseResult, error) {
	return call[RebaseResult](c, ctx, http.MethodPost, "/fleet/rebase", "", nil)
}

func (c *Client) getBytes(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Assign sends an encoded image (JPEG, PNG, PGM/PPM) and returns its cluster.
func (c *Client) Assign(ctx context.Context, image []byte) (*Assignment, error) {
	return call[Assignment](c, ctx, http.MethodPost, "/assign", "application/octet-stream", bytes.NewReader(image))
}

// Checkpoint asks for a checkpoint now.
func (c *Client) Checkpoint(ctx context.Context) (*CheckpointResult, error) {
	return call[CheckpointResult](c, ctx, http.MethodPost, "/checkpoint", "", nil)
}

// Events streams assignments until ctx ends or fn returns an error.
func (c *Client) Events(ctx context.Context, fn func(Assignment) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/events", "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if ctx.Err() != nil {
			// Lines already buffered are not delivered after the caller cancels.
			return nil
		}
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var a Assignment
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			return fmt.Errorf("swavd: bad event %q: %w", data, err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("swavd: the event stream ended")
}

// Metrics returns the Prometheus text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	b, err := c.getBytes(ctx, "/metrics")
	return string(b), err
}

// Wait polls until the daemon answers, timeout passes or ctx ends.
func (c *Client) Wait(ctx context.Context, timeout time.Duration) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s, err := c.Status(ctx)
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
