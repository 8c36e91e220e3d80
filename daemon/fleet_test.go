package daemon

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/swavd/swavd/capture"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/safetensors"
)

// By default only prototypes, centroids and counts leave the device; the model's
// weights and the thumbnails only when asked for.
func TestFleetSnapshotSharesOnlyWhatIsConfigured(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fleet.DeviceID = "cam-t"
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "frames assigned", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Camera.Assigned >= 50 })

	b, err := s.client.FleetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := fleet.ParseSnapshot(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Model != nil || snap.Exemplars != nil || snap.Meta.Device != "cam-t" || snap.Meta.K != cfg.Model.Prototypes {
		t.Fatalf("default snapshot shares more than prototypes and counts: %d model tensors, %d exemplar bytes, meta %+v",
			len(snap.Model), len(snap.Exemplars), snap.Meta)
	}
	var total int64
	for _, c := range snap.Counts {
		total += c
	}
	if total < 50 {
		t.Fatalf("counts sum to %d, want the assigned frames", total)
	}
	if _, err := safetensors.Parse(b); err != nil {
		t.Fatal(err)
	}
	// With the weights held still (training publishes every 2 steps), the
	// snapshot's prototypes are the ones the assigner uses.
	s.stop(t)
	held, err := s.d.fleetSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if protos, step := s.d.assign.Prototypes(); !slices.Equal(protos, held.Prototypes) || step != held.Meta.Step {
		t.Fatalf("snapshot prototypes (step %d) differ from the assigner's (step %d)", held.Meta.Step, step)
	}
	// Centroids: unit rows (zero for clusters no replay frame reaches),
	// each the mean embedding of frames whose best prototype is its own,
	// so its own prototype scores it highest (the mean of per-frame
	// maxima), with the snapshot's weights. Which clusters the frames
	// reach depends on how far training got, so the frames the snapshot
	// averaged are assigned one by one here and must reach exactly the
	// clusters that have a centroid (a frame whose two best clusters tie
	// within rounding may count for either).
	reached, either := framesReach(t, s.d, held.Meta.Step)
	D, centroids := held.Meta.D, 0
	for k := 0; k < held.Meta.K; k++ {
		c := held.Centroids[k*D : (k+1)*D]
		var n2 float64
		best, bestScore := -1, math.Inf(-1)
		for j := 0; j < held.Meta.K; j++ {
			var dot float64
			for i, v := range c {
				dot += float64(v) * float64(held.Prototypes[j*D+i])
			}
			if dot > bestScore {
				best, bestScore = j, dot
			}
		}
		for _, v := range c {
			n2 += float64(v) * float64(v)
		}
		switch {
		case (n2 != 0) != reached[k] && !either[k]:
			t.Fatalf("cluster %d: centroid norm^2 %g, but replay frames reach it: %v", k, n2, reached[k])
		case n2 == 0:
		case math.Abs(n2-1) > 1e-4:
			t.Fatalf("centroid %d has norm %g", k, math.Sqrt(n2))
		case best != k:
			t.Fatalf("centroid %d scores highest on prototype %d", k, best)
		default:
			centroids++
		}
	}
	if centroids == 0 {
		t.Fatal("no cluster has a centroid")
	}

	opted := *s.d.config()
	opted.Fleet.Share, opted.Fleet.ShareExemplars = "model", true
	s.d.cfg.Store(&opted)
	full, err := s.d.fleetSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	names, bufs := s.d.assign.m.Buffers()
	if len(full.Model) != len(s.d.assign.m.Params())+len(bufs) || !strings.HasPrefix(full.Model[0].Name, fleet.ModelPrefix) || len(names) == 0 {
		t.Fatalf("model share: %d tensors", len(full.Model))
	}
	n := fleet.ExemplarSize * fleet.ExemplarSize * cfg.Input.Channels
	if full.ExemplarChannels != cfg.Input.Channels || len(full.Exemplars) != cfg.Model.Prototypes*n {
		t.Fatalf("exemplars: %d bytes, %d channels", len(full.Exemplars), full.ExemplarChannels)
	}
	pictures := 0
	for k, c := range full.Counts {
		var sum int
		for _, v := range full.Exemplars[k*n : (k+1)*n] {
			sum += int(v)
		}
		if c == 0 && sum != 0 {
			t.Fatalf("cluster %d was never assigned but has a thumbnail", k)
		}
		if sum > 0 {
			pictures++
		}
	}
	if pictures == 0 {
		t.Fatal("no used cluster has a thumbnail")
	}
	enc, err := full.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.ParseSnapshot(enc, 0); err != nil {
		t.Fatalf("the full snapshot does not parse: %v", err)
	}
}

// framesReach assigns, one at a time with the daemon's (stopped) assigner,
// the replay frames that the snapshot of step averages into centroids:
// which clusters they reach, and which they might reach (the frame's best
// two clusters within 1e-5 of each other).
func framesReach(t *testing.T, d *Daemon, step int) (reached, either map[int]bool) {
	t.Helper()
	frames := make([]*capture.Image, min(d.replay.Len(), centroidFrames))
	if err := d.replay.Sample(frames, rand.New(rand.NewPCG(uint64(step), 0xce47))); err != nil {
		t.Fatal(err)
	}
	reached, either = map[int]bool{}, map[int]bool{}
	probs := make([]float32, d.config().Model.Prototypes)
	for _, im := range frames {
		k, _, _, err := d.assign.Assign(im, probs)
		if err != nil {
			t.Fatal(err)
		}
		reached[k] = true
		for j, p := range probs {
			if j != k && probs[k]-p < 1e-5 {
				either[j], either[k] = true, true
			}
		}
	}
	return reached, either
}

// A snapshot's model tensors load back into an assigner: it then assigns
// exactly as the device did.
func TestAssignerLoadsSharedWeights(t *testing.T) {
	cfg := testConfig(t)
	s := startDaemon(t, cfg, Options{})
	ctx := context.Background()
	waitFor(t, "training steps", func() bool { st, err := s.client.Status(ctx); return err == nil && st.Training.ModelStep >= 4 })
	s.stop(t) // the assigner's weights hold still
	protos, weights, step := s.d.assign.Weights(true)
	other, err := NewAssigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.LoadWeights(weights, step); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Prototypes(); !slices.Equal(got, protos) || other.Step() != step {
		t.Fatal("prototypes differ after loading the weights")
	}
	src := patternSource(t, 1000)
	for i := 0; i < 20; i++ {
		im, _ := src.Next(ctx)
		im = fitFrame(im, cfg.Input.Size, cfg.Input.Channels)
		c1, p1, _, _ := s.d.assign.Assign(im, nil)
		c2, p2, _, _ := other.Assign(im, nil)
		if c1 != c2 || p1 != p2 {
			t.Fatalf("frame %d: device cluster %d (%v), loaded %d (%v)", i, c1, p1, c2, p2)
		}
	}
	if err := other.LoadWeights(weights[1:], step); err == nil {
		t.Fatal("weights with a tensor missing were loaded")
	}
}
