// Package server is swav-fleet: it embeds a NATS server with JetStream
// (or joins an existing NATS cluster), authenticates devices by their
// certificates, keeps the device inventory and the snapshots in JetStream,
// pulls every online device once per round, and serves an HTTP API.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/fleet/codebook"
	"github.com/swavd/swavd/internal/logging"
)

// Options configure a fleet server.
type Options struct {
	StateDir string // JetStream's file store (embedded)
	Certs    string // ca.pem, server.pem and server-key.pem; fleet.pem and fleet-key.pem for a cluster
	// NATSListen is where the embedded NATS server listens for devices
	// (host:port). NATSURL, when set, names an existing NATS cluster
	// instead, and nothing is embedded.
	NATSListen string
	NATSURL    string
	Replicas   int // JetStream replicas of every bucket

	PullInterval    time.Duration
	PullTimeout     time.Duration
	PullConcurrency int
	History         int // snapshots kept per device
	// MaxSnapshotBytes bounds a snapshot; also the embedded server's
	// largest message.
	MaxSnapshotBytes int
	// CodebookClusters and CodebookMinCount shape the codebook
	// (codebook.clusters, codebook.min_count).
	CodebookClusters int
	CodebookMinCount int64
	// Name identifies this replica in pull claims.
	Name string
	Log  logging.Logger // the zero Logger discards
}

