// Package link is a device's side of the fleet: it dials the fleet's NATS
// over mTLS, reconnects forever with backoff, announces the device, and
// answers the fleet's pull requests with the device's snapshot, or
// "unchanged" when the fleet already has it. Everything runs on the NATS
// client's goroutines: capture, assignment and training never wait on it.
package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swavd/swavd/api"
	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/internal/logging"
)

// Source gives the link what the device shares, and takes the fleet base.
type Source interface {
	// Step is the training step of the weights the device uses (cheap).
	Step() int
	// Snapshot is the device's state now.
	Snapshot() (*fleet.Snapshot, error)
	// Base is the digest of the fleet base the weights started from, and
	// whether the device wants the fleet's base now.
	Base() (digest string, wants bool)
	// LoadBase replaces the weights with a fleet base whose digest the link
	// has checked; it refuses when the device did not ask for one.
	LoadBase(digest string, checkpoint []byte) error
}

// Options configure the link.
type Options struct {
	URL      string // tls://host:port
	DeviceID string
	CA       string // the fleet CA certificate (PEM)
	Cert     string // this device's certificate and key
	Key      string
	Version  string
	Preset   string
	Share    string // prototypes | model
	// AnnounceEvery is how often the device announces itself.
	AnnounceEvery time.Duration
	// SnapshotEvery bounds how often a snapshot is rebuilt when only the
	// counts changed; new weights (a new step) rebuild it at the next pull.
	SnapshotEvery time.Duration
	Log           logging.Logger // the zero Logger discards
}

// Link states.
const (
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateFailed     = "failed" // cannot start (bad certificate files); says why
	StateClosed     = "closed"
)

// Status is the link as `swavctl status` shows it.
type Status = api.FleetLink

// Link is a running fleet link.
type Link struct {
	o   Options
	src Source
	nc  *nats.Conn

	mu     sync.Mutex
	st     Status
	cache  []byte // the snapshot last built, its digest, step and time
	digest string
	step   int
	built  time.Time
	stop   chan struct{}
	done   sync.WaitGroup
	closed sync.Once
}

// Start begins connecting in the background and returns at once. Errors
// it cannot retry (unreadable certificate files) are returned, and also
// kept in the status.
func Start(o Options, src Source) (*Link, error) {
	if o.AnnounceEvery <= 0 {
		o.AnnounceEvery = fleet.AnnounceEvery
	}
	l := &Link{o: o, src: src, stop: make(chan struct{}), st: Status{State: StateConnecting, URL: o.URL, DeviceID: o.DeviceID}}
	fail := func(err error) (*Link, error) {
		l.st.State, l.st.LastError = StateFailed, err.Error()
		return l, fmt.Errorf("fleet: %w", err)
	}
	if err := fleet.CheckDeviceID(o.DeviceID); err != nil {
		return fail(err)
	}
	tlsCfg, err := certs.ClientTLS(o.CA, o.Cert, o.Key)
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(o.URL, nats.Secure(tlsCfg), nats.Name("swavd "+o.DeviceID),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.CustomReconnectDelay(backoff),
		nats.ConnectHandler(l.onConnect), nats.ReconnectHandler(l.onConnect),
		nats.DisconnectErrHandler(l.onDisconnect), nats.ErrorHandler(l.onAsyncError),
		nats.ReconnectErrHandler(l.onDisconnect))
	if err != nil {
		return fail(err)
	}
	l.nc = nc
	for subject, handler := range map[string]nats.MsgHandler{fleet.PullSubject(o.DeviceID): l.onPull, fleet.BaseSubject(o.DeviceID): l.onBase} {
		if _, err := nc.Subscribe(subject, handler); err != nil {
			nc.Close()
			return fail(err)
		}
	}
	l.done.Add(1)
	go l.announceLoop()
	return l, nil
}

// backoff is 0.25 s doubling to 30 s, with up to 25% jitter so a fleet
// that lost its server does not come back all at once.
func backoff(attempts int) time.Duration {
	d := min(250*time.Millisecond<<min(attempts, 10), 30*time.Second)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

// Close stops the link.
func (l *Link) Close() {
	if l.nc == nil {
		return
	}
	l.closed.Do(func() {
		close(l.stop)
		l.done.Wait()
		l.mu.Lock()
		l.st.State = StateClosed
		l.mu.Unlock()
		l.nc.Close()
	})
}

// Status returns the link's state.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *Link) onConnect(c *nats.Conn) {
	l.mu.Lock()
	if l.st.Server != "" {
		l.st.Reconnects++
	}
	l.st.State, l.st.Server = StateConnected, c.ConnectedUrlRedacted()
	l.mu.Unlock()
	l.o.Log.Infof("fleet: connected to %s as %s", c.ConnectedUrlRedacted(), l.o.DeviceID)
	l.announce(c)
}

func (l *Link) onDisconnect(_ *nats.Conn, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.State == StateClosed {
		return
	}
	l.st.State = StateConnecting
	if err != nil {
		l.st.LastError = err.Error()
	}
}

