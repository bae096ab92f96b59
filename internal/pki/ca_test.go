package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	ca, created, err := LoadOrCreateCA(dir, t0)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA in a new directory: created=%v, %v", created, err)
	}
	for file, want := range map[string]os.FileMode{"": 0o700, CACertFile: 0o644, CAKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", filepath.Join(dir, file), got, want)
		}
	}
	c := ca.Cert()
	if _, ok := c.PublicKey.(ed25519.PublicKey); !ok {
		t.Errorf("CA key is %T, want ed25519", c.PublicKey)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA certificate cannot sign certificates")
	}
	if !c.NotAfter.Equal(t0.Add(CALifetime)) || c.NotBefore.After(t0) {
		t.Errorf("CA valid %v to %v, want until %v", c.NotBefore, c.NotAfter, t0.Add(CALifetime))
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	fileCert, err := ParseCertPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fileCert.Raw)
	if want := FormatFingerprint(sum[:]); ca.Fingerprint() != want || FingerprintOf(ca.CertDER()) != want {
		t.Errorf("Fingerprint() = %s, want the SHA-256 of ca.crt's DER, %s", ca.Fingerprint(), want)
	}

	// The second start loads the same CA.
	again, created, err := LoadOrCreateCA(dir, t0.Add(365*24*time.Hour))
	if err != nil || created {
		t.Fatalf("LoadOrCreateCA again: created=%v, %v", created, err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("reloaded CA %s, want %s", again.Fingerprint(), ca.Fingerprint())
	}
	// It can sign, and its certificates verify against the first.
	a := issue(t, again, "web1.example.com", time.Hour)
	if _, err := a.cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate from the reloaded CA: %v", err)
	}
}

func TestLoadCARefuses(t *testing.T) {
	other := t.TempDir()
	if _, _, err := LoadOrCreateCA(other, t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		now   time.Time
		msg   string
		is    error
	}{
		{"key readable by group", func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, CAKeyFile), 0o640) }, t0, "chmod 600", ErrKeyFileMode},
		{"key readable by all", func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, CAKeyFile), 0o644) }, t0, "mode 0644", ErrKeyFileMode},
		{"key writable by others", func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, CAKeyFile), 0o602) }, t0, "chmod 600", ErrKeyFileMode},
		{"key missing", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, CAKeyFile)) }, t0, "restore ca.key from a backup", nil},
		{"certificate missing", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, CACertFile)) }, t0, "restore ca.crt from a backup", nil},
		{"pair from two CAs", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other, CAKeyFile), filepath.Join(dir, CAKeyFile))
		}, t0, "do not belong together", nil},
		{"expired", func(*testing.T, string) {}, t0.Add(CALifetime + time.Hour), "expired on 2036", nil},
		{"certificate not PEM", func(t *testing.T, dir string) { write(t, filepath.Join(dir, CACertFile), "hello", 0o644) }, t0, "not a PEM", nil},
		{"key not PEM", func(t *testing.T, dir string) { write(t, filepath.Join(dir, CAKeyFile), "hello", 0o600) }, t0, "not a PEM", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateCA(dir, t0); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			ca, created, err := LoadOrCreateCA(dir, tt.now)
			if err == nil {
				t.Fatalf("LoadOrCreateCA = %v (created %v), want an error", ca.Fingerprint(), created)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q: want it to say %q and name a file in %s", err, tt.msg, dir)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(b), fi.Mode().Perm())
}

func TestSign(t *testing.T) {
	ca := newTestCA(t)
	const name = "web1.example.com"
	edKey, _ := NewKey()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	csr := func(key any, tmpl x509.CertificateRequest) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	plain := x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}
	tampered := csr(edKey, plain)
	tampered[len(tampered)-1] ^= 1 // a bit of the signature
	tests := []struct {
		name     string
		csr      []byte
		certname string
		lifetime time.Duration
		msg      string // "" = signed
	}{
		{"ed25519", csr(edKey, plain), name, DefaultAgentLifetime, ""},
		{"ECDSA P-256", csr(p256, plain), name, DefaultAgentLifetime, ""},
		{"common name only", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}), name, time.Hour, ""},
		{"ECDSA P-384", csr(p384, plain), name, time.Hour, "only P-256"},
		{"RSA-2048", csr(rsaKey, plain), name, time.Hour, "RSA key (2048 bits)"},
		{"another certname", csr(edKey, plain), "db1.example.com", time.Hour, `asks for certname "web1.example.com", not "db1.example.com"`},
		{"extra DNS name", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name, "db1.example.com"}}), name, time.Hour, "also asks for DNS names"},
		{"DNS name differs", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{"db1.example.com"}}), name, time.Hour, "also asks for DNS names"},
		{"IP address", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}), name, time.Hour, "IP, email or URI"},
		{"URI", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{{Scheme: "spiffe", Host: "x"}}}), name, time.Hour, "IP, email or URI"},
		{"wildcard", csr(edKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: "*.example.com"}}), "*.example.com", time.Hour, "wildcards"},
		{"bad signature", tampered, name, time.Hour, "bad signature"},
		{"zero lifetime", csr(edKey, plain), name, 0, "must be positive"},
		{"outlives the CA", csr(edKey, plain), name, CALifetime + time.Second, "after the CA itself expires"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := x509.ParseCertificateRequest(tt.csr)
			if err != nil {
				t.Fatal(err)
			}
			der, serial, err := ca.Sign(req, tt.certname, tt.lifetime, t0)
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Sign = %v, want an error saying %q", err, tt.msg)
				}
				if _, _, perr := ParseCSR(tt.csr); perr == nil && tt.certname == req.Subject.CommonName && tt.lifetime > 0 && tt.lifetime <= CALifetime {
					t.Errorf("ParseCSR accepted a CSR Sign refuses")
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if c.SerialNumber.Cmp(serial) != 0 || serial.Sign() <= 0 || serial.BitLen() > 128 || seen[serial.String()] {
				t.Errorf("serial %v (returned %v): want a new positive 128-bit serial", c.SerialNumber, serial)
			}
			seen[serial.String()] = true
			if c.Subject.CommonName != name || !slices.Equal(c.DNSNames, []string{name}) || len(c.IPAddresses)+len(c.URIs)+len(c.EmailAddresses) != 0 {
				t.Errorf("names: CN %q, DNS %q, IPs %v, URIs %v", c.Subject.CommonName, c.DNSNames, c.IPAddresses, c.URIs)
			}
			if got, err := Certname(c); got != name || err != nil {
				t.Errorf("Certname = %q, %v", got, err)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.IsCA {
				t.Errorf("ExtKeyUsage %v, IsCA %v: want client auth only", c.ExtKeyUsage, c.IsCA)
			}
			if !c.NotBefore.Equal(t0.Add(-clockSkew)) || !c.NotAfter.Equal(t0.Add(tt.lifetime)) {
				t.Errorf("valid %v to %v, want %v to %v", c.NotBefore, c.NotAfter, t0.Add(-clockSkew), t0.Add(tt.lifetime))
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify as a client: %v", err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, DNSName: name}); err == nil {
				t.Error("an agent certificate verifies as a server certificate")
			}
		})
	}
}

