package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsServer accepts TLS connections on 127.0.0.1 and, for each, reports
// the handshake's outcome on results: the peer's certname, or the error.
// A connection that succeeds is answered with the certname and closed.
type tlsServer struct {
	addr    string
	results chan serverResult
}

type serverResult struct {
	certname string
	err      error
}

func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &tlsServer{addr: ln.Addr().String(), results: make(chan serverResult, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				defer tc.Close()
				err := tc.Handshake()
				var name string
				if err == nil {
					name, err = PeerCertname(tc.ConnectionState())
					if errors.Is(err, ErrNoPeerCertificate) {
						tc.Write([]byte("enroll"))
					} else if err == nil {
						tc.Write([]byte(name))
					}
				}
				s.results <- serverResult{name, err}
			}()
		}
	}()
	return s
}

// dial connects with cfg and reads the server's answer. It returns the
// answer, what the server saw, and the client's handshake or read error.
func (s *tlsServer) dial(t *testing.T, cfg *tls.Config) (string, serverResult, error) {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, cfg)
	var reply []byte
	if err == nil {
		reply, err = io.ReadAll(c) // in TLS 1.3 a refused client certificate shows here
		c.Close()
		if err == nil && len(reply) == 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	return string(reply), <-s.results, err
}

// agentConfig is an enrolled agent's configuration at the fixed clock.
func agentConfig(t *testing.T, ca *CA, cert tls.Certificate, now time.Time) *tls.Config {
	t.Helper()
	cfg, err := ClientTLSConfig(ca.CertDER(), cert)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Time = clock(now)
	return cfg
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	stranger := newTestCA(t) // another server's CA
	web := issue(t, ca, "web1.example.com", time.Hour)
	db := issue(t, ca, "db1.example.com", DefaultAgentLifetime)
	foreign := issue(t, stranger, "web1.example.com", time.Hour)
	srvCert := serverCert(t, ca)

	// A certificate from the right CA whose two names disagree (Sign never
	// makes one).
	mismatched := func() tls.Certificate {
		key, _ := NewKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "web1.example.com"},
			DNSNames: []string{"db1.example.com"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
		if err != nil {
			t.Fatal(err)
		}
		tc, _ := TLSCertificate(der, key)
		return tc
	}()

	tests := []struct {
		name      string
		cert      tls.Certificate
		at        time.Time // the server's clock
		maxTLS    uint16
		want      string // the certname the server sees; "" = refused
		serverErr string // part of the server's error when refused
	}{
		{"agent A", web.tls, t0.Add(time.Minute), 0, "web1.example.com", ""},
		{"agent B", db.tls, t0.Add(time.Minute), 0, "db1.example.com", ""},
		{"unknown CA", foreign.tls, t0.Add(time.Minute), 0, "", "certificate signed by unknown authority"},
		{"no certificate", tls.Certificate{}, t0.Add(time.Minute), 0, "", "didn't provide a certificate"},
		{"expired", web.tls, t0.Add(2 * time.Hour), 0, "", "expired"},
		{"not yet valid", web.tls, t0.Add(-time.Hour), 0, "", "not yet valid"},
		{"server certificate as a client", srvCert, t0.Add(time.Minute), 0, "", "incompatible key usage"},
		{"common name differs from DNS name", mismatched, t0.Add(time.Minute), 0, "", "the two must agree"},
		{"TLS 1.2", web.tls, t0.Add(time.Minute), tls.VersionTLS12, "", "unsupported versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ca.ServerTLSConfig(srvCert, neverRevoked)
			srv.Time = clock(tt.at)
			s := startTLSServer(t, srv)
			cli := agentConfig(t, ca, tt.cert, t0.Add(time.Minute)) // the agent's clock is right
			if tt.cert.Certificate == nil {
				cli.Certificates = nil
			}
			if tt.maxTLS != 0 {
				cli.MinVersion, cli.MaxVersion = tls.VersionTLS12, tt.maxTLS
			}
			reply, sr, cerr := s.dial(t, cli)
			if tt.want != "" {
				if cerr != nil || sr.err != nil || sr.certname != tt.want || reply != tt.want {
					t.Fatalf("client: %q, %v; server: %q, %v; want %q", reply, cerr, sr.certname, sr.err, tt.want)
				}
				return
			}
			if sr.err == nil || !strings.Contains(sr.err.Error(), tt.serverErr) {
				t.Fatalf("server: %q, %v; want an error saying %q", sr.certname, sr.err, tt.serverErr)
			}
			if cerr == nil {
				t.Fatalf("client read %q from a server that refused it", reply)
			}
		})
	}
}

