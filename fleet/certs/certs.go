// Package certs is the fleet's small certificate authority: a CA, the
// fleet server's certificate, the fleet service's own client certificate
// (for an external NATS cluster) and one certificate per device, all
// ECDSA P-256 (crypto/x509). A certificate's organizational unit says what
// it is for (device, fleet, server) and its common name who: the device id.
// Revocation is a CRL signed by the CA, which the fleet server re-reads and
// checks against the CA before it trusts it.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/swavd/swavd/fleet"
)

// Roles, carried as the certificate's organizational unit.
const (
	RoleDevice = "swav-device"
	RoleFleet  = "swav-fleet"
	RoleServer = "swav-server"
)

// File names in a certificate directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
	FleetFile     = "fleet.pem"
	FleetKeyFile  = "fleet-key.pem"
	CRLFile       = "crl.pem"
)

// FleetName is the fleet service's common name; no device may take it.
const FleetName = "swav-fleet"

// Validity of what Init and Issue make.
var (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 2 * 365 * 24 * time.Hour
	DeviceValidity = 2 * 365 * 24 * time.Hour
)

// DeviceFiles are a device's certificate and key paths in dir.
func DeviceFiles(dir, id string) (cert, key string) {
	return filepath.Join(dir, id+".pem"), filepath.Join(dir, id+"-key.pem")
}

// Init makes a CA, the server certificate (for hosts, plus localhost and
// 127.0.0.1) and the fleet service's client certificate in dir. It refuses
// to overwrite an existing CA: every device certificate hangs on it.
func Init(dir string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return fmt.Errorf("certs: %s already holds a CA; remove it first to start a new fleet", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "swav fleet CA", OrganizationalUnit: []string{"swav-ca"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(CAValidity), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writePair(dir, CAFile, CAKeyFile, der, key); err != nil {
		return err
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return err
	}
	hosts = append(slices.Clone(hosts), "localhost", "127.0.0.1", "::1")
	if err := ca.issue(ServerFile, ServerKeyFile, FleetName+"-server", RoleServer, hosts, ServerValidity); err != nil {
		return err
	}
	return ca.issue(FleetFile, FleetKeyFile, FleetName, RoleFleet, nil, ServerValidity)
}

// Issue makes device id's certificate and key in dir.
func Issue(dir, id string) error {
	if err := fleet.CheckDeviceID(id); err != nil {
		return err
	}
	if id == FleetName || id == FleetName+"-server" {
		return fmt.Errorf("certs: %q is reserved for the fleet service", id)
	}
	cert, key := DeviceFiles(dir, id)
	for _, p := range []string{cert, key} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("certs: %s exists; revoke the device and remove its files to issue it anew", p)
		}
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return err
	}
	return ca.issue(filepath.Base(cert), filepath.Base(key), id, RoleDevice, nil, DeviceValidity)
}

// Revoke adds device id's certificate to the CRL, signed by the CA.
func Revoke(dir, id string) error {
	certPath, _ := DeviceFiles(dir, id)
	leaf, err := readCert(certPath)
	if err != nil {
		return fmt.Errorf("certs: revoke %s: %w", id, err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return err
	}
	crl, err := ca.LoadCRL(filepath.Join(dir, CRLFile))
	if err != nil {
		return err
	}
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	if crl != nil {
		entries = crl.RevokedCertificateEntries
		number.Add(crl.Number, big.NewInt(1))
		for _, e := range entries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return nil // already revoked
			}
		}
	}
	entries = append(entries, x509.RevocationListEntry{SerialNumber: leaf.SerialNumber, RevocationTime: time.Now().UTC()})
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: number, ThisUpdate: now, NextUpdate: now.Add(CAValidity),
		RevokedCertificateEntries: entries}, ca.Cert, ca.key)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, CRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// CA is the fleet's certificate authority; key is nil where only the
// certificate was loaded (the fleet server needs no CA key).
type CA struct {
	Cert *x509.Certificate
	Pool *x509.CertPool
	key  *ecdsa.PrivateKey
	dir  string // where it was loaded from; issue writes there
}

