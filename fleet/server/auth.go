package server

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
	"github.com/swavd/swavd/internal/logging"
)

// authenticator is the embedded NATS server's custom authentication. TLS
// has already verified the client's certificate against the fleet CA (the
// listener requires one); here the certificate's role and name become a
// NATS user with exactly its permissions, and a revoked certificate is
// refused. The fleet server's own in-process connection carries a random
// token that exists only in this process's memory.
//
// Why custom authentication rather than nats-server's TLS-mapped users: a
// fleet of thousands needs no user list (the permissions follow from the
// certificate's name), and revocation takes effect on the next connection
// without a config reload. Against an external cluster the same rules are
// written out as users by `swav-fleet certs nats-config` (NATSAuthConfig).
type authenticator struct {
	ca      *certs.CA
	crlPath string
	token   string
	log     logging.Logger

	mu       sync.Mutex
	crl      *x509.RevocationList
	crlErr   error
	crlStamp time.Time           // mtime of the CRL file last read
	serials  map[uint64]*big.Int // client id -> certificate serial, to disconnect revoked ones

	refused atomic.Uint64
}

func (a *authenticator) Check(c natsserver.ClientAuthentication) bool {
	if c.Kind() != natsserver.CLIENT {
		return false
	}
	st := c.GetTLSConnectionState()
	if st == nil {
		// Only the in-process connection comes without TLS.
		if a.token != "" && c.GetOpts().Token == a.token {
			c.RegisterUser(&natsserver.User{Username: certs.FleetName})
			return true
		}
		return a.refuse(c, fmt.Errorf("no TLS"))
	}
	crl, err := a.currentCRL()
	if err != nil {
		// Fail closed: a CRL that cannot be trusted revokes everyone but the fleet.
		return a.refuse(c, fmt.Errorf("revocation list unusable: %w", err))
	}
	id, err := certs.Identify(st, crl)
	if err != nil {
		return a.refuse(c, err)
	}
	switch id.Role {
	case certs.RoleDevice:
		c.RegisterUser(&natsserver.User{Username: id.Name, Permissions: devicePermissions(id.Name)})
	case certs.RoleFleet:
		c.RegisterUser(&natsserver.User{Username: certs.FleetName})
	}
	a.mu.Lock()
	a.serials[c.GetID()] = st.VerifiedChains[0][0].SerialNumber
	a.mu.Unlock()
	return true
}

func (a *authenticator) refuse(c natsserver.ClientAuthentication, err error) bool {
	a.refused.Add(1)
	a.log.Warnf("fleet: refused connection from %v: %v", c.RemoteAddress(), err)
	return false
}

// devicePermissions are fleet.DevicePermissions as the embedded server's.
func devicePermissions(id string) *natsserver.Permissions {
	pub, sub := fleet.DevicePermissions(id)
	return &natsserver.Permissions{
		Publish:   &natsserver.SubjectPermission{Allow: pub},
		Subscribe: &natsserver.SubjectPermission{Allow: sub},
		Response:  &natsserver.ResponsePermission{MaxMsgs: 1, Expires: fleet.ReplyWithin},
	}
}

// currentCRL re-reads the CRL when its file changed.
func (a *authenticator) currentCRL() (*x509.RevocationList, error) {
	var stamp time.Time
	if fi, err := os.Stat(a.crlPath); err == nil {
		stamp = fi.ModTime()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !stamp.Equal(a.crlStamp) || (a.crl == nil && a.crlErr == nil && !stamp.IsZero()) {
		a.crl, a.crlErr = a.ca.LoadCRL(a.crlPath)
		a.crlStamp = stamp
		if a.crlErr != nil {
			a.log.Errorf("fleet: %v", a.crlErr)
		}
	}
	return a.crl, a.crlErr
}

// revokedClients re-reads the CRL and returns the ids of connected clients
// whose certificates it now revokes, forgetting clients no longer connected.
func (a *authenticator) revokedClients(connected map[uint64]bool) []uint64 {
	crl, err := a.currentCRL() // an unusable CRL refuses new connections; it disconnects none
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []uint64
	for cid, serial := range a.serials {
		if !connected[cid] {
			delete(a.serials, cid)
			continue
		}
		if err != nil || crl == nil {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				out = append(out, cid)
			}
		}
	}
	return out
}
