package checkins

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/pki"
)

// pendingRetry is how often an agent whose request waits for approval
// asks again.
const pendingRetry = 30 * time.Second

// handleEnroll takes a certificate request made with an enrollment token:
// it is signed at once when the token's autosign globs cover the certname,
// and otherwise waits for `muster cert sign`.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request, _ string) error {
	var req checkin.EnrollRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	csr, certname, err := pki.ParseCSR(req.CSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "certificate request: %v", err)
	}
	if req.Token == "" {
		return errorf(http.StatusUnauthorized, "unauthorized", "enrolling %s needs an enrollment token (muster enroll-token create)", certname)
	}
	now := s.now()
	tok, _, err := s.cfg.Store.Enroll(r.Context(), pki.HashEnrollToken(req.Token), certname, csr.Raw, now)
	switch {
	case errors.Is(err, muster.ErrInvalid):
		s.log.Warn("enrollment refused", "certname", certname, "err", err)
		return errorf(http.StatusForbidden, "forbidden", "enrolling %s: %v", certname, err)
	case err != nil:
		return err
	}
	if !pki.MatchGlob(tok.Certnames, certname) {
		s.log.Info("certificate request waits for approval", "certname", certname, "token", tok.Name)
		writeJSON(w, http.StatusAccepted, checkin.CertResponse{Version: checkin.Version, State: "pending", RetryAfter: pendingRetry,
			Message: "the enrollment token's autosign names do not cover " + certname + ": an admin must run 'muster cert sign " + certname + "'"})
		return nil
	}
	der, err := s.sign(r, csr, certname, now)
	if err != nil {
		return err
	}
	s.log.Info("enrolled and signed", "certname", certname, "token", tok.Name)
	writeJSON(w, http.StatusOK, checkin.CertResponse{Version: checkin.Version, State: "signed", Cert: der})
	return nil
}

// sign issues a certificate for csr and records it.
func (s *Server) sign(r *http.Request, csr *x509.CertificateRequest, certname string, now time.Time) ([]byte, error) {
	der, serial, err := s.cfg.CA.Sign(csr, certname, s.cfg.CertLifetime, now)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "signing %s: %v", certname, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.SignNode(r.Context(), certname, pki.FormatSerial(serial), der, cert.NotAfter, now); err != nil {
		return nil, err
	}
	return der, nil
}

// handleCert answers an agent whose request waited for approval: the same
// request again, whose key proves who asks, gets the certificate once an
// admin signed it.
func (s *Server) handleCert(w http.ResponseWriter, r *http.Request, _ string) error {
	var req checkin.CertRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	csr, certname, err := pki.ParseCSR(req.CSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "certificate request: %v", err)
	}
	n, err := s.cfg.Store.GetNode(r.Context(), certname)
	if errors.Is(err, muster.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no certificate request from %s: enroll with a token first", certname)
	} else if err != nil {
		return err
	}
	switch n.State {
	case muster.NodePending:
		writeJSON(w, http.StatusAccepted, checkin.CertResponse{Version: checkin.Version, State: "pending", RetryAfter: pendingRetry,
			Message: "waiting for 'muster cert sign " + certname + "'"})
		return nil
	case muster.NodeRevoked:
		return errorf(http.StatusForbidden, "forbidden", "the certificate of %s was revoked: enroll again with a new token", certname)
	}
	cert, err := x509.ParseCertificate(n.Cert)
	if err != nil {
		return err
	}
	if !samePublicKey(cert, csr) {
		return errorf(http.StatusForbidden, "forbidden", "the certificate of %s was issued for another key", certname)
	}
	writeJSON(w, http.StatusOK, checkin.CertResponse{Version: checkin.Version, State: "signed", Cert: n.Cert})
	return nil
}

func samePublicKey(cert *x509.Certificate, csr *x509.CertificateRequest) bool {
	a, err1 := x509.MarshalPKIXPublicKey(cert.PublicKey)
	b, err2 := x509.MarshalPKIXPublicKey(csr.PublicKey)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// handleRenew signs a new certificate for the caller's own certname.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, certname string) error {
	var req checkin.CertRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	csr, name, err := pki.ParseCSR(req.CSR)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "certificate request: %v", err)
	}
	if name != certname {
		s.log.Warn("renewal for another node refused", "certname", certname, "asked_for", name)
		return errorf(http.StatusForbidden, "forbidden", "%s may renew only its own certificate, not %s's", certname, name)
	}
	der, err := s.sign(r, csr, certname, s.now())
	if err != nil {
		return err
	}
	s.log.Info("renewed a certificate", "certname", certname)
	writeJSON(w, http.StatusOK, checkin.CertResponse{Version: checkin.Version, State: "signed", Cert: der})
	return nil
}