func (o *Options) defaults() {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.PullInterval <= 0 {
		o.PullInterval = 10 * time.Minute
	}
	if o.PullTimeout <= 0 {
		o.PullTimeout = 30 * time.Second
	}
	if o.PullConcurrency <= 0 {
		o.PullConcurrency = 32
	}
	if o.History <= 0 {
		o.History = 20
	}
	if o.MaxSnapshotBytes <= 0 {
		o.MaxSnapshotBytes = 8 << 20
	}
	if o.CodebookClusters <= 0 {
		o.CodebookClusters = 64
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
}

// Server is a running fleet server.
type Server struct {
	o       Options
	ns      *natsserver.Server // nil against an external cluster
	auth    *authenticator
	nc      *nats.Conn
	store   *Store
	metrics *metrics
	sem     chan struct{}

	mu          sync.Mutex
	claimed     map[string]int64 // device -> the round this replica claimed it for
	done        map[string]int64 // device -> the round its pull was started (or left to another replica) in
	handled     map[string]int64 // device -> the round it was pulled in, by this replica or another
	measured    int64            // the last round whose time was recorded
	sendingBase map[string]bool  // devices a base is on its way to

	cbMu      sync.Mutex
	cb        *codebook.Codebook         // the last codebook built
	cbKey     []byte                     // what it was built from
	snapCache map[string]*fleet.Snapshot // parsed newest snapshots, by digest
	storeErr  string                     // last failure to store (a full disk), cleared by a success
	storeErrT time.Time
	crlSeen   time.Time // the CRL's mtime when connections were last checked against it
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// Start brings the fleet server up: NATS (embedded or dialled), the
// buckets, the inventory cache and the announcement subscription. Run
// starts the pull rounds.
func Start(ctx context.Context, o Options) (*Server, error) {
	o.defaults()
	s := &Server{o: o, sem: make(chan struct{}, o.PullConcurrency), claimed: map[string]int64{}, done: map[string]int64{},
		handled: map[string]int64{}, sendingBase: map[string]bool{}}
	s.metrics = newMetrics(s)
	var err error
	if o.NATSURL == "" {
		err = s.startEmbedded()
	} else {
		err = s.dialCluster()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.store, err = OpenStore(ctx, js, o.Replicas, 3*o.PullInterval); err != nil {
		s.Close()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if err := s.store.Watch(wctx); err != nil {
		s.Close()
		return nil, err
	}
	// One replica handles each announcement (a queue group).
	if _, err := s.nc.QueueSubscribe(fleet.AnnounceAll, "swav-fleet", s.onAnnounce); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) startEmbedded() error {
	tlsCfg, ca, err := certs.ServerTLS(s.o.Certs)
	if err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(s.o.NATSListen)
	if err != nil {
		return fmt.Errorf("nats listen address %q: %w", s.o.NATSListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats listen address %q: %w", s.o.NATSListen, err)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	s.auth = &authenticator{ca: ca, crlPath: filepath.Join(s.o.Certs, certs.CRLFile), token: hex.EncodeToString(tok),
		log: s.o.Log, serials: map[uint64]*big.Int{}}
	if _, err := s.auth.currentCRL(); err != nil {
		return err
	}
	opts := &natsserver.Options{
		ServerName: "swav-fleet", Host: host, Port: port,
		TLS: true, TLSVerify: true, TLSConfig: tlsCfg, TLSTimeout: 5,
		CustomClientAuthentication: s.auth,
		JetStream:                  true, StoreDir: filepath.Join(s.o.StateDir, "jetstream"),
		MaxPayload: int32(s.o.MaxSnapshotBytes + 64<<10), MaxPending: int64(4*s.o.MaxSnapshotBytes + 64<<20),
		NoSigs: true, NoLog: true, DisableShortFirstPing: true,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return errors.New("nats: the embedded server did not start in 30 s")
	}
	s.ns = ns
	s.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Token(s.auth.token), nats.Name("swav-fleet"),
		nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: in-process connection: %w", err)
	}
	return nil
}

func (s *Server) dialCluster() error {
	tlsCfg, err := certs.ClientTLS(filepath.Join(s.o.Certs, certs.CAFile), filepath.Join(s.o.Certs, certs.FleetFile), filepath.Join(s.o.Certs, certs.FleetKeyFile))
	if err != nil {
		return err
	}
	s.nc, err = nats.Connect(s.o.NATSURL, nats.Secure(tlsCfg), nats.Name("swav-fleet "+s.o.Name), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.o.Log.Warnf("fleet: NATS disconnected: %v", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { s.o.Log.Infof("fleet: NATS reconnected to %s", c.ConnectedUrl()) }))
	if err != nil {
		return fmt.Errorf("nats: %s: %w", s.o.NATSURL, err)
	}
	return nil
}

// NATSAddr is the embedded server's client address ("" for a cluster).
func (s *Server) NATSAddr() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.Addr().String()
}

// Store is the server's JetStream state.
func (s *Server) Store() *Store { return s.store }

// Close stops the rounds, the connection and the embedded server.
func (s *Server) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	if s.nc != nil {
		s.nc.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

func (s *Server) onAnnounce(m *nats.Msg) {
	id, ok := fleet.DeviceFromAnnounce(m.Subject)
	var a fleet.Announce
	if !ok || json.Unmarshal(m.Data, &a) != nil || a.ID != id {
		s.o.Log.Warnf("fleet: malformed announcement on %s", m.Subject)
		return
	}
	now := time.Now()
	var cameBack bool
	_, err := s.store.UpdateDevice(context.Background(), id, func(d *Device) error {
		cameBack = !d.Online(now) // new (never seen) or back from offline
		if cameBack {             // back from offline: no backoff from its absence
			d.RetryAt, d.Failures = nil, 0
		}
		d.Version, d.Preset, d.AnnouncedStep, d.Base, d.WantsBase = a.Version, a.Preset, a.Step, a.Base, a.WantsBase
		d.LastSeen, d.AnnounceEvery, d.Offline = now, time.Duration(a.EverySeconds*float64(time.Second)), false
		return nil
	})
	if err != nil {
		s.o.Log.Warnf("fleet: device %s announced, not recorded: %v", id, err)
		return
	}
	if a.WantsBase {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.sendBase(id) }()
	}
	if !cameBack {
		return
	}
	s.o.Log.Infof("fleet: device %s is online (version %s, preset %s, step %d)", id, a.Version, a.Preset, a.Step)
	// A new device, or one back after being away, is pulled now rather than
	// at its slot, by whoever holds its claim for this round, unless it was
	// pulled in this round already: still once per round.
	round := s.round(now)
	s.mu.Lock()
	mine, pulled := s.claimed[id] == round, s.handled[id] == round
	s.mu.Unlock()
	if pulled {
		// Already pulled this round (it only looked away, e.g. while the
		// store could not record its announcements): the next slot will do.
		return
	}
	if !mine {
		ok, err := s.store.Claim(context.Background(), round, id, s.o.Name)
		if err != nil || !ok {
			return // the holder pulls it, retrying as its backoff allows
		}
		s.mu.Lock()
		s.claimed[id] = round
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.done[id] = round
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if r := s.Pull(context.Background(), id); r.Result == ResultFailed || r.Result == ResultRejected {
			s.retryLater(id, round)
		}
	}()
}
