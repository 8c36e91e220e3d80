package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handshake runs a real TLS handshake between the fleet's server TLS and
// a client, returning what the server saw of the client.
func handshake(t *testing.T, serverDir string, client *tls.Config) (*tls.ConnectionState, error) {
	t.Helper()
	scfg, _, err := ServerTLS(serverDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *tls.ConnectionState, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			got <- nil
			return
		}
		st := tc.ConnectionState()
		got <- &st
	}()
	client.ServerName = "localhost"
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		c.Write([]byte("x"))
		buf := make([]byte, 1)
		c.Read(buf)
		c.Close()
	}
	st := <-got
	if st == nil && err == nil {
		err = errClientRefused
	}
	return st, err
}

var errClientRefused = os.ErrPermission

func TestIssueIdentifyRevoke(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, []string{"fleet.example"}); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, nil); err == nil || !strings.Contains(err.Error(), "already holds a CA") {
		t.Fatalf("second init: %v", err)
	}
	if err := Issue(dir, "cam-1"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"swav-fleet", "a.b", "../x"} {
		if err := Issue(dir, bad); err == nil {
			t.Errorf("issued %q", bad)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "cam-1-key.pem")); fi.Mode().Perm() != 0o600 {
		t.Errorf("device key mode %v", fi.Mode().Perm())
	}
	cert, key := DeviceFiles(dir, "cam-1")
	client, err := ClientTLS(filepath.Join(dir, CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := handshake(t, dir, client)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := LoadCA(dir)
	crl, err := ca.LoadCRL(filepath.Join(dir, CRLFile))
	if err != nil || crl != nil {
		t.Fatalf("no CRL yet: %v %v", crl, err)
	}
	id, err := Identify(st, crl)
	if err != nil || id != (Identity{Name: "cam-1", Role: RoleDevice}) {
		t.Fatalf("identity %+v, %v", id, err)
	}
	fleetClient, _ := ClientTLS(filepath.Join(dir, CAFile), filepath.Join(dir, FleetFile), filepath.Join(dir, FleetKeyFile))
	st, _ = handshake(t, dir, fleetClient)
	if id, err := Identify(st, nil); err != nil || id.Role != RoleFleet {
		t.Fatalf("fleet identity %+v, %v", id, err)
	}

	if err := Revoke(dir, "cam-1"); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(dir, "cam-1"); err != nil { // idempotent
		t.Fatal(err)
	}
	crl, err = ca.LoadCRL(filepath.Join(dir, CRLFile))
	if err != nil || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL after revoke: %v", err)
	}
	st, _ = handshake(t, dir, client)
	if _, err := Identify(st, crl); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked device identified: %v", err)
	}
}

// A certificate from another CA fails the handshake; the server
// certificate (no client role) is refused as a client; a CRL signed by
// another CA is refused, not taken as "nothing revoked".
func TestForeignCertificatesAndCRLsAreRefused(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if err := Init(d, nil); err != nil {
			t.Fatal(err)
		}
		if err := Issue(d, "cam-1"); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := DeviceFiles(other, "cam-1")
	foreign, _ := ClientTLS(filepath.Join(dir, CAFile), cert, key)
	if _, err := handshake(t, dir, foreign); err == nil {
		t.Fatal("a device certificate from another CA was accepted")
	}
	// The server certificate (server auth only) is no client identity: the
	// handshake refuses it, and Identify would too.
	asClient, _ := ClientTLS(filepath.Join(dir, CAFile), filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if st, err := handshake(t, dir, asClient); err == nil {
		if _, err := Identify(st, nil); err == nil {
			t.Fatal("the server certificate was taken as a client identity")
		}
	}
	if err := Revoke(other, "cam-1"); err != nil {
		t.Fatal(err)
	}
	ca, _ := LoadCA(dir)
	if _, err := ca.LoadCRL(filepath.Join(other, CRLFile)); err == nil || !strings.Contains(err.Error(), "not signed by the fleet CA") {
		t.Fatalf("foreign CRL: %v", err)
	}
}
