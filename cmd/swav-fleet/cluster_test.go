package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/server"
)

// Scale-out: an external three-node NATS cluster (real nats-server
// processes, TLS routes, JetStream replicas 3, the devices' users from
// `swav-fleet certs nats-config`) and two swav-fleet replicas sharing the
// pulls. Each device learns between pulls, so every pull stores a new
// snapshot. Over several rounds each device must be pulled exactly once
// per round, also the round in which one NATS node is killed, and every
// stored snapshot must still be readable at the end.
func TestScaleOutCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("real NATS cluster")
	}
	// A round must outlast JetStream's failover: after a node dies its
	// streams elect new leaders in about 10 s here, and the retries of the
	// pulls it interrupted (backoff from an eighth of the interval) must
	// still fall in the round.
	const interval = 20 * time.Second
	bins := buildAll(t, "swav-fleet")
	natsBin := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := certs.Init(certDir, nil); err != nil {
		t.Fatal(err)
	}
	devs := make([]*simDevice, 6)
	for i := range devs {
		devs[i] = &simDevice{id: fmt.Sprintf("dev-%d", i)}
		if err := certs.Issue(certDir, devs[i].id); err != nil {
			t.Fatal(err)
		}
		devs[i].bump(t)
	}
	mustRun(t, bins["swav-fleet"], "certs", "nats-config", "--dir", certDir, "-o", filepath.Join(dir, "auth.conf"))

	// Three nodes, each routing to the others over mTLS.
	var clientAddr, route, monitor [3]string
	for i := range clientAddr {
		clientAddr[i], route[i], monitor[i] = freeAddr(t), freeAddr(t), freeAddr(t)
	}
	nodes := make([]*proc, 3)
	for i := range nodes {
		var routes []string
		for j := range route {
			if j != i {
				routes = append(routes, fmt.Sprintf("%q", "nats-route://"+route[j]))
			}
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: %q
http: %q
jetstream { store_dir: %q }
cluster {
  name: swav
  listen: %q
  routes: [%s]
  tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 5 }
}
include "auth.conf"
`, i, clientAddr[i], monitor[i], filepath.Join(dir, fmt.Sprintf("n%d", i)), route[i], strings.Join(routes, ", "),
			filepath.Join(certDir, certs.ServerFile), filepath.Join(certDir, certs.ServerKeyFile), filepath.Join(certDir, certs.CAFile))
		path := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		os.WriteFile(path, []byte(conf), 0o644)
		nodes[i] = start(t, natsBin, nil, "-c", path)
	}
	for i, n := range nodes {
		waitFor(t, n, fmt.Sprintf("node n%d healthy with JetStream", i), func() bool {
			resp, err := http.Get("http://" + monitor[i] + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	urls := "tls://" + strings.Join(clientAddr[:], ",tls://")

	// Two swav-fleet replicas on the cluster.
	env := []string{fmt.Sprintf("SWAV_FLEET_PULL_INTERVAL=%v", interval), "SWAV_FLEET_PULL_TIMEOUT=2s", "SWAV_FLEET_HISTORY=100"}
	var replicas []*client
	for i := 0; i < 2; i++ {
		h := freeAddr(t)
		p := start(t, bins["swav-fleet"], env, "serve", "--state-dir", filepath.Join(dir, fmt.Sprintf("fleet%d", i)), "--certs", certDir,
			"--nats-url", urls, "--http", h)
		c := &client{base: "http://" + h}
		waitFor(t, p, "the replica's API", func() bool { _, err := c.get("/v1/devices"); return err == nil })
		replicas = append(replicas, c)
	}

	// The devices: each answers pulls from its snapshot and learns after
	// each one (a new snapshot for the next pull); it announces every second.
	for _, d := range devs {
		cert, key := certs.DeviceFiles(certDir, d.id)
		tlsCfg, _ := certs.ClientTLS(filepath.Join(certDir, certs.CAFile), cert, key)
		nc, err := nats.Connect(urls, nats.Secure(tlsCfg), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		d := d
		nc.Subscribe(fleet.PullSubject(d.id), func(m *nats.Msg) { d.answer(m); d.bump(t) })
		go func() {
			for nc.Status() != nats.CLOSED {
				a, _ := json.Marshal(fleet.Announce{ID: d.id, Version: "sim", EverySeconds: 1})
				nc.Publish(fleet.AnnounceSubject(d.id), a)
				time.Sleep(time.Second)
			}
		}()
	}

	round := func(t time.Time) int64 { return t.UnixNano() / int64(interval) }
	first := round(time.Now()) + 1 // the first whole round
	// Kill node n1 early in the second round, while its pulls are due.
	for round(time.Now()) < first+1 {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(interval / 6)
	nodes[1].cmd.Process.Signal(syscall.SIGKILL)
	nodes[1].cmd.Wait()
	t.Logf("killed node n1 in round %d", round(time.Now())-first)
	last := first + 3 // rounds first..last-1 are checked: before, during and after the kill
	for round(time.Now()) < last+1 {
		time.Sleep(100 * time.Millisecond)
	}

	// Count each device's stored pulls per round, and read back every
	// stored snapshot through the other replica.
	for _, d := range devs {
		var v server.DeviceView
		if err := replicas[0].getJSON("/v1/devices/"+d.id, &v); err != nil {
			t.Fatal(err)
		}
		perRound := map[int64]int{}
		for _, s := range v.Snapshots {
			perRound[round(s.PulledAt)]++
			b, err := replicas[1].get("/v1/snapshots/" + s.Digest)
			if err != nil || fleet.Digest(b) != s.Digest {
				t.Errorf("%s: stored snapshot %s lost: %v", d.id, s.Digest, err)
			}
		}
		for r := first; r < last; r++ {
			if perRound[r] != 1 {
				t.Errorf("%s: pulled %d times in round %d (of %v)", d.id, perRound[r], r-first, perRound)
			}
		}
	}
	for i, c := range replicas {
		n := metrics(t, c)[`swav_fleet_pulls_total{result="snapshot"}`]
		t.Logf("replica %d stored %v snapshots", i, n)
		if n == 0 {
			t.Errorf("replica %d pulled nothing: the work is not shared", i)
		}
	}
}
