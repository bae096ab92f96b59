package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// TokenPrefix starts every API token.
const TokenPrefix = "mst_"

// NewTokenSecret makes a new API token: "mst_" and the base64url of 32
// random bytes. It returns the secret (shown to its owner once) and the
// hash the store keeps.
func NewTokenSecret() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("making a token: %w", err)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret), nil
}

// HashToken is what the store keeps of a token: the SHA-256 of the whole
// string.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// maxTokenLen bounds what is hashed from an Authorization header.
const maxTokenLen = 512

// authenticate finds the caller's token and checks its role. The token is
// only ever hashed and looked up by hash, never compared as a string, and
// never logged.
func (s *Server) authenticate(r *http.Request, need muster.Role) (muster.Token, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, _ := strings.Cut(strings.TrimSpace(h), " ")
	secret = strings.TrimSpace(secret)
	var reason, msg string
	switch {
	case h == "":
		reason, msg = "no token", "missing API token: send \"Authorization: Bearer <token>\""
	case !strings.EqualFold(scheme, "Bearer") || secret == "":
		reason, msg = "malformed Authorization header", "the Authorization header must be \"Bearer <token>\""
	case len(secret) > maxTokenLen:
		reason, msg = "token too long", "invalid or revoked API token"
	}
	if reason == "" {
		t, err := s.store.TokenByHash(r.Context(), HashToken(secret))
		switch {
		case errors.Is(err, muster.ErrNotFound):
			reason, msg = "unknown or revoked token", "invalid or revoked API token"
		case err != nil:
			return muster.Token{}, fmt.Errorf("looking up a token: %w", err)
		case !t.Role.Allows(need):
			s.log.Warn("authorization failed", "actor", t.Name, "role", t.Role, "need", need,
				"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			return t, &apiError{http.StatusForbidden, CodeForbidden,
				fmt.Sprintf("this needs the %s role; token %q has the %s role", need, t.Name, t.Role), nil}
		default:
			return t, nil
		}
	}
	s.log.Warn("authentication failed", "reason", reason, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr)
	challenge := `Bearer realm="muster"`
	if h != "" {
		challenge += `, error="invalid_token"`
	}
	return muster.Token{}, &apiError{http.StatusUnauthorized, CodeUnauthorized, msg,
		map[string]string{"WWW-Authenticate": challenge}}
}

// audit records a mutation. detail must hold no secret. A failure to
// write the trail is logged: the mutation has already happened.
func (s *Server) audit(r *http.Request, who muster.Token, action, object string, detail any) {
	b, err := json.Marshal(detail)
	if err != nil {
		b = []byte("{}")
	}
	e := muster.AuditEntry{At: s.now(), Actor: who.Name, Role: who.Role, Action: action, Object: object,
		Remote: r.RemoteAddr, Detail: string(b)}
	// The mutation is done: record it even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.store.Audit(ctx, e); err != nil {
		s.log.Error("writing the audit trail", "action", action, "object", object, "actor", who.Name, "err", err)
	}
}

// validTokenName: 1 to 64 letters, digits and ._@- (no ':', which marks
// the "local:<user>" actors of commands run on the server machine).
func validTokenName(name string) error {
	if name == "" || len(name) > 64 {
		return fieldErr("name", "want 1 to 64 characters")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)) {
			return fieldErr("name", "%q has %q; use letters, digits, '.', '_', '@' and '-'", name, c)
		}
	}
	return nil
}

// decodeTokenRequest reads a TokenRequest strictly.
func decodeTokenRequest(r *http.Request) (TokenRequest, error) {
	var req TokenRequest
	fields, err := decodeObject(r.Body)
	if err != nil {
		return req, err
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[k]
		switch k {
		case "name":
			err = unmarshalField(k, raw, &req.Name)
		case "role":
			var s string
			err = unmarshalField(k, raw, &s)
			req.Role = muster.Role(s)
		default:
			err = fieldErr(fieldName(k), "unknown field %q (want name and role)", k)
		}
		if err != nil {
			return req, err
		}
	}
	if err := validTokenName(req.Name); err != nil {
		return req, err
	}
	if !req.Role.Valid() {
		return req, fieldErr("role", "unknown role %q (want admin, operator or viewer)", req.Role)
	}
	return req, nil
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	req, err := decodeTokenRequest(r)
	if err != nil {
		return err
	}
	live, err := s.store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	for _, t := range live {
		if t.Name == req.Name && t.RevokedAt.IsZero() {
			return conflict("a live token named %q already exists; revoke it first", req.Name)
		}
	}
	secret, hash, err := NewTokenSecret()
	if err != nil {
		return err
	}
	t, err := s.store.CreateToken(r.Context(), muster.Token{Name: req.Name, Role: req.Role, CreatedBy: who.Name,
		CreatedAt: s.now()}, hash)
	if errors.Is(err, muster.ErrInvalid) {
		return conflict("a live token named %q already exists; revoke it first", req.Name)
	} else if err != nil {
		return err
	}
	s.audit(r, who, "token.create", fmt.Sprintf("token/%d", t.ID), req)
	writeJSON(w, http.StatusCreated, CreatedToken{Token: tokenView(t), Secret: secret})
	return nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	ts, err := s.store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	out := TokenList{Tokens: []TokenView{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	name := r.PathValue("name")
	t, err := s.store.RevokeToken(r.Context(), name)
	if errors.Is(err, muster.ErrNotFound) {
		return notFound("no live token named %q", name)
	} else if err != nil {
		return err
	}
	s.audit(r, who, "token.revoke", fmt.Sprintf("token/%d", t.ID), map[string]any{"name": t.Name, "role": t.Role})
	writeJSON(w, http.StatusOK, tokenView(t))
	return nil
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	q := r.URL.Query()
	before, limit, err := pageParams(q)
	if err != nil {
		return err
	}
	es, err := s.store.ListAudit(r.Context(), muster.AuditFilter{Actor: q.Get("actor"), BeforeID: before, Limit: limit})
	if err != nil {
		return err
	}
	out := AuditList{Entries: []AuditView{}}
	for _, e := range es {
		out.Entries = append(out.Entries, auditView(e))
	}
	if len(es) == int(limit) {
		out.NextBefore = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
