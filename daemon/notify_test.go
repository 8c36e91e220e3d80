package daemon

import (
	"fmt"
	"github.com/swavd/swavd/internal/logging"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A fake systemd: a unixgram socket as NOTIFY_SOCKET, a watchdog of 0.6 s.
// The daemon says READY=1 and STATUS=, pets the watchdog while frames and
// training progress, and stops petting it when capture hangs.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "600000")
	notify, wd := SystemdNotifier(logging.Printf(t.Logf))
	if wd != 600*time.Millisecond {
		t.Fatalf("watchdog interval %v", wd)
	}
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// count gathers messages for d and tallies them by prefix.
	count := func(d time.Duration) map[string]int {
		got := map[string]int{}
		deadline := time.After(d)
		for {
			select {
			case m := <-msgs:
				for _, line := range strings.Split(strings.TrimSpace(m), "\n") {
					k, _, _ := strings.Cut(line, "=")
					got[k]++
					if k == "STATUS" && !strings.Contains(line, "step ") {
						t.Errorf("status line %q", line)
					}
				}
			case <-deadline:
				return got
			}
		}
	}
	cfg := testConfig(t)
	src := patternSource(t, 100)
	s := startDaemon(t, cfg, Options{Source: src, Notify: notify, Watchdog: wd})
	healthy := count(2 * time.Second)
	if healthy["READY"] != 1 || healthy["STATUS"] < 3 || healthy["WATCHDOG"] < 3 {
		t.Fatalf("while healthy: %v", healthy)
	}
	src.stall()
	count(wd + 300*time.Millisecond) // the last pets before the stall is noticed
	stalled := count(1500 * time.Millisecond)
	if stalled["WATCHDOG"] != 0 || stalled["STATUS"] < 2 {
		t.Fatalf("after capture hung: %v; want STATUS lines and no WATCHDOG", stalled)
	}
	s.stop(t)
	if got := count(200 * time.Millisecond); got["STOPPING"] != 1 {
		t.Fatalf("on stop: %v", got)
	}
}

// A notification that cannot be sent (systemd's socket gone) is logged,
// once and then every 100th time.
func TestSystemdNotifyFailureIsLogged(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	var logs []string
	notify, _ := SystemdNotifier(logging.Printf(func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }))
	for range 150 {
		notify("WATCHDOG=1")
	}
	if len(logs) != 2 || !strings.Contains(logs[0], `notify "WATCHDOG=1" failed`) || !strings.Contains(logs[1], "101 failures") {
		t.Fatalf("logged %q", logs)
	}
}
