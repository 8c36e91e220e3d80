package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/server"
)

// simDevice answers pulls like swavd: unchanged when the fleet has its
// digest, else its snapshot.
type simDevice struct {
	mu     sync.Mutex
	id     string
	step   int
	b      []byte
	digest string
}

func (d *simDevice) bump(t testing.TB) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.step++
	const k, dim = 128, 64
	s := &fleet.Snapshot{Meta: fleet.SnapshotMeta{Device: d.id, Step: d.step, Preset: "edge-small", Arch: "{}", Version: "sim",
		TakenAt: time.Now().UTC(), K: k, D: dim}, Prototypes: make([]float32, k*dim), Counts: make([]int64, k), Recent: make([]int64, k)}
	for i := 0; i < k; i++ {
		s.Prototypes[i*dim+i%dim] = 1
		s.Counts[i] = int64(d.step * i)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d.b, d.digest = b, fleet.Digest(b)
}

func (d *simDevice) answer(m *nats.Msg) {
	var req fleet.PullRequest
	json.Unmarshal(m.Data, &req)
	d.mu.Lock()
	b, digest := d.b, d.digest
	d.mu.Unlock()
	r := nats.NewMsg(m.Reply)
	r.Header.Set(fleet.HeaderDigest, digest)
	if req.Have == digest {
		r.Header.Set(fleet.HeaderStatus, fleet.StatusUnchanged)
	} else {
		r.Header.Set(fleet.HeaderStatus, fleet.StatusSnapshot)
		r.Data = b
	}
	m.RespondMsg(r)
}

// procStats reads a process's CPU seconds (user+system) and peak RSS.
func procStats(t testing.TB, pid int) (cpuS float64, peakMiB float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	cpuS = (ut + st) / 100 // USER_HZ
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			peakMiB = kb / 1024
		}
	}
	return cpuS, peakMiB
}

// BenchmarkFleetRound: FLEET_BENCH_DEVICES simulated devices (1,000 by
// default), each a real mTLS NATS connection answering with a real 128x64
// snapshot, against one `swav-fleet serve` process with embedded NATS.
// Each iteration is a round in which every snapshot changed, then one in
// which none did. Run with -benchtime 1x.
func BenchmarkFleetRound(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("FLEET_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	bins := buildAll(b, "swav-fleet")
	dir := b.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := certs.Init(certDir, nil); err != nil {
		b.Fatal(err)
	}
	devs := make([]*simDevice, n)
	for i := range devs {
		devs[i] = &simDevice{id: fmt.Sprintf("sim-%05d", i)}
		if err := certs.Issue(certDir, devs[i].id); err != nil {
			b.Fatal(err)
		}
		devs[i].bump(b)
	}
	natsAddr, httpAddr := freeAddr(b), freeAddr(b)
	fl := start(b, bins["swav-fleet"], []string{"SWAV_FLEET_PULL_INTERVAL=168h", "SWAV_FLEET_PULL_CONCURRENCY=64"},
		"serve", "--state-dir", filepath.Join(dir, "fleet"), "--certs", certDir, "--nats-listen", natsAddr, "--http", httpAddr)
	c := &client{base: "http://" + httpAddr}
	waitFor(b, fl, "the fleet's HTTP API", func() bool { _, err := c.get("/v1/devices"); return err == nil })

	connStart := time.Now()
	var conns []*nats.Conn
	// deviceBytes is what crossed the devices' connections (both ways).
	deviceBytes := func() float64 {
		var sum uint64
		for _, nc := range conns {
			st := nc.Stats()
			sum += st.InBytes + st.OutBytes
		}
		return float64(sum)
	}
	for _, d := range devs {
		cert, key := certs.DeviceFiles(certDir, d.id)
		tlsCfg, err := certs.ClientTLS(filepath.Join(certDir, certs.CAFile), cert, key)
		if err != nil {
			b.Fatal(err)
		}
		nc, err := nats.Connect("tls://"+natsAddr, nats.Secure(tlsCfg))
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
		if _, err := nc.Subscribe(fleet.PullSubject(d.id), d.answer); err != nil {
			b.Fatal(err)
		}
		a, _ := json.Marshal(fleet.Announce{ID: d.id, Version: "sim", Preset: "edge-small", EverySeconds: 3600})
		nc.Publish(fleet.AnnounceSubject(d.id), a)
	}
	waitFor(b, fl, "every device pulled once", func() bool {
		var ds server.Devices
		if c.getJSON("/v1/devices", &ds) != nil || len(ds.Devices) != n {
			return false
		}
		for _, d := range ds.Devices {
			if d.Digest == "" {
				return false
			}
		}
		return true
	})
	b.Logf("%d devices connected, announced and pulled once in %.1f s", n, time.Since(connStart).Seconds())

	pid := fl.cmd.Process.Pid
	var full, same server.RoundSummary
	var cpuFull, cpuSame, wireFull, wireSame, devFull, devSame float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, d := range devs {
			d.bump(b)
		}
		b.StartTimer()
		c0, _ := procStats(b, pid)
		w0, d0 := wireBytes(b, c), deviceBytes()
		if err := c.postJSON("/v1/pull", &full); err != nil || full.Snapshot != n {
			b.Fatalf("full round: %+v %v", full, err)
		}
		c1, _ := procStats(b, pid)
		w1, d1 := wireBytes(b, c), deviceBytes()
		if err := c.postJSON("/v1/pull", &same); err != nil || same.Unchanged != n {
			b.Fatalf("unchanged round: %+v %v", same, err)
		}
		c2, _ := procStats(b, pid)
		w2, d2 := wireBytes(b, c), deviceBytes()
		cpuFull, cpuSame = c1-c0, c2-c1
		wireFull, wireSame = w1-w0, w2-w1
		devFull, devSame = d1-d0, d2-d1
	}
	b.StopTimer()
	_, peak := procStats(b, pid)
	b.ReportMetric(full.Seconds, "full_round_s")
	b.ReportMetric(float64(full.Bytes)/(1<<20), "full_round_MiB")
	b.ReportMetric(cpuFull, "full_round_cpu_s")
	b.ReportMetric(devFull/(1<<20), "full_round_device_MiB")
	b.ReportMetric(wireFull/(1<<20), "full_round_server_MiB")
	b.ReportMetric(same.Seconds, "unchanged_round_s")
	b.ReportMetric(devSame/(1<<10), "unchanged_round_device_KiB")
	b.ReportMetric(100*devSame/devFull, "unchanged_device_%_of_full")
	b.ReportMetric(100*wireSame/wireFull, "unchanged_server_%_of_full")
	b.ReportMetric(float64(same.Bytes), "unchanged_round_snapshot_bytes")
	b.ReportMetric(cpuSame, "unchanged_round_cpu_s")
	b.ReportMetric(peak, "server_peak_rss_MiB")
	b.ReportMetric(0, "ns/op")
}

// wireBytes is what the embedded NATS server received and sent so far, on
// every connection: the devices', and the fleet's own (snapshots passed on
// to JetStream, inventory updates and their watcher).
func wireBytes(t testing.TB, c *client) float64 {
	m := metrics(t, c)
	return m["swav_fleet_nats_in_bytes_total"] + m["swav_fleet_nats_out_bytes_total"]
}