func TestRevocationCheckedOnEveryHandshake(t *testing.T) {
	ca := newTestCA(t)
	web := issue(t, ca, "web1.example.com", time.Hour)
	db := issue(t, ca, "db1.example.com", time.Hour)
	var revoked atomic.Bool
	var asked atomic.Int32
	srv := ca.ServerTLSConfig(serverCert(t, ca), func(serial *big.Int) bool {
		asked.Add(1)
		return revoked.Load() && serial.Cmp(web.serial) == 0
	})
	srv.Time = clock(t0)
	s := startTLSServer(t, srv)
	cli := agentConfig(t, ca, web.tls, t0)

	steps := []struct {
		revoke bool
		cfg    *tls.Config
		want   string // "" = refused as revoked
	}{
		{false, cli, "web1.example.com"},
		{false, cli, "web1.example.com"},
		{true, cli, ""},
		{true, agentConfig(t, ca, db.tls, t0), "db1.example.com"}, // only that serial
		{true, cli, ""},
		{false, cli, "web1.example.com"}, // nothing cached either way
	}
	for i, st := range steps {
		revoked.Store(st.revoke)
		before := asked.Load()
		reply, sr, cerr := s.dial(t, st.cfg)
		if asked.Load() != before+1 {
			t.Errorf("step %d: isRevoked asked %d times, want once", i, asked.Load()-before)
		}
		if st.want != "" {
			if cerr != nil || sr.err != nil || reply != st.want {
				t.Fatalf("step %d: client %q, %v; server %v; want %q", i, reply, cerr, sr.err, st.want)
			}
			continue
		}
		if !errors.Is(sr.err, ErrRevoked) || !strings.Contains(sr.err.Error(), FormatSerial(web.serial)) || cerr == nil {
			t.Fatalf("step %d: client %q, %v; server %v; want ErrRevoked naming serial %s", i, reply, cerr, sr.err, FormatSerial(web.serial))
		}
	}
}

func TestAgentPinsTheCA(t *testing.T) {
	ca := newTestCA(t)
	stranger := newTestCA(t)
	web := issue(t, ca, "web1.example.com", time.Hour)
	tests := []struct {
		name    string
		server  tls.Certificate
		srvCA   *CA
		dialAs  string // ServerName
		wantErr string // "" = connects
	}{
		{"our server by IP", serverCert(t, ca), ca, "", ""},
		{"our server by name", serverCert(t, ca), ca, "localhost", ""},
		{"another CA's server", serverCert(t, stranger), stranger, "", "unknown authority"},
		{"a host name not in the certificate", serverCert(t, ca), ca, "muster.example.com", "not muster.example.com"},
		{"an agent's certificate as the server's", web.tls, ca, "web1.example.com", "incompatible key usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srvCA.EnrollServerTLSConfig(tt.server, neverRevoked)
			srv.Time = clock(t0)
			s := startTLSServer(t, srv)
			cli := agentConfig(t, ca, web.tls, t0)
			cli.ServerName = tt.dialAs
			reply, sr, cerr := s.dial(t, cli)
			if tt.wantErr == "" {
				if cerr != nil || reply != "web1.example.com" {
					t.Fatalf("client %q, %v; server %v", reply, cerr, sr.err)
				}
				return
			}
			if cerr == nil || !strings.Contains(cerr.Error(), tt.wantErr) {
				t.Fatalf("client %q, %v; want an error saying %q", reply, cerr, tt.wantErr)
			}
		})
	}
}