// onAsyncError records what the server refused (a permissions violation).
func (l *Link) onAsyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	l.o.Log.Warnf("fleet: %v", err)
	l.mu.Lock()
	l.st.LastError = err.Error()
	l.mu.Unlock()
}

func (l *Link) announceLoop() {
	defer l.done.Done()
	t := time.NewTicker(l.o.AnnounceEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.nc.IsConnected() {
				l.announce(l.nc)
			}
		}
	}
}

// Announce tells the fleet about the device now (after a rebase request,
// say), besides the regular announcements.
func (l *Link) Announce() {
	if l.nc != nil && l.nc.IsConnected() {
		l.announce(l.nc)
	}
}

func (l *Link) announce(c *nats.Conn) {
	l.mu.Lock()
	digest := l.digest
	l.mu.Unlock()
	base, wants := l.src.Base()
	a := fleet.Announce{ID: l.o.DeviceID, Version: l.o.Version, Preset: l.o.Preset, Step: l.src.Step(), Share: l.o.Share,
		Digest: digest, At: time.Now().UTC(), EverySeconds: l.o.AnnounceEvery.Seconds(), Base: base, WantsBase: wants}
	b, _ := json.Marshal(a)
	if err := c.Publish(fleet.AnnounceSubject(l.o.DeviceID), b); err != nil {
		l.o.Log.Warnf("fleet: announce: %v", err)
	}
}

// current returns the snapshot to serve: the cached one unless the weights
// changed or SnapshotEvery passed since it was built.
func (l *Link) current() ([]byte, string, error) {
	step := l.src.Step()
	l.mu.Lock()
	fresh := l.cache != nil && step == l.step && time.Since(l.built) < l.o.SnapshotEvery
	b, digest := l.cache, l.digest
	l.mu.Unlock()
	if fresh {
		return b, digest, nil
	}
	snap, err := l.src.Snapshot()
	if err != nil {
		return nil, "", err
	}
	if b, err = snap.Encode(); err != nil {
		return nil, "", err
	}
	digest = fleet.Digest(b)
	l.mu.Lock()
	l.cache, l.digest, l.step, l.built = b, digest, snap.Meta.Step, time.Now()
	l.mu.Unlock()
	return b, digest, nil
}

// Current is the snapshot the device serves now (what leaves the device).
func (l *Link) Current() ([]byte, string, error) { return l.current() }

func (l *Link) onPull(m *nats.Msg) {
	var req fleet.PullRequest
	reply := nats.NewMsg(m.Reply)
	result := fleet.StatusSnapshot
	b, digest, err := l.current()
	switch {
	case json.Unmarshal(m.Data, &req) != nil:
		err = errors.New("malformed pull request")
	case err == nil && req.Have == digest:
		result = fleet.StatusUnchanged
	case err == nil && len(b) > int(l.nc.MaxPayload())-64<<10:
		err = fmt.Errorf("snapshot of %d bytes is over the server's message limit of %d", len(b), l.nc.MaxPayload())
	}
	if err != nil {
		result = fleet.StatusError
		reply.Header.Set(fleet.HeaderError, err.Error())
	} else {
		reply.Header.Set(fleet.HeaderDigest, digest)
		if result == fleet.StatusSnapshot {
			reply.Data = b
		}
	}
	reply.Header.Set(fleet.HeaderStatus, result)
	if rerr := m.RespondMsg(reply); rerr != nil && err == nil {
		err = rerr
	}
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Pulls++
	l.st.LastPull, l.st.LastResult = &now, result
	if err != nil {
		l.st.LastError = err.Error()
		l.o.Log.Warnf("fleet: pull: %v", err)
		return
	}
	l.st.LastDigest = digest
	if result == fleet.StatusUnchanged {
		l.st.Unchanged++
	} else {
		l.st.BytesSent += uint64(len(b))
	}
}

// onBase takes the fleet's base model: its digest, which came over the
// fleet's authenticated connection, must be the content's; then the
// device decides whether to load it.
func (l *Link) onBase(m *nats.Msg) {
	digest := m.Header.Get(fleet.HeaderDigest)
	var err error
	switch got := fleet.Digest(m.Data); {
	case !fleet.IsDigest(digest):
		err = fmt.Errorf("base refused: no digest came with it")
	case got != digest:
		err = fmt.Errorf("base refused: its content's digest %s is not the %s the fleet sent", got, digest)
	default:
		err = l.src.LoadBase(digest, m.Data)
	}
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(fleet.HeaderDigest, digest)
	if err != nil {
		reply.Header.Set(fleet.HeaderStatus, fleet.StatusError)
		reply.Header.Set(fleet.HeaderError, err.Error())
		l.o.Log.Warnf("fleet: %v", err)
	} else {
		reply.Header.Set(fleet.HeaderStatus, fleet.StatusLoaded)
		l.o.Log.Infof("fleet: base %s loaded", digest)
	}
	m.RespondMsg(reply)
	l.mu.Lock()
	if err != nil {
		l.st.BaseError = err.Error()
	} else {
		l.st.BaseError = ""
	}
	l.mu.Unlock()
	if err == nil {
		l.Announce()
	}
}
