package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/fleet"
)

// PullResult is what one pull did.
type PullResult struct {
	ID     string  `json:"id"`
	Result string  `json:"result"` // snapshot | unchanged | failed | rejected
	Digest string  `json:"digest,omitempty"`
	Step   int     `json:"step,omitempty"`
	Bytes  int     `json:"bytes"`  // snapshot bytes received
	Stored bool    `json:"stored"` // a new object was written
	Error  string  `json:"error,omitempty"`
	TookMS float64 `json:"took_ms"`
}

// Pull results.
const (
	ResultSnapshot  = "snapshot"
	ResultUnchanged = "unchanged"
	ResultFailed    = "failed"   // no answer, a timeout, the device's own error, or the store failed
	ResultRejected  = "rejected" // the device answered with something the fleet refuses
)

// Pull asks device id for its snapshot, giving the digest the fleet has,
// and stores what comes back after checking it. At most PullConcurrency
// pulls run at once; each has PullTimeout.
func (s *Server) Pull(ctx context.Context, id string) (r PullResult) {
	r.ID = id
	if err := fleet.CheckDeviceID(id); err != nil {
		r.Result, r.Error = ResultRejected, err.Error()
		return r
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		r.Result, r.Error = ResultFailed, ctx.Err().Error()
		return r
	}
	start := time.Now()
	defer func() { // r is the result returned, whichever return made it
		r.TookMS = float64(time.Since(start).Microseconds()) / 1e3
		s.metrics.pulled(r)
	}()
	dev, _, err := s.store.Device(ctx, id)
	if err != nil {
		return s.failed(ctx, r, fmt.Errorf("inventory: %w", err), false)
	}
	have := ""
	if dev != nil {
		have = dev.Digest
	}
	req, _ := json.Marshal(fleet.PullRequest{Have: have})
	tctx, cancel := context.WithTimeout(ctx, s.o.PullTimeout)
	msg, err := s.nc.RequestWithContext(tctx, fleet.PullSubject(id), req)
	cancel()
	if err != nil {
		return s.failed(ctx, r, fmt.Errorf("pull: %w", err), errors.Is(err, nats.ErrNoResponders))
	}
	r.Bytes = len(msg.Data)
	switch status := msg.Header.Get(fleet.HeaderStatus); status {
	case fleet.StatusUnchanged:
		if have == "" || msg.Header.Get(fleet.HeaderDigest) != have {
			return s.rejected(ctx, r, fmt.Errorf("device says unchanged from %q, the fleet has %q", msg.Header.Get(fleet.HeaderDigest), have))
		}
		if err := s.succeeded(ctx, id, nil); err != nil {
			return s.failed(ctx, r, err, false)
		}
		r.Result, r.Digest, r.Step = ResultUnchanged, have, dev.Step
		return r
	case fleet.StatusSnapshot:
		return s.receive(ctx, r, msg)
	case fleet.StatusError:
		return s.failed(ctx, r, fmt.Errorf("device: %s", msg.Header.Get(fleet.HeaderError)), false)
	default:
		return s.rejected(ctx, r, fmt.Errorf("reply with status %q", status))
	}
}

// receive checks a snapshot (digest, structure, device) and stores it.
// Nothing stored is touched when the snapshot is refused or the store fails.
func (s *Server) receive(ctx context.Context, r PullResult, msg *nats.Msg) PullResult {
	digest := fleet.Digest(msg.Data)
	if claimed := msg.Header.Get(fleet.HeaderDigest); claimed != digest {
		return s.rejected(ctx, r, fmt.Errorf("snapshot digest %s does not match its content (%s)", claimed, digest))
	}
	snap, err := fleet.ParseSnapshot(msg.Data, s.o.MaxSnapshotBytes)
	if err != nil {
		return s.rejected(ctx, r, err)
	}
	if snap.Meta.Device != r.ID {
		return s.rejected(ctx, r, fmt.Errorf("snapshot names device %q", snap.Meta.Device))
	}
	sctx, cancel := context.WithTimeout(ctx, s.o.PullTimeout)
	stored, err := s.store.PutSnapshot(sctx, digest, msg.Data)
	cancel()
	if err != nil {
		s.setStoreErr(err)
		return s.failed(ctx, r, fmt.Errorf("storing snapshot %s: %w", digest, err), false)
	}
	s.setStoreErr(nil)
	ref := SnapshotRef{Digest: digest, Step: snap.Meta.Step, Bytes: len(msg.Data), TakenAt: snap.Meta.TakenAt, PulledAt: time.Now().UTC()}
	var dropped []string
	err = s.succeeded(ctx, r.ID, func(d *Device) {
		d.Digest, d.Step = digest, snap.Meta.Step
		if len(d.Snapshots) == 0 || d.Snapshots[0].Digest != digest {
			d.Snapshots = append([]SnapshotRef{ref}, d.Snapshots...)
		}
		dropped = nil
		if len(d.Snapshots) > s.o.History {
			for _, old := range d.Snapshots[s.o.History:] {
				dropped = append(dropped, old.Digest)
			}
			d.Snapshots = d.Snapshots[:s.o.History]
		}
	})
	if err != nil {
		// Stored but not in the device's history: the pull counts as
		// failed and is retried this round (the stored object is found
		// again by its digest).
		return s.failed(ctx, r, err, false)
	}
	r.Result, r.Digest, r.Step, r.Stored = ResultSnapshot, digest, snap.Meta.Step, stored
	s.deleteUnreferenced(ctx, dropped)
	return r
}

