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
