package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ErrNoPeerCertificate is what [PeerCertname] returns for a connection
// whose peer sent no certificate: an agent enrolling, on a listener with
// [CA.EnrollServerTLSConfig].
var ErrNoPeerCertificate = errors.New("the peer sent no certificate")

// ErrRevoked marks a handshake refused because the peer's certificate is
// revoked.
var ErrRevoked = errors.New("certificate revoked")

// ServerTLSConfig is the agent listener's TLS configuration: TLS 1.3 at
// least, serverCert (from [CA.ServerCert]) as the server's certificate,
// and a client certificate required and verified against this CA alone
// (chain, validity dates at the config's Time, client-auth usage) on every
// handshake. Then the peer's identity must be well-formed ([PeerCertname])
// and isRevoked, asked with the certificate's serial on every connection,
// must say it is not revoked. isRevoked is a look-up in the server's
// store, not a cached list; it must answer true when it cannot tell (the
// store is down), so that failures refuse. Session tickets are disabled,
// so no connection resumes without these checks. A refused handshake
// returns the reason to the server (wrapping [ErrRevoked] for a revoked
// serial) and only "bad certificate" to the peer: the server should log
// it. isRevoked must not be nil.
func (ca *CA) ServerTLSConfig(serverCert tls.Certificate, isRevoked func(serial *big.Int) bool) *tls.Config {
	return ca.serverTLSConfig(serverCert, isRevoked, tls.RequireAndVerifyClientCert)
}

// EnrollServerTLSConfig is [CA.ServerTLSConfig] for a listener that also
// serves enrollment, where an agent has no certificate yet: a peer may
// send no certificate, but one it sends is checked exactly as there. Each
// request handler must then call [PeerCertname] and refuse anything but
// enrollment when it returns [ErrNoPeerCertificate].
func (ca *CA) EnrollServerTLSConfig(serverCert tls.Certificate, isRevoked func(serial *big.Int) bool) *tls.Config {
	return ca.serverTLSConfig(serverCert, isRevoked, tls.VerifyClientCertIfGiven)
}

func (ca *CA) serverTLSConfig(serverCert tls.Certificate, isRevoked func(*big.Int) bool, auth tls.ClientAuthType) *tls.Config {
	if isRevoked == nil {
		panic("pki: a server TLS configuration needs an isRevoked callback")
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{serverCert},
		ClientAuth:             auth,
		ClientCAs:              ca.pool,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 && auth != tls.RequireAndVerifyClientCert {
				return nil
			}
			if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
				return errors.New("client certificate not verified")
			}
			leaf := cs.VerifiedChains[0][0]
			name, err := Certname(leaf)
			if err != nil {
				return err
			}
			if isRevoked(leaf.SerialNumber) {
				return fmt.Errorf("%w: %s (serial %s) may not connect", ErrRevoked, name, FormatSerial(leaf.SerialNumber))
			}
			return nil
		},
	}
}

// PeerCertname returns the certname of the peer of a connection whose
// certificate the TLS stack verified (what a server with
// [CA.ServerTLSConfig] sees; for HTTP, *r.TLS). It is the certificate's
// one DNS name, which must equal its common name. A peer that sent no
// certificate gives [ErrNoPeerCertificate].
func PeerCertname(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		if len(cs.PeerCertificates) == 0 {
			return "", ErrNoPeerCertificate
		}
		return "", errors.New("the peer's certificate was not verified")
	}
	return Certname(cs.VerifiedChains[0][0])
}

// Certname returns the identity an agent certificate carries: one DNS
// name, a valid certname, equal to the common name, and no other name.
func Certname(c *x509.Certificate) (string, error) {
	cn := c.Subject.CommonName
	if len(c.DNSNames) != 1 || len(c.IPAddresses) > 0 || len(c.EmailAddresses) > 0 || len(c.URIs) > 0 {
		return "", fmt.Errorf("certificate %q (serial %s): an agent certificate carries exactly one name, its certname", clip(cn), FormatSerial(c.SerialNumber))
	}
	name := c.DNSNames[0]
	if cn != name {
		return "", fmt.Errorf("certificate for %q (serial %s) has common name %q: the two must agree", clip(name), FormatSerial(c.SerialNumber), clip(cn))
	}
	if err := ValidCertname(name); err != nil {
		return "", fmt.Errorf("certificate serial %s: %w", FormatSerial(c.SerialNumber), err)
	}
	return name, nil
}