// deleteUnreferenced removes snapshots that no device's history names.
func (s *Server) deleteUnreferenced(ctx context.Context, digests []string) {
	if len(digests) == 0 {
		return
	}
	referenced := map[string]bool{}
	for _, d := range s.store.Devices() {
		for _, ref := range d.Snapshots {
			referenced[ref.Digest] = true
		}
	}
	for _, dg := range digests {
		if referenced[dg] {
			continue
		}
		if err := s.store.DeleteSnapshot(ctx, dg); err != nil {
			s.o.Log.Warnf("fleet: deleting snapshot %s: %v", dg, err)
		}
	}
}

// succeeded records a pull in the device's record; only a recorded pull
// counts as this round's (a store failover can refuse the write).
func (s *Server) succeeded(ctx context.Context, id string, update func(d *Device)) error {
	now := time.Now().UTC()
	_, err := s.store.UpdateDevice(ctx, id, func(d *Device) error {
		d.PulledAt, d.Failures, d.RetryAt, d.LastError, d.Offline = &now, 0, nil, "", false
		if update != nil {
			update(d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the pull: %w", err)
	}
	s.mu.Lock()
	s.done[id], s.handled[id] = s.round(now), s.round(now)
	s.mu.Unlock()
	return nil
}

// failed records a failure and backs off: from 5 s (or an eighth of the
// pull interval, if shorter) doubling per failure in a row, to at most a
// quarter of the interval, so retries still fall in the round. A device that no one answers for is
// marked offline until it announces itself again.
func (s *Server) failed(ctx context.Context, r PullResult, err error, offline bool) PullResult {
	r.Result, r.Error = ResultFailed, err.Error()
	s.o.Log.Warnf("fleet: device %s: %v", r.ID, err)
	s.recordFailure(ctx, r.ID, err, offline, false)
	return r
}

// rejected records a refused answer (counted) and backs off like a failure.
func (s *Server) rejected(ctx context.Context, r PullResult, err error) PullResult {
	r.Result, r.Error = ResultRejected, err.Error()
	s.o.Log.Warnf("fleet: device %s: snapshot rejected: %v", r.ID, err)
	s.recordFailure(ctx, r.ID, err, false, true)
	return r
}

func (s *Server) recordFailure(ctx context.Context, id string, err error, offline, rejected bool) {
	_, uerr := s.store.UpdateDevice(ctx, id, func(d *Device) error {
		d.Failures++
		backoff := min(s.o.PullInterval/4, min(5*time.Second, s.o.PullInterval/8)<<min(d.Failures-1, 20))
		retry := time.Now().UTC().Add(backoff)
		d.RetryAt, d.LastError = &retry, err.Error()
		if offline {
			d.Offline = true
		}
		if rejected {
			d.Rejected++
		}
		return nil
	})
	if uerr != nil {
		s.o.Log.Warnf("fleet: device %s: recording the failure: %v", id, uerr)
	}
}

func (s *Server) setStoreErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.storeErr = ""
		return
	}
	s.storeErr, s.storeErrT = err.Error(), time.Now().UTC()
	s.metrics.storeFailures.Inc()
}

// round numbers time in pull intervals; every replica agrees on them.
func (s *Server) round(t time.Time) int64 { return t.UnixNano() / int64(s.o.PullInterval) }

// slot is when in its round a device is due: spread over the first half
// of the round by a hash of id and round (jitter that every replica
// computes alike).
func (s *Server) slot(id string, round int64) time.Time {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", id, round)
	start := time.Unix(0, round*int64(s.o.PullInterval))
	return start.Add(time.Duration(h.Sum64() % uint64(s.o.PullInterval/2+1)))
}

// Run pulls every online device once per round until ctx ends. Replicas
// share the work through claims in JetStream: the first to claim a
// device for a round pulls it, and retries it (with backoff) until the
// round ends.
func (s *Server) Run(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, s.o.PullInterval/20))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		round := s.round(now)
		for _, d := range s.store.Devices() {
			if !d.Online(now) || (d.RetryAt != nil && now.Before(*d.RetryAt)) || now.Before(s.slot(d.ID, round)) {
				continue
			}
			s.mu.Lock()
			done, claimed := s.done[d.ID] == round, s.claimed[d.ID] == round
			s.mu.Unlock()
			if done {
				continue
			}
			if !claimed {
				ok, err := s.store.Claim(ctx, round, d.ID, s.o.Name)
				if err != nil {
					s.o.Log.Warnf("fleet: claiming %s: %v", d.ID, err)
					continue
				}
				s.mu.Lock()
				s.claimed[d.ID] = round
				if !ok { // another replica pulls it this round
					s.done[d.ID], s.handled[d.ID] = round, round
				}
				s.mu.Unlock()
				if !ok {
					continue
				}
			}
			s.mu.Lock()
			s.done[d.ID] = round // until this pull says otherwise
			s.mu.Unlock()
			id := d.ID
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if r := s.Pull(ctx, id); r.Result == ResultFailed || r.Result == ResultRejected {
					s.retryLater(id, round)
				}
			}()
		}
		s.measureRound(now, round)
		if s.ns != nil {
			s.disconnectRevoked()
		}
	}
}