func TestFirstContact(t *testing.T) {
	ca := newTestCA(t)
	stranger := newTestCA(t)
	srvCert := serverCert(t, ca)
	leafOnly := srvCert
	leafOnly.Certificate = leafOnly.Certificate[:1]
	tests := []struct {
		name        string
		server      tls.Certificate
		fingerprint string
		insecure    bool
		dialAs      string
		wantErr     string // "" = connects
		mismatch    bool
	}{
		{"right fingerprint", srvCert, ca.Fingerprint(), false, "", "", false},
		{"right fingerprint, openssl's form", srvCert, opensslForm(ca.Fingerprint()), false, "localhost", "", false},
		{"another CA's fingerprint", srvCert, stranger.Fingerprint(), false, "", "refusing to trust it", true},
		{"another server, our fingerprint", serverCert(t, stranger), ca.Fingerprint(), false, "", "refusing to trust it", true},
		{"insecure first contact", srvCert, "", true, "", "", false},
		{"insecure, another server", serverCert(t, stranger), "", true, "", "", false},
		{"no CA in the chain", leafOnly, ca.Fingerprint(), false, "", "sent no CA certificate", false},
		{"wrong host name", srvCert, ca.Fingerprint(), false, "muster.example.com", "not muster.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ca.EnrollServerTLSConfig(tt.server, neverRevoked)
			srv.Time = clock(t0)
			s := startTLSServer(t, srv)
			server := s.addr
			if tt.dialAs != "" {
				_, port, _ := net.SplitHostPort(s.addr)
				server = net.JoinHostPort(tt.dialAs, port)
			}
			cli, err := FirstContactTLSConfig(server, tt.fingerprint, tt.insecure)
			if err != nil {
				t.Fatal(err)
			}
			cli.Time = clock(t0)
			c, err := tls.Dial("tcp", s.addr, cli)
			if tt.wantErr != "" {
				if err == nil {
					c.Close()
				}
				<-s.results
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrFingerprintMismatch) != tt.mismatch {
					t.Fatalf("first contact = %v, want an error saying %q (mismatch %v)", err, tt.wantErr, tt.mismatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			caDER, err := PeerCA(c.ConnectionState())
			if err != nil {
				t.Fatal(err)
			}
			reply, _ := io.ReadAll(c)
			c.Close()
			if sr := <-s.results; !errors.Is(sr.err, ErrNoPeerCertificate) || string(reply) != "enroll" {
				t.Fatalf("server saw %v, client read %q; want an enrolling peer without a certificate", sr.err, reply)
			}
			if tt.fingerprint != "" {
				if err := VerifyFingerprint(caDER, tt.fingerprint); err != nil {
					t.Fatalf("PeerCA: %v", err)
				}
			}
		})
	}
}

// opensslForm prints a fingerprint the way openssl x509 -fingerprint does.
func opensslForm(fp string) string {
	h := strings.ToUpper(strings.TrimPrefix(fp, FingerprintPrefix))
	var pairs []string
	for i := 0; i < len(h); i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return "sha256 Fingerprint=" + strings.Join(pairs, ":")
}

func TestFirstContactFlags(t *testing.T) {
	ca := newTestCA(t)
	for _, tt := range []struct {
		fp       string
		insecure bool
		msg      string
	}{
		{"", false, "--ca-fingerprint"},
		{ca.Fingerprint(), true, "exclude each other"},
		{"sha256:abc", false, "64 hex digits"},
	} {
		if _, err := FirstContactTLSConfig("muster.example.com:8141", tt.fp, tt.insecure); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("FirstContactTLSConfig(%q, %v) = %v, want an error saying %q", tt.fp, tt.insecure, err, tt.msg)
		}
	}
}

func TestEnrollListener(t *testing.T) {
	ca := newTestCA(t)
	web := issue(t, ca, "web1.example.com", time.Hour)
	stranger := issue(t, newTestCA(t), "web1.example.com", time.Hour)
	revoked := func(serial *big.Int) bool { return serial.Cmp(web.serial) == 0 }
	srv := ca.EnrollServerTLSConfig(serverCert(t, ca), revoked)
	srv.Time = clock(t0)
	s := startTLSServer(t, srv)

	cli := agentConfig(t, ca, tls.Certificate{}, t0)
	cli.Certificates = nil
	if reply, sr, cerr := s.dial(t, cli); cerr != nil || reply != "enroll" || !errors.Is(sr.err, ErrNoPeerCertificate) {
		t.Errorf("no certificate: client %q, %v; server %v; want an enrolling peer", reply, cerr, sr.err)
	}
	if _, sr, cerr := s.dial(t, agentConfig(t, ca, web.tls, t0)); !errors.Is(sr.err, ErrRevoked) || cerr == nil {
		t.Errorf("revoked certificate: client %v; server %v; want ErrRevoked", cerr, sr.err)
	}
	if _, sr, cerr := s.dial(t, agentConfig(t, ca, stranger.tls, t0)); sr.err == nil || cerr == nil {
		t.Errorf("another CA's certificate: client %v; server %v; want a refusal", cerr, sr.err)
	}
}

func TestServerTLSConfigNeedsCallback(t *testing.T) {
	ca := newTestCA(t)
	defer func() {
		if recover() == nil {
			t.Error("ServerTLSConfig with a nil isRevoked did not panic")
		}
	}()
	ca.ServerTLSConfig(serverCert(t, ca), nil)
}

func TestPeerCertnameWithoutVerification(t *testing.T) {
	if _, err := PeerCertname(tls.ConnectionState{}); !errors.Is(err, ErrNoPeerCertificate) {
		t.Errorf("no certificates: %v", err)
	}
	a := issue(t, newTestCA(t), "web1", time.Hour)
	if _, err := PeerCertname(tls.ConnectionState{PeerCertificates: []*x509.Certificate{a.cert}}); err == nil || errors.Is(err, ErrNoPeerCertificate) {
		t.Errorf("an unverified certificate: %v", err)
	}
}
