package pki

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The CA's files in the server's data directory.
const (
	CACertFile = "ca.crt" // the root certificate, PEM, mode 0644
	CAKeyFile  = "ca.key" // its ed25519 key, PKCS #8 PEM, mode 0600
)

// Lifetimes. An agent renews at two-thirds of its certificate's lifetime
// ([NeedsRenewal]), so with the default it renews after 60 days and may be
// offline for up to 30 more before it has to enroll again. Revocation is
// checked online on every connection, so a short lifetime is not what
// ends a stolen certificate's use; it bounds how long a forgotten node
// stays trusted.
const (
	CALifetime            = 10 * 365 * 24 * time.Hour
	DefaultAgentLifetime  = 90 * 24 * time.Hour
	DefaultServerLifetime = 90 * 24 * time.Hour
)

// clockSkew is how far back a certificate's NotBefore is set, so that a
// node whose clock is a little behind the server's accepts it at once.
const clockSkew = 5 * time.Minute

// CA is the server's certificate authority. It is safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool // the CA alone
	fp   string
}

// LoadOrCreateCA loads the CA from dir (ca.crt and ca.key), or, when
// neither file exists, makes a new ed25519 CA valid for [CALifetime] from
// now, writes it there (creating dir with mode 0700 if needed) and
// returns created = true. It refuses a key file readable by group or
// others (wrapping [ErrKeyFileMode]), a certificate without its key or a
// key without its certificate (making a new CA then would cut off every
// enrolled agent), a pair that does not belong together, and a CA that
// has expired by now.
func LoadOrCreateCA(dir string, now time.Time) (*CA, bool, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certMissing, err := missing(certPath)
	if err != nil {
		return nil, false, fmt.Errorf("CA certificate: %w", err)
	}
	keyMissing, err := missing(keyPath)
	if err != nil {
		return nil, false, fmt.Errorf("CA key: %w", err)
	}
	switch {
	case certMissing && keyMissing:
		ca, err := createCA(nil, now)
		if err != nil {
			return nil, false, err
		}
		if err := ca.write(certPath, keyPath); err != nil {
			return nil, false, err
		}
		return ca, true, nil
	case certMissing:
		return nil, false, fmt.Errorf("CA key %s exists but its certificate %s does not: restore %s from a backup "+
			"(if no agent was ever enrolled, remove %s to make a new CA)", keyPath, certPath, CACertFile, keyPath)
	case keyMissing:
		return nil, false, fmt.Errorf("CA certificate %s exists but its key %s does not: restore %s from a backup "+
			"(a new CA would cut off every enrolled agent)", certPath, keyPath, CAKeyFile)
	}
	ca, err := loadCA(certPath, keyPath, now)
	return ca, false, err
}

// missing reports whether path does not exist.
func missing(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil
}

// loadCA reads and checks an existing CA.
func loadCA(certPath, keyPath string, now time.Time) (*CA, error) {
	key, err := LoadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	cert, err := LoadCert(certPath)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return nil, fmt.Errorf("CA certificate %s is not a CA certificate", certPath)
	case !publicKeysEqual(cert.PublicKey, key.Public()):
		return nil, fmt.Errorf("CA certificate %s and key %s do not belong together", certPath, keyPath)
	case now.After(cert.NotAfter):
		return nil, fmt.Errorf("CA certificate %s expired on %s: every agent certificate it signed has expired too",
			certPath, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("CA certificate %s is not self-signed: %w", certPath, err)
	}
	return newCA(cert, key), nil
}

// createCA makes a self-signed CA valid for CALifetime from now, with key
// or, when key is nil, a new ed25519 key. (Only the benchmark passes
// another key: RSA-4096, to compare with Puppet's CA.)
func createCA(key crypto.Signer, now time.Time) (*CA, error) {
	if key == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("making the CA key: %w", err)
		}
		key = k
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"muster"},
			CommonName:   "muster CA " + now.UTC().Format("2006-01-02T15:04:05Z"),
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // no intermediate CAs
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("making the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("making the CA certificate: %w", err)
	}
	return newCA(cert, key), nil
}

func newCA(cert *x509.Certificate, key crypto.Signer) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool, fp: FingerprintOf(cert.Raw)}
}

