package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/pki"
)

// The agent listener's refusals, against a real server process: each gets
// a clear answer and records nothing for the wrong node.
func TestPullListenerRefusals(t *testing.T) {
	srv, addr, _ := agentsOf(t, pullProject(t, t.TempDir()+"/runs.log", t.TempDir()+"/watched"))
	ctx := context.Background()
	c := srv.client()
	caInfo, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCertPEM([]byte(caInfo.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(token, certname string) (int, string) {
		t.Helper()
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.NewCSR(key, certname)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pki.ClientTLSConfig(caCert.Raw, tls.Certificate{})
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 30 * time.Second}
		return postAgent(t, hc, addr, checkin.PathEnroll, checkin.EnrollRequest{Version: checkin.Version, Token: token, CSR: csr})
	}
	notRecorded := func(certname string) {
		t.Helper()
		if n, err := c.Node(ctx, certname); err == nil {
			t.Errorf("%s was recorded: %+v", certname, n)
		}
	}

	// An exhausted token: its one use is spent.
	once, err := c.CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "once", Uses: 1, Certnames: "*.neg.test"})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := enroll(once.Secret, "first.neg.test"); status != http.StatusOK || !strings.Contains(body, `"signed"`) {
		t.Fatalf("first enrollment: %d %s", status, body)
	}
	if status, body := enroll(once.Secret, "second.neg.test"); status != http.StatusForbidden || !strings.Contains(body, "used") {
		t.Errorf("an exhausted token: %d %s", status, body)
	}
	notRecorded("second.neg.test")

	// An expired token.
	short, err := c.CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "short", Uses: 10000, Expires: api.Duration(time.Second), Certnames: "*.neg.test"})
	if err != nil {
		t.Fatal(err)
	}
	var status int
	var body, name string
	tries := 0
	eventually(t, "the short token expires", func() bool { // each try before it does enrolls a node
		tries++
		name = fmt.Sprintf("late%d.neg.test", tries)
		status, body = enroll(short.Secret, name)
		return status != http.StatusOK
	})
	if status != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Errorf("an expired token: %d %s", status, body)
	}
	notRecorded(name)

	// An unknown token, and a malformed one.
	if status, body := enroll("mse_"+strings.Repeat("x", 43), "nobody.neg.test"); status != http.StatusForbidden {
		t.Errorf("an unknown token: %d %s", status, body)
	}
	notRecorded("nobody.neg.test")

	// A client certificate from another CA, for a name the server knows:
	// the handshake is refused.
	other, _, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := pki.NewCSR(key, "first.neg.test")
	if err != nil {
		t.Fatal(err)
	}
	csr, _, err := pki.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := other.Sign(csr, "first.neg.test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientTLSConfig(caCert.Raw, tc)
	if err != nil {
		t.Fatal(err)
	}
	// Sent even though the server asks for certificates of its own CA (a
	// Go client would otherwise send none).
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc, nil }
	forged := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	if status, body := postAgent(t, forged, addr, checkin.PathCheckIn, checkin.CheckInRequest{Version: checkin.Version}); status != 0 {
		t.Errorf("a certificate from another CA checked in: %d %s", status, body)
	}
	if status, body := postAgent(t, forged, addr, checkin.PathFacts, checkin.FactsUpload{Version: checkin.Version, Facts: map[string]any{"x": 1}}); status != 0 {
		t.Errorf("a certificate from another CA uploaded facts: %d %s", status, body)
	}
	if nf, err := c.NodeFacts(ctx, "first.neg.test"); err != nil || len(nf.Facts) != 0 {
		t.Errorf("facts of first.neg.test after the forged upload: %+v %v", nf, err)
	}

	// No payload names a node: a certname in one is an unknown field.
	if status, body := postAgent(t, forged, addr, checkin.PathCheckIn, map[string]any{"version": 1, "certname": "first.neg.test"}); status != 0 {
		t.Errorf("forged: %d %s", status, body)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: must2(pki.ClientTLSConfig(caCert.Raw, tls.Certificate{})),
		DisableKeepAlives: true}, Timeout: 30 * time.Second}
	if status, body := postAgent(t, noCert, addr, checkin.PathCheckIn, map[string]any{"version": 1, "certname": "first.neg.test"}); status != http.StatusUnauthorized {
		t.Errorf("a check-in without a client certificate, naming a node: %d %s", status, body)
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