// measureRound records, once per round, how long after its start every
// device online then had been pulled (by this replica or another).
func (s *Server) measureRound(now time.Time, round int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.measured == round {
		return
	}
	for _, d := range s.store.Devices() {
		if d.Online(now) && s.handled[d.ID] != round {
			return
		}
	}
	s.measured = round
	s.metrics.roundSeconds.Set(now.Sub(time.Unix(0, round*int64(s.o.PullInterval))).Seconds())
	s.metrics.rounds.Inc()
}

// retryLater lets the round loop pull id again in round (after its backoff).
func (s *Server) retryLater(id string, round int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done[id] == round {
		delete(s.done, id)
	}
}

// disconnectRevoked closes the connections of devices revoked since they
// connected (the CRL file changed).
func (s *Server) disconnectRevoked() {
	var stamp time.Time
	if fi, err := os.Stat(s.auth.crlPath); err == nil {
		stamp = fi.ModTime()
	}
	if stamp.Equal(s.crlSeen) {
		return
	}
	s.crlSeen = stamp
	cz, err := s.ns.Connz(&natsserver.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		return
	}
	connected := map[uint64]bool{}
	for _, c := range cz.Conns {
		connected[c.Cid] = true
	}
	for _, cid := range s.auth.revokedClients(connected) {
		s.o.Log.Warnf("fleet: disconnecting client %d: its certificate is revoked", cid)
		s.ns.DisconnectClientByID(cid)
	}
}

// RoundSummary is what PullAll did.
type RoundSummary struct {
	Devices   int     `json:"devices"` // online devices pulled
	Snapshot  int     `json:"snapshot"`
	Unchanged int     `json:"unchanged"`
	Failed    int     `json:"failed"`
	Rejected  int     `json:"rejected"`
	Bytes     int64   `json:"bytes"` // snapshot bytes received
	Stored    int     `json:"stored"`
	Seconds   float64 `json:"seconds"`
}

// PullAll pulls every online device now, PullConcurrency at a time, and
// waits for all of them.
func (s *Server) PullAll(ctx context.Context) RoundSummary {
	start := time.Now()
	var sum RoundSummary
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range s.store.Devices() {
		if !d.Online(start) {
			continue
		}
		sum.Devices++
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			r := s.Pull(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch r.Result {
			case ResultSnapshot:
				sum.Snapshot++
				sum.Bytes += int64(r.Bytes)
			case ResultUnchanged:
				sum.Unchanged++
			case ResultFailed:
				sum.Failed++
			case ResultRejected:
				sum.Rejected++
			}
			if r.Stored {
				sum.Stored++
			}
		}(d.ID)
	}
	wg.Wait()
	sum.Seconds = time.Since(start).Seconds()
	s.metrics.pullAllSeconds.Set(sum.Seconds)
	return sum
}
