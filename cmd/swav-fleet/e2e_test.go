package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/server"
	"github.com/swavd/swavd/internal/proctest"
	"github.com/swavd/swavd/safetensors"
)

// The real binaries: swav-fleet serve (embedded NATS) and three swavd run
// daemons, each with its own certificate.
func TestFleetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with real processes")
	}
	bins := buildAll(t, "swav-fleet", "swavd", "swavctl")
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	mustRun(t, bins["swav-fleet"], "certs", "init", "--dir", certDir)
	devices := []string{"cam-a", "cam-b", "cam-c"}
	for _, id := range devices {
		mustRun(t, bins["swav-fleet"], "certs", "issue", "--dir", certDir, id)
	}
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	fl := start(t, bins["swav-fleet"], []string{"SWAV_FLEET_PULL_INTERVAL=2s", "SWAV_FLEET_PULL_TIMEOUT=5s"},
		"serve", "--state-dir", filepath.Join(dir, "fleet"), "--certs", certDir, "--nats-listen", natsAddr, "--http", httpAddr)
	c := &client{base: "http://" + httpAddr}
	waitFor(t, fl, "the fleet's HTTP API", func() bool { _, err := c.get("/v1/devices"); return err == nil })

	daemons := map[string]*device{}
	for _, id := range devices {
		daemons[id] = startDevice(t, bins, dir, certDir, "tls://"+natsAddr, id)
	}
	fleetDevices := func() map[string]server.DeviceView {
		var d server.Devices
		if err := c.getJSON("/v1/devices", &d); err != nil {
			t.Fatal(err)
		}
		out := map[string]server.DeviceView{}
		for _, v := range d.Devices {
			out[v.ID] = v
		}
		return out
	}
	waitFor(t, fl, "all three pulled", func() bool {
		ds := fleetDevices()
		for _, id := range devices {
			if !ds[id].Online || ds[id].Digest == "" {
				return false
			}
		}
		return true
	})

	// The snapshot the fleet stored holds the prototypes swavctl pulls from
	// the device at that step.
	for _, id := range devices {
		snapFile, protoFile := filepath.Join(dir, id+".snap"), filepath.Join(dir, id+".protos")
		out := mustRun(t, bins["swav-fleet"], "get", id, "-o", snapFile, "--server", c.base)
		if !strings.Contains(out, "wrote") {
			t.Fatalf("get %s: %s", id, out)
		}
		daemons[id].ctl(t, "prototypes", "pull", "-o", protoFile)
		sb, _ := os.ReadFile(snapFile)
		snap, err := fleet.ParseSnapshot(sb, 0)
		if err != nil {
			t.Fatalf("%s: snapshot from the fleet: %v", id, err)
		}
		pb, _ := os.ReadFile(protoFile)
		pf, err := safetensors.Parse(pb)
		if err != nil {
			t.Fatal(err)
		}
		protos := pf.Tensors["prototypes"].Data
		if snap.Meta.Device != id || strconv.Itoa(snap.Meta.Step) != pf.Metadata["step"] || len(protos) != len(snap.Prototypes) {
			t.Fatalf("%s: snapshot of %s at step %d; swavctl has step %s", id, snap.Meta.Device, snap.Meta.Step, pf.Metadata["step"])
		}
		for i := range protos {
			if protos[i] != snap.Prototypes[i] {
				t.Fatalf("%s: prototype value %d: fleet %v, device %v", id, i, snap.Prototypes[i], protos[i])
			}
		}
	}

	// A round in which nothing changed stores nothing and sends no bytes.
	m0 := metrics(t, c)
	t0 := time.Now().UTC()
	waitFor(t, fl, "a round of unchanged pulls", func() bool {
		ds := fleetDevices()
		for _, id := range devices {
			if ds[id].PulledAt == nil || ds[id].PulledAt.Before(t0) {
				return false
			}
		}
		return true
	})
	m1 := metrics(t, c)
	if m1["swav_fleet_rounds_completed_total"] < 1 || m1["swav_fleet_round_seconds"] <= 0 || m1["swav_fleet_round_seconds"] > 2 {
		t.Errorf("round time: %v rounds, last %v s (rounds of 2 s)", m1["swav_fleet_rounds_completed_total"], m1["swav_fleet_round_seconds"])
	}
	if m1["swav_fleet_snapshot_bytes_received_total"] != m0["swav_fleet_snapshot_bytes_received_total"] ||
		m1["swav_fleet_snapshots_stored_total"] != m0["swav_fleet_snapshots_stored_total"] ||
		m1[`swav_fleet_pulls_total{result="unchanged"}`] < m0[`swav_fleet_pulls_total{result="unchanged"}`]+3 {
		t.Fatalf("an unchanged round moved bytes or stored: before %v, after %v", m0, m1)
	}
	var sum server.RoundSummary
	if err := json.Unmarshal([]byte(mustRun(t, bins["swav-fleet"], "pull", "--all", "--json", "--server", c.base)), &sum); err != nil ||
		sum.Devices != 3 || sum.Unchanged != 3 || sum.Bytes != 0 || sum.Stored != 0 {
		t.Fatalf("pull --all with nothing changed: %+v %v", sum, err)
	}
	if st := daemons["cam-a"].status(t); st.Fleet.State != "connected" || st.Fleet.Unchanged == 0 {
		t.Fatalf("cam-a's fleet status: %+v", st.Fleet)
	}

	// Killed, then restarted: marked offline, pulled again when it is back.
	b := daemons["cam-b"]
	oldDigest := fleetDevices()["cam-b"].Digest
	b.proc.cmd.Process.Signal(syscall.SIGKILL)
	b.proc.cmd.Wait()
	waitFor(t, fl, "cam-b offline", func() bool { return !fleetDevices()["cam-b"].Online })
	back := time.Now().UTC()
	daemons["cam-b"] = startDevice(t, bins, dir, certDir, "tls://"+natsAddr, "cam-b")
	waitFor(t, fl, "cam-b pulled after its restart", func() bool {
		v := fleetDevices()["cam-b"]
		return v.Online && v.PulledAt != nil && v.PulledAt.After(back) && v.Digest != oldDigest
	})

	// A certificate from another CA is refused.
	other := filepath.Join(dir, "other")
	mustRun(t, bins["swav-fleet"], "certs", "init", "--dir", other)
	mustRun(t, bins["swav-fleet"], "certs", "issue", "--dir", other, "cam-a")
	if nc, err := dialAs(other, certDir, "cam-a", "tls://"+natsAddr, nil); err == nil {
		nc.Close()
		t.Fatal("a device certificate from another CA connected")
	}

	// A device that subscribes to, or answers for, another device's subject
	// gets a permissions error, and cam-a's pulls still reach cam-a.
	errs := make(chan error, 8)
	nc, err := dialAs(certDir, certDir, "cam-b", "tls://"+natsAddr, errs)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for what, try := range map[string]func() error{
		"subscribe to cam-a's pulls": func() error { _, err := nc.SubscribeSync(fleet.PullSubject("cam-a")); return err },
		"announce as cam-a":          func() error { return nc.Publish(fleet.AnnounceSubject("cam-a"), []byte(`{"id":"cam-a"}`)) },
		"answer an inbox":            func() error { return nc.Publish("_INBOX.x", []byte("forged")) },
	} {
		try()
		nc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permissions error", what)
		}
	}
	var pr server.PullResult
	if err := c.postJSON("/v1/devices/cam-a/pull", &pr); err != nil || pr.Result != server.ResultUnchanged {
		t.Fatalf("pull cam-a after the attempts: %+v %v", pr, err)
	}

	// Revoked: its open connection is closed and it cannot come back.
	mustRun(t, bins["swav-fleet"], "certs", "revoke", "--dir", certDir, "cam-c")
	waitFor(t, fl, "cam-c refused", func() bool {
		st := daemons["cam-c"].status(t)
		return st.Fleet.State != "connected" && strings.Contains(strings.ToLower(st.Fleet.LastError), "authorization")
	})
	waitFor(t, fl, "cam-c offline at the fleet", func() bool { return !fleetDevices()["cam-c"].Online })
	if out := mustRun(t, bins["swav-fleet"], "devices", "--server", c.base); !strings.Contains(out, "cam-c") || !strings.Contains(out, "cam-a") {
		t.Fatalf("devices:\n%s", out)
	}

	// The fleet page in a real browser: it loads and shows every device; its
	// screenshot goes to out/fleet-page.png.
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (make deps installs Debian's): %v", err)
	}
	browse := func(args ...string) []byte {
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,800"}, args...)
		out, err := exec.Command(chromium, append(args, c.base+"/")...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	dom := string(browse("--dump-dom"))
	for _, id := range devices {
		if !strings.Contains(dom, "<td>"+id+"</td>") {
			t.Errorf("the page in chromium does not show %s:\n%s", id, dom)
		}
	}
	outDir, _ := filepath.Abs("../../out")
	os.MkdirAll(outDir, 0o755)
	shot := filepath.Join(outDir, "fleet-page.png")
	os.Remove(shot)
	browse("--screenshot=" + shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("the fleet page as chromium shows it: %s", shot)
}

type device struct {
	proc   *proc
	ctlBin string
	socket string
}

func startDevice(t *testing.T, bins map[string]string, dir, certDir, url, id string) *device {
	cert, key := certs.DeviceFiles(certDir, id)
	socket := filepath.Join(dir, id+".sock")
	env := []string{"SWAVD_DAEMON_FPS=20", "SWAVD_DAEMON_MIN_REPLAY=64", "SWAVD_DAEMON_REPLAY_SIZE=1000",
		"SWAVD_DAEMON_PUBLISH_EVERY=1000000", "SWAVD_DAEMON_DUTY_CYCLE=0.1",
		"SWAVD_FLEET_URL=" + url, "SWAVD_FLEET_DEVICE_ID=" + id, "SWAVD_FLEET_CA=" + filepath.Join(certDir, certs.CAFile),
		"SWAVD_FLEET_CERT=" + cert, "SWAVD_FLEET_KEY=" + key, "SWAVD_FLEET_ANNOUNCE_EVERY=1s", "SWAVD_FLEET_SNAPSHOT_EVERY=1h"}
	p := start(t, bins["swavd"], env, "run", "--preset", "tiny", "--source", "pattern", "--socket", socket,
		"--state-dir", filepath.Join(dir, id+"-state"))
	d := &device{proc: p, ctlBin: bins["swavctl"], socket: socket}
	waitFor(t, p, id+" serving", func() bool { _, err := d.run("status"); return err == nil })
	return d
}

func (d *device) run(args ...string) (string, error) {
	out, err := exec.Command(d.ctlBin, append([]string{"--socket", d.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (d *device) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.run(args...)
	if err != nil {
		t.Fatalf("swavctl %v: %v\n%s", args, err, out)
	}
	return out
}

func (d *device) status(t *testing.T) api.Status {
	t.Helper()
	var s api.Status
	if err := json.Unmarshal([]byte(d.ctl(t, "--json", "status")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func dialAs(certDir, caDir, id, url string, errs chan<- error) (*nats.Conn, error) {
	cert, key := certs.DeviceFiles(certDir, id)
	tlsCfg, err := certs.ClientTLS(filepath.Join(caDir, certs.CAFile), cert, key)
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, nats.Secure(tlsCfg), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
}

// metrics reads the fleet's Prometheus text into name{labels} -> value.
func metrics(t testing.TB, c *client) map[string]float64 {
	t.Helper()
	b, err := c.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			out[line[:i]] = v
		}
	}
	return out
}

type proc struct {
	cmd *exec.Cmd
	log *proctest.Buffer
}

func start(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, log: &proctest.Buffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() || os.Getenv("SWAV_E2E_LOGS") != "" {
			t.Logf("%s %s:\n%s", filepath.Base(bin), args[0], p.log)
		}
	})
	return p
}

func buildAll(t testing.TB, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, n := range names {
		out[n] = filepath.Join(dir, n)
		if b, err := exec.Command("go", "build", "-o", out[n], "../"+n).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", n, err, b)
		}
	}
	return out
}

func mustRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t testing.TB, p *proc, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
