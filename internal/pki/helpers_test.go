package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// t0 is the tests' fixed clock: every certificate is issued relative to
// it and every TLS configuration checks at clock(), never at the wall
// clock.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// clock returns a tls.Config.Time function stopped at t.
func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// newTestCA makes a CA in a fresh directory at t0.
func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, created, err := LoadOrCreateCA(t.TempDir(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("LoadOrCreateCA in an empty directory: created = false")
	}
	return ca
}

// issued is an agent's certificate from a test CA.
type issued struct {
	tls    tls.Certificate
	cert   *x509.Certificate
	key    crypto.Signer
	serial *big.Int
}

// issue makes a key and a CSR for certname and has ca sign it at t0.
func issue(t *testing.T, ca *CA, certname string, lifetime time.Duration) issued {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := NewCSR(key, certname)
	if err != nil {
		t.Fatal(err)
	}
	csr, name, err := ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if name != certname {
		t.Fatalf("ParseCSR: certname %q, want %q", name, certname)
	}
	der, serial, err := ca.Sign(csr, certname, lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	return issued{tls: tc, cert: tc.Leaf, key: key, serial: serial}
}

// serverCert makes the agent listener's certificate for 127.0.0.1 and
// localhost at t0.
func serverCert(t *testing.T, ca *CA) tls.Certificate {
	t.Helper()
	c, err := ca.ServerCert([]string{"127.0.0.1", "localhost"}, DefaultServerLifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// neverRevoked is an isRevoked callback for tests that do not revoke.
func neverRevoked(*big.Int) bool { return false }