// ClientTLSConfig is an enrolled agent's TLS configuration: TLS 1.3 at
// least, clientCert as its certificate, and the server's certificate
// verified against the CA caCertDER alone (pinned: the system's roots are
// not used), with the server-auth usage and the host name dialled.
func ClientTLSConfig(caCertDER []byte, clientCert tls.Certificate) (*tls.Config, error) {
	ca, err := x509.ParseCertificate(caCertDER)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("certificate %q is not a CA certificate", ca.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      pool,
		Certificates: []tls.Certificate{clientCert},
	}, nil
}

// FirstContactTLSConfig is an agent's TLS configuration before it knows
// the CA: on its first connection, to enroll. server is the address it
// dials (HOST or HOST:PORT). The server must send the CA certificate
// after its own, and the handshake fails unless that CA's SHA-256
// fingerprint is fingerprint (compared in constant time; the error wraps
// [ErrFingerprintMismatch]), the CA signed the server's certificate, and
// that certificate is valid now for the host dialled and for server auth.
// With insecure (--insecure-first-contact) and no fingerprint, the
// fingerprint is not compared: the agent trusts whatever CA answers, and
// must say so loudly, printing [PeerCA]'s fingerprint. Exactly one of the
// two must be given. The certificates are checked at the returned
// config's Time (time.Now when nil).
func FirstContactTLSConfig(server, fingerprint string, insecure bool) (*tls.Config, error) {
	host := server
	if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	var want []byte
	switch {
	case fingerprint == "" && !insecure:
		return nil, errors.New("first contact with the server: give the CA's fingerprint (--ca-fingerprint), " +
			"or trust whatever answers with --insecure-first-contact")
	case fingerprint != "" && insecure:
		return nil, errors.New("first contact with the server: --ca-fingerprint and --insecure-first-contact exclude each other")
	case fingerprint != "":
		var err error
		if want, err = ParseFingerprint(fingerprint); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         host,
		InsecureSkipVerify: true, // checked by VerifyConnection, against the pinned CA
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		now := time.Now()
		if cfg.Time != nil {
			now = cfg.Time()
		}
		return verifyFirstContact(cs.PeerCertificates, host, want, now)
	}
	return cfg, nil
}

// verifyFirstContact checks the chain a server sent on first contact:
// leaf first, the CA last.
func verifyFirstContact(certs []*x509.Certificate, host string, want []byte, now time.Time) error {
	if len(certs) < 2 {
		return fmt.Errorf("server %s sent no CA certificate after its own: is it a muster agent listener?", host)
	}
	ca := certs[len(certs)-1]
	if want != nil {
		got := sha256.Sum256(ca.Raw)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fmt.Errorf("server %s: %w: its CA is %s, but %s was expected: refusing to trust it",
				host, ErrFingerprintMismatch, FormatFingerprint(got[:]), FormatFingerprint(want))
		}
	}
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return fmt.Errorf("server %s: the last certificate of its chain is not a CA", host)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("server %s: its CA certificate is not self-signed: %w", host, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     host,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("server %s: its certificate: %w", host, err)
	}
	return nil
}

// PeerCA returns the DER bytes of the CA certificate a server sent on a
// connection made with [FirstContactTLSConfig] (which verified it): what
// the agent saves and pins with [ClientTLSConfig] from then on.
func PeerCA(cs tls.ConnectionState) ([]byte, error) {
	n := len(cs.PeerCertificates)
	if n < 2 || !cs.PeerCertificates[n-1].IsCA {
		return nil, errors.New("the server sent no CA certificate")
	}
	return cs.PeerCertificates[n-1].Raw, nil
}

// RenewAt returns when a certificate should be renewed: two-thirds of the
// way from its NotBefore to its NotAfter.
func RenewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life / 3 * 2)
}

// NeedsRenewal reports whether cert has reached two-thirds of its
// lifetime at now ([RenewAt]), or is past it.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	return !now.Before(RenewAt(cert))
}

// FormatSerial prints a serial number the way `muster cert list` should:
// lowercase hex.
func FormatSerial(serial *big.Int) string {
	if serial == nil {
		return "<none>"
	}
	return serial.Text(16)
}