func TestSerialsDiffer(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	der, _ := NewCSR(key, "web1")
	csr, _, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 64 {
		_, serial, err := ca.Sign(csr, "web1", time.Hour, t0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[serial.String()] {
			t.Fatalf("serial %v issued twice", serial)
		}
		seen[serial.String()] = true
	}
}

func TestServerCert(t *testing.T) {
	ca := newTestCA(t)
	sc, err := ca.ServerCert([]string{"127.0.0.1", "localhost", "::1", "Muster.Example.com."}, DefaultServerLifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Certificate) != 2 || string(sc.Certificate[1]) != string(ca.CertDER()) {
		t.Fatal("the server's chain does not end with the CA certificate")
	}
	c := sc.Leaf
	if !slices.Equal(c.DNSNames, []string{"localhost", "muster.example.com"}) || len(c.IPAddresses) != 2 {
		t.Errorf("SANs: DNS %q, IPs %v", c.DNSNames, c.IPAddresses)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage %v, want server auth only", c.ExtKeyUsage)
	}
	if _, ok := sc.PrivateKey.(ed25519.PrivateKey); !ok {
		t.Errorf("server key is %T, want ed25519", sc.PrivateKey)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1", "muster.example.com"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the server certificate verifies as a client certificate")
	}
	for _, hosts := range [][]string{nil, {"bad host"}, {"*.example.com"}} {
		if _, err := ca.ServerCert(hosts, time.Hour, t0); err == nil {
			t.Errorf("ServerCert(%q) succeeded", hosts)
		}
	}
}

// TestSignDERRoundTrip checks the PEM forms the agent and server exchange.
func TestSignDERRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	der, err := NewCSR(key, "web1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	csr, name, err := ParseCSR(EncodeCSRPEM(der))
	if err != nil || name != "web1.example.com" {
		t.Fatalf("ParseCSR(PEM) = %q, %v", name, err)
	}
	if _, _, err := ParseCSR(EncodeCertPEM(der)); err == nil || !strings.Contains(err.Error(), "CERTIFICATE") {
		t.Errorf("ParseCSR of a CERTIFICATE block = %v", err)
	}
	certDER, serial, err := ca.Sign(csr, name, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent", "agent.crt")
	if err := SaveCert(path, certDER); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCert(path)
	if err != nil || got.SerialNumber.Cmp(serial) != 0 {
		t.Fatalf("LoadCert = %v, %v", got, err)
	}
	other, _ := NewKey()
	if _, err := TLSCertificate(certDER, other); err == nil {
		t.Error("TLSCertificate paired a certificate with another key")
	}
	if FormatSerial(big.NewInt(255)) != "ff" {
		t.Errorf("FormatSerial(255) = %q", FormatSerial(big.NewInt(255)))
	}
}
