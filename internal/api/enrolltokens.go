package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/pki"
)

// Enrollment tokens' limits.
const (
	// DefaultEnrollTokenLife is how long an enrollment token lives when
	// the request does not say.
	DefaultEnrollTokenLife = 24 * time.Hour
	// MaxEnrollTokenLife is the longest an enrollment token may live.
	MaxEnrollTokenLife = 365 * 24 * time.Hour
	// MaxEnrollTokenUses bounds an enrollment token's uses.
	MaxEnrollTokenUses = 1_000_000
)

// errNoCA answers the routes that need the server's CA on a server
// without an agent listener.
func errNoCA() error {
	return notFound("this server has no agent listener (start it with --agent-listen)")
}

// validEnrollTokenName is validTokenName, starting with a letter or digit.
func validEnrollTokenName(name string) error {
	if err := validTokenName(name); err != nil {
		return err
	}
	if c := name[0]; c == '.' || c == '_' || c == '@' || c == '-' {
		return fieldErr("name", "%q starts with %q; start with a letter or digit", name, c)
	}
	return nil
}

// decodeEnrollTokenRequest reads an EnrollTokenRequest strictly and
// checks it, filling in the defaults (1 use, 24h).
func decodeEnrollTokenRequest(r *http.Request) (EnrollTokenRequest, error) {
	req := EnrollTokenRequest{Uses: 1, Expires: Duration(DefaultEnrollTokenLife)}
	fields, err := decodeObject(r.Body)
	if err != nil {
		return req, err
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[k]
		switch k {
		case "name":
			err = unmarshalField(k, raw, &req.Name)
		case "uses":
			if err = unmarshalField(k, raw, &req.Uses); err == nil && (req.Uses < 1 || req.Uses > MaxEnrollTokenUses) {
				err = fieldErr(k, "%d is out of range 1..%d", req.Uses, MaxEnrollTokenUses)
			}
		case "expires":
			var s string
			if err = unmarshalField(k, raw, &s); err != nil {
				break
			}
			d, perr := parseDuration(s)
			switch {
			case perr != nil:
				err = fieldErr(k, "%v", perr)
			case s == "":
			case d <= 0:
				err = fieldErr(k, "%q is not in the future: give a positive duration such as \"24h\"", s)
			case d > MaxEnrollTokenLife:
				err = fieldErr(k, "%q is longer than the limit of a year (%v)", s, MaxEnrollTokenLife)
			default:
				req.Expires = Duration(d)
			}
		case "certnames":
			if err = unmarshalField(k, raw, &req.Certnames); err == nil {
				if gerr := pki.ValidGlobs(req.Certnames); gerr != nil {
					err = fieldErr(k, "%v", gerr)
				}
			}
		default:
			err = fieldErr(fieldName(k), "unknown field %q (want name, uses, expires and certnames)", k)
		}
		if err != nil {
			return req, err
		}
	}
	return req, validEnrollTokenName(req.Name)
}

// enrollTokenState says whether t is live at now, or why not.
func enrollTokenState(t muster.EnrollToken, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return EnrollTokenRevoked
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return EnrollTokenExpired
	case t.Uses > 0 && t.Used >= t.Uses:
		return EnrollTokenUsedUp
	}
	return EnrollTokenLive
}

func enrollTokenView(t muster.EnrollToken, now time.Time) EnrollTokenView {
	return EnrollTokenView{ID: t.ID, Name: t.Name, Uses: t.Uses, Used: t.Used, Expires: t.Expires,
		Certnames: t.Certnames, State: enrollTokenState(t, now), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		RevokedAt: t.RevokedAt}
}

func (s *Server) handleCreateEnrollToken(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	if s.cfg.CA == nil {
		return errNoCA()
	}
	req, err := decodeEnrollTokenRequest(r)
	if err != nil {
		return err
	}
	existing, err := s.store.ListEnrollTokens(r.Context())
	if err != nil {
		return err
	}
	taken := func() error {
		return conflict("a live enrollment token named %q already exists; revoke it first", req.Name)
	}
	for _, t := range existing {
		if t.Name == req.Name && t.RevokedAt.IsZero() {
			return taken()
		}
	}
	secret, hash := pki.NewEnrollToken()
	now := s.now()
	t, err := s.store.CreateEnrollToken(r.Context(), muster.EnrollToken{Name: req.Name, Uses: req.Uses,
		Expires: now.Add(time.Duration(req.Expires)), Certnames: req.Certnames, CreatedBy: who.Name, CreatedAt: now}, hash)
	if errors.Is(err, muster.ErrInvalid) {
		return taken()
	} else if err != nil {
		return err
	}
	s.audit(r, who, "enroll-token.create", fmt.Sprintf("enroll-token/%d", t.ID), map[string]any{
		"name": t.Name, "uses": t.Uses, "expires": req.Expires, "expires_at": t.Expires, "certnames": t.Certnames})
	writeJSON(w, http.StatusCreated, CreatedEnrollToken{Token: enrollTokenView(t, now), Secret: secret,
		CAFingerprint: s.cfg.CA.Fingerprint()})
	return nil
}

func (s *Server) handleListEnrollTokens(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	ts, err := s.store.ListEnrollTokens(r.Context())
	if err != nil {
		return err
	}
	now := s.now()
	out := EnrollTokenList{Tokens: []EnrollTokenView{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, enrollTokenView(t, now))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRevokeEnrollToken(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	name := r.PathValue("name")
	t, err := s.store.RevokeEnrollToken(r.Context(), name)
	if errors.Is(err, muster.ErrNotFound) {
		return notFound("no live enrollment token named %q", name)
	} else if err != nil {
		return err
	}
	s.audit(r, who, "enroll-token.revoke", fmt.Sprintf("enroll-token/%d", t.ID),
		map[string]any{"name": t.Name, "uses": t.Uses, "used": t.Used})
	writeJSON(w, http.StatusOK, enrollTokenView(t, s.now()))
	return nil
}