// write saves a new CA: the key first, then the certificate, each created
// exclusively, so that two servers starting at once on one directory
// cannot overwrite each other's CA.
func (ca *CA) write(certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	if err := writeFileExcl(keyPath, pemEncode(pemKey, keyDER), 0o600); err != nil {
		return fmt.Errorf("writing the CA key: %w", err)
	}
	if err := writeFileExcl(certPath, EncodeCertPEM(ca.cert.Raw), 0o644); err != nil {
		return fmt.Errorf("writing the CA certificate: %w", err)
	}
	return nil
}

// Cert returns the CA's certificate. It must not be modified.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// CertDER returns the CA certificate's DER bytes: what agents pin and
// what [ClientTLSConfig] takes.
func (ca *CA) CertDER() []byte { return ca.cert.Raw }

// Fingerprint returns the CA's fingerprint, "sha256:" and 64 lowercase
// hex digits: what the operator gives agents as --ca-fingerprint.
func (ca *CA) Fingerprint() string { return ca.fp }

// Pool returns a certificate pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Sign issues an agent's client certificate for certname from csr (parse
// one with [ParseCSR]), valid from now (less five minutes of clock skew)
// for lifetime. The CSR's signature and key type are checked, and the
// name it asks for must be certname. The certificate carries certname as
// its common name and its one DNS name, the client-auth extended key
// usage only, and a random 128-bit serial, which Sign returns with the
// DER bytes. A certificate that would outlive the CA is refused.
func (ca *CA) Sign(csr *x509.CertificateRequest, certname string, lifetime time.Duration, now time.Time) ([]byte, *big.Int, error) {
	if err := ValidCertname(certname); err != nil {
		return nil, nil, err
	}
	if csr == nil {
		return nil, nil, fmt.Errorf("signing a certificate for %s: no CSR", certname)
	}
	got, err := checkCSR(csr)
	if err != nil {
		return nil, nil, err
	}
	if got != certname {
		return nil, nil, fmt.Errorf("CSR asks for certname %q, not %q: refusing to sign", got, certname)
	}
	notAfter, err := ca.notAfter(certname, lifetime, now)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: certname},
		DNSNames:              []string{certname},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing a certificate for %s: %w", certname, err)
	}
	return der, serial, nil
}

// notAfter checks a lifetime and returns the end of a certificate's
// validity.
func (ca *CA) notAfter(name string, lifetime time.Duration, now time.Time) (time.Time, error) {
	if lifetime <= 0 {
		return time.Time{}, fmt.Errorf("certificate for %s: the lifetime must be positive, not %v", name, lifetime)
	}
	end := now.Add(lifetime)
	if end.After(ca.cert.NotAfter) {
		return time.Time{}, fmt.Errorf("certificate for %s would be valid until %s, after the CA itself expires (%s): the CA must be replaced first",
			name, end.UTC().Format(time.RFC3339), ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return end, nil
}

// ServerCert makes a certificate and a new ed25519 key for a server that
// agents connect to (the agent listener; later NATS), valid for lifetime
// from now. hosts are the names agents dial: IP addresses become IP SANs,
// anything else a DNS SAN ("localhost" and "127.0.0.1" in tests). The
// certificate carries the server-auth extended key usage only. The chain
// in the returned tls.Certificate ends with the CA certificate, so that an
// agent on first contact can check the CA's fingerprint
// ([FirstContactTLSConfig]). The key is not written anywhere: a server
// makes a new one at every start.
func (ca *CA) ServerCert(hosts []string, lifetime time.Duration, now time.Time) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("server certificate: no host names or addresses")
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimSpace(h), ".")
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			ips = append(ips, ip)
			continue
		}
		h = strings.ToLower(h)
		if err := ValidCertname(h); err != nil {
			return tls.Certificate{}, fmt.Errorf("server certificate: host %q: %w", h, err)
		}
		dns = append(dns, h)
	}
	notAfter, err := ca.notAfter(hosts[0], lifetime, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: making a key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: strings.TrimSpace(hosts[0])},
		DNSNames:              dns,
		IPAddresses:           ips,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate for %s: %w", strings.Join(hosts, ", "), err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// newSerial returns a random positive serial number of 128 bits at most.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("making a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