// LoadCA reads dir's CA certificate, and its key when present.
func LoadCA(dir string) (*CA, error) {
	cert, err := readCert(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	ca := &CA{Cert: cert, Pool: x509.NewCertPool(), dir: dir}
	ca.Pool.AddCert(cert)
	if b, err := os.ReadFile(filepath.Join(dir, CAKeyFile)); err == nil {
		if ca.key, err = parseKey(b); err != nil {
			return nil, fmt.Errorf("certs: %s: %w", CAKeyFile, err)
		}
	}
	return ca, nil
}

// LoadCRL reads a CRL (nil, nil when the file does not exist) and checks
// that the CA signed it: an unsigned or foreign list is an error, never
// silently "nothing revoked".
func (ca *CA) LoadCRL(path string) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		return nil, fmt.Errorf("certs: %s holds no PEM CRL", path)
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("certs: %s is not signed by the fleet CA: %w", path, err)
	}
	return crl, nil
}

func (ca *CA) issue(certFile, keyFile, cn, role string, hosts []string, validity time.Duration) error {
	if ca.key == nil {
		return errors.New("certs: the CA key is not here; issue certificates where ca-key.pem is")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{role}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity), KeyUsage: x509.KeyUsageDigitalSignature}
	switch role {
	case RoleServer:
		// Client auth too: the nodes of a NATS cluster dial each other's routes.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	return writePair(ca.dir, certFile, keyFile, der, key)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePair(dir, certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParseECPrivateKey(blk.Bytes)
}

// Identity is who a verified client certificate names.
type Identity struct {
	Name string // device id, or FleetName
	Role string
}

// Identify reads the identity of a verified TLS peer: the leaf of the
// first verified chain. It refuses a connection without one, a revoked
// certificate (serial in crl), a role it does not know and a device name
// that is not a valid device id.
func Identify(st *tls.ConnectionState, crl *x509.RevocationList) (Identity, error) {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("no verified client certificate")
	}
	leaf := st.VerifiedChains[0][0]
	if crl != nil {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return Identity{}, fmt.Errorf("certificate of %q (serial %x) is revoked", leaf.Subject.CommonName, leaf.SerialNumber)
			}
		}
	}
	id := Identity{Name: leaf.Subject.CommonName}
	if ou := leaf.Subject.OrganizationalUnit; len(ou) == 1 {
		id.Role = ou[0]
	}
	switch id.Role {
	case RoleDevice:
		if err := fleet.CheckDeviceID(id.Name); err != nil || id.Name == FleetName {
			return Identity{}, fmt.Errorf("device certificate with a bad name %q", id.Name)
		}
	case RoleFleet:
		if id.Name != FleetName {
			return Identity{}, fmt.Errorf("fleet certificate with a bad name %q", id.Name)
		}
	default:
		return Identity{}, fmt.Errorf("certificate of %q has no client role (OU %v)", id.Name, leaf.Subject.OrganizationalUnit)
	}
	return id, nil
}

// ServerTLS is the NATS listener's TLS: the server certificate, and a
// client certificate from the CA required of everyone.
func ServerTLS(dir string) (*tls.Config, *CA, error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12}, ca, nil
}

// ClientTLS is a client's TLS: its certificate and the fleet CA as the only
// root, so it talks to no server the fleet did not certify.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	caCert, err := readCert(caFile)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Issued lists the certificates in dir with a client role (devices and the
// fleet), by their NATS user name: the subject as nats-server's
// verify_and_map spells it. Revoked ones (in the CA-signed CRL) are left out.
func Issued(dir string) (map[string]Identity, error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	crl, err := ca.LoadCRL(filepath.Join(dir, CRLFile))
	if err != nil {
		return nil, err
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	out := map[string]Identity{}
	for _, p := range paths {
		cert, err := readCert(p)
		if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
			continue // keys, the CRL, foreign certificates
		}
		st := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
		id, err := Identify(st, crl)
		if err != nil {
			continue // revoked, or not a client certificate
		}
		out[cert.Subject.ToRDNSequence().String()] = id
	}
	return out, nil
}
