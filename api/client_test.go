package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// serveEvents answers /v1/events with n events written in one burst, so the
// client has all of them buffered before its callback runs.
func serveEvents(t *testing.T, n int) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Version+"/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < n; i++ {
			b, _ := json.Marshal(Assignment{Seq: uint64(i + 1)})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestEventsStopAtCancel(t *testing.T) {
	c := NewClient(serveEvents(t, 10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []uint64
	err := c.Events(ctx, func(a Assignment) error {
		got = append(got, a.Seq)
		if len(got) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Fatalf("after cancelling at the third event: err %v, events %v", err, got)
	}
}

func TestEventsNotRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	err := c.Events(context.Background(), func(Assignment) error { return nil })
	if err == nil || !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no daemon: %v", err)
	}
}

// serve answers every request on a fresh socket with h.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// Errors are typed (status and message), helpers tell "not running" and
// "forbidden", and a failed call returns no result.
func TestClientErrorsAreTyped(t *testing.T) {
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error": "uid 4242 may not write"}`))
	})
	c := NewClient(sock)
	r, err := c.Checkpoint(context.Background())
	var he *HTTPError
	if r != nil || !IsForbidden(err) || !errors.As(err, &he) || he.Message != "uid 4242 may not write" || he.Path != "/checkpoint" {
		t.Fatalf("403: result %v, error %#v", r, err)
	}
	if IsNotRunning(err) {
		t.Fatal("a 403 taken for a daemon that is not running")
	}
	bad := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"version": `)) })
	if s, err := NewClient(bad).Status(context.Background()); s != nil || err == nil || StatusOf(err) != 0 {
		t.Fatalf("a truncated answer: %v %v", s, err)
	}
	none := NewClient(filepath.Join(t.TempDir(), "nothing.sock"))
	if s, err := none.Status(context.Background()); s != nil || !IsNotRunning(err) {
		t.Fatalf("no daemon: %v %v", s, err)
	}
	// Wait gives up when its context ends, well before its own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if s, err := none.Wait(ctx, time.Minute); s != nil || err == nil || time.Since(t0) > 5*time.Second {
		t.Fatalf("Wait with a cancelled context: %v %v after %v", s, err, time.Since(t0))
	}
}
