package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/compute/cpu"
	"github.com/swavd/swavd/config"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/server"
	"github.com/swavd/swavd/internal/logging"
	"github.com/swavd/swavd/model"
	"github.com/swavd/swavd/train"
)

// baseFor is a checkpoint of cfg's model at step 7, as swavd train writes.
func baseFor(t *testing.T, cfg *config.Config) []byte {
	s, err := train.NewSession(cpu.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Trainer.Step = 7
	b, _, err := model.EncodeCheckpoint(s.Trainer, model.CheckpointMeta{Version: "test", Preset: cfg.Preset})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFleetBaseStartRefuseAndRebase(t *testing.T) {
	certDir := t.TempDir()
	if err := certs.Init(certDir, nil); err != nil {
		t.Fatal(err)
	}
	if err := certs.Issue(certDir, "cam-b"); err != nil {
		t.Fatal(err)
	}
	fl, err := server.Start(context.Background(), server.Options{StateDir: t.TempDir(), Certs: certDir, NATSListen: "127.0.0.1:0", Log: logging.Printf(t.Logf)})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()

	cfg := testConfig(t)
	cert, key := certs.DeviceFiles(certDir, "cam-b")
	cfg.Fleet = config.Fleet{URL: "tls://" + fl.NATSAddr(), DeviceID: "cam-b", CA: filepath.Join(certDir, certs.CAFile), Cert: cert, Key: key,
		Share: "prototypes", AnnounceEvery: 200 * time.Millisecond, SnapshotEvery: time.Minute, Base: true, Adapt: "prototypes"}
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()

	// No state of its own and no base yet: frames are assigned, training waits.
	waitFor(t, "the replay buffer filled", func() bool {
		st, _ := s.client.Status(ctx)
		return st.Training.Replay >= cfg.Daemon.MinReplay+20 && st.Training.State == "waiting for the fleet base"
	})
	if st, _ := s.client.Status(ctx); st.Training.Step != 0 || !st.Fleet.WaitingForBase {
		t.Fatalf("trained without the base: %+v", st.Training)
	}

	base := baseFor(t, cfg)
	if _, err := fl.SetBase(ctx, base); err != nil {
		t.Fatal(err)
	}
	digest := fleet.Digest(base)
	waitFor(t, "training from the base", func() bool {
		st, _ := s.client.Status(ctx)
		return st.Fleet.Base == digest && !st.Fleet.WaitingForBase && st.Training.Step > 7
	})
	if st, _ := s.client.Status(ctx); st.Training.Adapt != "prototypes" {
		t.Fatalf("on the base with fleet.adapt prototypes, training adapts %q", st.Training.Adapt)
	}
	snapB, err := s.client.FleetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := fleet.ParseSnapshot(snapB, 0); err != nil || snap.Meta.Base != digest {
		t.Fatalf("the snapshot does not name its base: %v", err)
	}

	// Weights of its own now: an unsolicited base (sent with the fleet's own
	// certificate) is refused, and nothing changes.
	tlsCfg, _ := certs.ClientTLS(filepath.Join(certDir, certs.CAFile), filepath.Join(certDir, certs.FleetFile), filepath.Join(certDir, certs.FleetKeyFile))
	nc, err := nats.Connect("tls://"+fl.NATSAddr(), nats.Secure(tlsCfg))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg := nats.NewMsg(fleet.BaseSubject("cam-b"))
	msg.Header.Set(fleet.HeaderDigest, digest)
	msg.Data = base
	before, _ := s.client.Status(ctx)
	reply, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil || reply.Header.Get(fleet.HeaderStatus) != fleet.StatusError || !strings.Contains(reply.Header.Get(fleet.HeaderError), "weights of its own") {
		t.Fatalf("unsolicited base: %v %+v", err, reply)
	}
	after, _ := s.client.Status(ctx)
	if after.Training.Step < before.Training.Step || !strings.Contains(after.Fleet.BaseError, "swavctl fleet rebase") {
		t.Fatalf("after an unsolicited base: step %d -> %d, base error %q", before.Training.Step, after.Training.Step, after.Fleet.BaseError)
	}

	// Rebase: a checkpoint first, then the base replaces the weights (a
	// checkpoint at the base's step records the new start).
	r, err := s.client.Rebase(ctx)
	if err != nil || r.Checkpoint.Path == "" {
		t.Fatalf("rebase: %+v %v", r, err)
	}
	waitFor(t, "the rebase done", func() bool {
		list, _ := s.d.ckpts.List()
		for _, dir := range list {
			if step, at, _ := parseCheckpointName(filepath.Base(dir)); step == 7 && !at.Before(r.Checkpoint.At.Truncate(time.Millisecond)) {
				return true
			}
		}
		return false
	})
	if st, _ := s.client.Status(ctx); st.Fleet.WaitingForBase || st.Fleet.Base != digest {
		t.Fatalf("after the rebase: %+v", st.Fleet)
	}
}
