package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/pki"
)

// The files of the agent's identity in its data directory.
const (
	keyFile  = "key.pem"
	certFile = "cert.pem"
	caFile   = "ca.pem"
)

func (a *Agent) path(name string) string { return filepath.Join(a.cfg.DataDir, name) }

// loadIdentity loads the key, certificate and CA from the data directory,
// making a key and enrolling with the server when there is no certificate
// yet.
func (a *Agent) loadIdentity(ctx context.Context) error {
	key, err := pki.LoadKey(a.path(keyFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if key, err = pki.NewKey(); err != nil {
			return err
		}
		if err := pki.SaveKey(a.path(keyFile), key); err != nil {
			return err
		}
		a.log.Info("made the agent's key", "file", a.path(keyFile))
	case err != nil:
		return err
	}
	a.key = key
	caCert, err := pki.LoadCert(a.path(caFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if a.caDER, err = a.firstContact(ctx); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		a.caDER = caCert.Raw
	}
	cert, err := pki.LoadCert(a.path(certFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := a.enroll(ctx); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := a.useCert(cert.Raw); err != nil {
			return err
		}
	}
	return nil
}

// useCert installs a certificate (DER) and the mTLS client built on it.
func (a *Agent) useCert(der []byte) error {
	tc, err := pki.TLSCertificate(der, a.key)
	if err != nil {
		return fmt.Errorf("%s: %w", a.path(certFile), err)
	}
	name, err := pki.Certname(tc.Leaf)
	if err != nil {
		return err
	}
	if name != a.cfg.Certname {
		return fmt.Errorf("%s is for %q, but this agent's certname is %q: use --certname %s, or another --data-dir", a.path(certFile), name, a.cfg.Certname, name)
	}
	cfg, err := pki.ClientTLSConfig(a.caDER, tc)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cert = &tc
	if a.client != nil {
		a.client.close()
	}
	a.client = newClient(a.cfg.Server, cfg)
	return nil
}

// firstContact learns the server's CA certificate: the one its agent
// listener presents in its chain, checked against --ca-fingerprint (or
// taken on trust with --insecure-first-contact), and saved as ca.pem.
func (a *Agent) firstContact(ctx context.Context) ([]byte, error) {
	if a.cfg.CAFingerprint == "" && !a.cfg.InsecureFirstContact {
		return nil, errors.New("first contact with the server: pass --ca-fingerprint (printed by 'muster server' at start and by 'muster cert ca'), or --insecure-first-contact to trust whatever CA answers")
	}
	cfg, err := pki.FirstContactTLSConfig(a.cfg.Server, a.cfg.CAFingerprint, a.cfg.InsecureFirstContact && a.cfg.CAFingerprint == "")
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: cfg}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(cctx, "tcp", a.cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("first contact with the server at %s: %w", a.cfg.Server, err)
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	caDER, err := pki.PeerCA(state)
	if err != nil {
		return nil, fmt.Errorf("the server at %s: %w", a.cfg.Server, err)
	}
	if a.cfg.CAFingerprint == "" {
		a.log.Warn("INSECURE FIRST CONTACT: trusting the CA the server presented without checking it; check its fingerprint now",
			"ca_fingerprint", pki.FingerprintOf(caDER))
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if err := pki.SaveCert(a.path(caFile), ca.Raw); err != nil {
		return nil, err
	}
	a.log.Info("trusting the server's CA", "ca_fingerprint", pki.FingerprintOf(ca.Raw), "file", a.path(caFile))
	return ca.Raw, nil
}

// enroll asks for a certificate with the enrollment token, and waits for
// it while the request is pending an operator's approval.
//
// Without a token, it asks for the certificate of a request its key made
// earlier (an agent restarted while its request waited for approval).
func (a *Agent) enroll(ctx context.Context) error {
	csr, err := pki.NewCSR(a.key, a.cfg.Certname)
	if err != nil {
		return err
	}
	tlsCfg, err := pki.ClientTLSConfig(a.caDER, tls.Certificate{})
	if err != nil {
		return err
	}
	c := newClient(a.cfg.Server, tlsCfg)
	defer c.close()
	var resp checkin.CertResponse
	if a.cfg.EnrollToken == "" {
		if err := c.post(ctx, checkin.PathCert, checkin.CertRequest{Version: checkin.Version, CSR: csr}, &resp); err != nil {
			if refused(err) {
				return fmt.Errorf("this agent has no certificate yet (%s) and the server holds no request from its key (%v): "+
					"pass --enroll-token (muster enroll-token create)", a.path(certFile), err)
			}
			return fmt.Errorf("asking for %s's certificate: %w", a.cfg.Certname, err)
		}
	} else {
		req := checkin.EnrollRequest{Version: checkin.Version, Token: a.cfg.EnrollToken, CSR: csr}
		if err := c.post(ctx, checkin.PathEnroll, req, &resp); err != nil {
			return fmt.Errorf("enrolling %s: %w", a.cfg.Certname, err)
		}
	}
	for resp.State == "pending" {
		wait := max(resp.RetryAfter, 5*time.Second)
		a.log.Info("certificate request waits for approval: muster cert sign "+a.cfg.Certname, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if err := c.post(ctx, checkin.PathCert, checkin.CertRequest{Version: checkin.Version, CSR: csr}, &resp); err != nil {
			a.log.Warn("asking for the certificate failed; will ask again", "err", err)
			resp = checkin.CertResponse{State: "pending", RetryAfter: 30 * time.Second}
		}
	}
	if resp.State != "signed" || len(resp.Cert) == 0 {
		return fmt.Errorf("enrolling %s: the server answered %q: %s", a.cfg.Certname, resp.State, resp.Message)
	}
	if err := a.useCert(resp.Cert); err != nil {
		return err
	}
	if err := pki.SaveCert(a.path(certFile), resp.Cert); err != nil {
		return err
	}
	a.log.Info("enrolled: the server signed this agent's certificate", "file", a.path(certFile))
	return nil
}

// renew asks for a new certificate for the same key and certname.
func (a *Agent) renew(ctx context.Context) error {
	csr, err := pki.NewCSR(a.key, a.cfg.Certname)
	if err != nil {
		return err
	}
	var resp checkin.CertResponse
	if err := a.currentClient().post(ctx, checkin.PathRenew, checkin.CertRequest{Version: checkin.Version, CSR: csr}, &resp); err != nil {
		return err
	}
	if resp.State != "signed" {
		return fmt.Errorf("renewal: the server answered %q: %s", resp.State, resp.Message)
	}
	if err := pki.SaveCert(a.path(certFile), resp.Cert); err != nil {
		return err
	}
	if err := a.useCert(resp.Cert); err != nil {
		return err
	}
	a.log.Info("renewed the agent's certificate")
	return nil
}

// Reload reads the certificate from the data directory again (SIGHUP).
func (a *Agent) Reload() error {
	cert, err := pki.LoadCert(a.path(certFile))
	if err != nil {
		return err
	}
	return a.useCert(cert.Raw)
}

func (a *Agent) currentClient() *client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client
}
