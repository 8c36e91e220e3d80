package daemon

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swavd/swavd/api"
)

func dialAPI(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d (reading and
// discarding whatever it sends first).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil // io.Copy returns nil at EOF, the deadline's error otherwise
}

// A body declared over daemon.max_request_bytes is refused at once, from
// its Content-Length, before any of it is sent.
func TestDeclaredBodyOverTheLimitIsRefusedAtOnce(t *testing.T) {
	cfg := testConfig(t)
	s := startDaemon(t, cfg, Options{})
	_ = s
	c := dialAPI(t, cfg.Daemon.Socket)
	io.WriteString(c, "POST /v1/assign HTTP/1.1\r\nHost: swavd\r\nContent-Length: 1000000000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(body), "daemon.max_request_bytes") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// Idle keep-alive connections are closed after daemon.idle_timeout and a
// body trickling in after daemon.read_timeout (408); an event stream lives
// on past both.
func TestIdleAndSlowConnectionsAreClosed(t *testing.T) {
	cfg := testConfig(t)
	cfg.Daemon.IdleTimeout, cfg.Daemon.ReadTimeout = 300*time.Millisecond, 500*time.Millisecond
	s := startDaemon(t, cfg, Options{})

	idle := dialAPI(t, cfg.Daemon.Socket)
	io.WriteString(idle, "GET /v1/status HTTP/1.1\r\nHost: swavd\r\n\r\n")
	if !closedWithin(idle, 3*time.Second) {
		t.Error("an idle keep-alive connection was still open after 3 s (idle_timeout 300 ms)")
	}
	never := dialAPI(t, cfg.Daemon.Socket) // connected, sends nothing
	if !closedWithin(never, 3*time.Second) {
		t.Error("a connection that never sent a request was still open after 3 s")
	}

	slow := dialAPI(t, cfg.Daemon.Socket)
	io.WriteString(slow, "POST /v1/assign HTTP/1.1\r\nHost: swavd\r\nContent-Length: 100\r\n\r\n")
	start := time.Now()
	closed := make(chan string, 1)
	go func() {
		br := bufio.NewReader(slow)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			closed <- "closed: " + err.Error()
			return
		}
		closed <- resp.Status
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var got string
	for got == "" && time.Since(start) < 5*time.Second {
		select {
		case got = <-closed:
		case <-tick.C:
			slow.Write([]byte{'P'}) // one byte at a time, never finishing
		}
	}
	if got == "" {
		t.Fatal("a body trickling in was still being read after 5 s (read_timeout 500 ms)")
	}
	if !strings.HasPrefix(got, "408") && !strings.HasPrefix(got, "closed") {
		t.Errorf("slow body: %s", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subscribed, n := time.Now(), 0
	err := s.client.Events(ctx, func(a api.Assignment) error {
		if n++; time.Since(subscribed) > 1500*time.Millisecond {
			return io.EOF // three read_timeouts later, still streaming
		}
		return nil
	})
	if err != io.EOF {
		t.Fatalf("the event stream ended after %d events: %v", n, err)
	}
}

// Past daemon.max_connections only root and swavd's own user connect, up to
// 16 more; then everyone is refused, and the refusals are counted.
func TestConnectionsAreCapped(t *testing.T) {
	if sock := os.Getenv("PEER_HELPER_SOCKET"); sock != "" {
		peerHelper(sock)
		return
	}
	cfg := testConfig(t)
	cfg.Daemon.MaxConnections = 4
	stranger := otherUserClient(t, cfg, "TestConnectionsAreCapped")
	s := startDaemon(t, cfg, Options{})
	os.Chmod(cfg.Daemon.Socket, 0o666)
	open := func(n int) {
		for range n {
			c := dialAPI(t, cfg.Daemon.Socket)
			io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: swavd\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("a connection within the cap (root): %v", err)
			}
		}
	}
	open(4)
	if out := stranger(nil); !strings.HasPrefix(out, "error") {
		t.Errorf("another user over max_connections: %s", out)
	}
	open(reservedConns) // root still gets in
	over := dialAPI(t, cfg.Daemon.Socket)
	if !closedWithin(over, 3*time.Second) {
		t.Fatal("a connection over max_connections + the reserve stayed open")
	}
	if got := s.d.conns.refused.Load(); got < 2 {
		t.Errorf("%d refusals counted, want at least 2", got)
	}
}

// daemon.metrics_listen serves the metrics, and only them, on TCP.
func TestMetricsOnTCP(t *testing.T) {
	cfg := testConfig(t)
	cfg.Daemon.MetricsListen = "127.0.0.1:0"
	s := startDaemon(t, cfg, Options{})
	waitFor(t, "the metrics listener", func() bool { return s.d.metricsAddr.Load() != nil })
	base := "http://" + s.d.metricsAddr.Load().(string)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "swavd_frames_in_total") {
		t.Fatalf("%d %.200s", resp.StatusCode, body)
	}
	for _, path := range []string{"/v1/status", "/metrics/../v1/status", "/v1/checkpoint"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("%s is served on the metrics listener", path)
		}
	}
}
