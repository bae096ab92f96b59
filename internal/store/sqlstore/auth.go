package sqlstore

// auth.go: muster.AuthStore, API tokens and the audit trail.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// lastUsedEvery is how stale a token's LastUsedAt may get before
// TokenByHash writes it again.
const lastUsedEvery = time.Minute

// maxTokenName bounds a token's name.
const maxTokenName = 64

// checkTokenName accepts 1 to 64 letters, digits, '.', '_', '-' and '@',
// starting with a letter or digit. ':' is left out so that no token can
// pass for a "local:<user>" audit actor.
func checkTokenName(name string) error {
	return checkName("token name", name, maxTokenName, "._-@", "'.', '_', '-' and '@'")
}

// checkName accepts 1 to max letters, digits and the runes of punct
// (described for the error as punctText), starting with a letter or
// digit; what names the thing checked in the error.
func checkName(what, name string, max int, punct, punctText string) error {
	if name == "" || len(name) > max {
		return fmt.Errorf("%w: a %s needs 1 to %d characters, got %d", muster.ErrInvalid, what, max, len(name))
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune(punct, c)) {
			return fmt.Errorf("%w: %s %q: use letters, digits, %s, starting with a letter or digit",
				muster.ErrInvalid, what, name, punctText)
		}
	}
	return nil
}

const tokenCols = `id, name, role, created_by, created_at, last_used_at, revoked_at FROM tokens`

func scanToken(sc scanner) (muster.Token, error) {
	var t muster.Token
	var created, used, revoked int64
	err := sc.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedBy, &created, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", muster.ErrNotFound)
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = fromUS(created), fromUS(used), fromUS(revoked)
	return t, err
}

// CreateToken implements muster.AuthStore. hash must be a SHA-256 sum;
// CreatedAt defaults to now, and LastUsedAt and RevokedAt start unset.
func (s *Store) CreateToken(ctx context.Context, t muster.Token, hash []byte) (muster.Token, error) {
	if err := checkTokenName(t.Name); err != nil {
		return muster.Token{}, err
	}
	if !t.Role.Valid() {
		return muster.Token{}, fmt.Errorf("%w: unknown role %q for token %q (want admin, operator or viewer)", muster.ErrInvalid, t.Role, t.Name)
	}
	if len(hash) != sha256.Size {
		return muster.Token{}, fmt.Errorf("%w: token %q: the hash must be a %d-byte SHA-256 sum, got %d bytes",
			muster.ErrInvalid, t.Name, sha256.Size, len(hash))
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.Opt.Now()
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = fromUS(us(t.CreatedAt)), time.Time{}, time.Time{}
	err := s.write(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE name=$1 AND revoked_at=0`, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a live token named %q exists; revoke it first", muster.ErrInvalid, t.Name)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO tokens (name, role, hash, created_by, created_at) VALUES ($1,$2,$3,$4,$5)
			RETURNING id`, t.Name, t.Role, hex.EncodeToString(hash), t.CreatedBy, us(t.CreatedAt)).Scan(&t.ID)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "unique") {
			// Another server created the name meanwhile, or the hash is taken.
			return fmt.Errorf("%w: token %q: a live token has this name or this secret", muster.ErrInvalid, t.Name)
		}
		return err
	})
	if err != nil {
		return muster.Token{}, err
	}
	return t, nil
}

// TokenByHash implements muster.AuthStore. It reads from the reader pool
// and writes LastUsedAt only when it is at least a minute old, so a busy
// client costs one write a minute, not one per request.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (muster.Token, error) {
	if len(hash) == 0 {
		return muster.Token{}, fmt.Errorf("token: %w", muster.ErrNotFound)
	}
	t, err := scanToken(s.R.QueryRowContext(ctx, `SELECT `+tokenCols+` WHERE hash=$1 AND revoked_at=0`, hex.EncodeToString(hash)))
	if err != nil {
		return muster.Token{}, err
	}
	now := fromUS(us(s.Opt.Now()))
	if now.Sub(t.LastUsedAt) < lastUsedEvery {
		return t, nil
	}
	res, err := s.W.ExecContext(ctx, `UPDATE tokens SET last_used_at=$1 WHERE id=$2 AND revoked_at=0 AND last_used_at <= $3`,
		us(now), t.ID, us(now.Add(-lastUsedEvery)))
	if err != nil {
		return muster.Token{}, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		t.LastUsedAt = now
	}
	return t, nil
}

// ListTokens implements muster.AuthStore.
func (s *Store) ListTokens(ctx context.Context) ([]muster.Token, error) {
	return queryAll(ctx, s.R, scanToken, `SELECT `+tokenCols+` ORDER BY id`)
}

// RevokeToken implements muster.AuthStore.
func (s *Store) RevokeToken(ctx context.Context, name string) (muster.Token, error) {
	now := fromUS(us(s.Opt.Now()))
	var t muster.Token
	err := s.write(ctx, func(tx *Tx) (err error) {
		t, err = scanToken(tx.QueryRowContext(ctx, `UPDATE tokens SET revoked_at=$1 WHERE name=$2 AND revoked_at=0
			RETURNING `+strings.TrimSuffix(tokenCols, ` FROM tokens`), us(now), name))
		if errors.Is(err, muster.ErrNotFound) {
			return fmt.Errorf("no live token named %q: %w", name, muster.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return muster.Token{}, err
	}
	return t, nil
}

// Audit implements muster.AuthStore. Actor and Action are required, Role
// must be empty or valid, and Detail empty or JSON.
func (s *Store) Audit(ctx context.Context, e muster.AuditEntry) error {
	switch {
	case e.Actor == "" || e.Action == "":
		return fmt.Errorf("%w: an audit entry needs an actor and an action (got actor %q, action %q)", muster.ErrInvalid, e.Actor, e.Action)
	case e.Role != "" && !e.Role.Valid():
		return fmt.Errorf("%w: audit entry for %s: unknown role %q", muster.ErrInvalid, e.Action, e.Role)
	case e.Detail != "" && !json.Valid([]byte(e.Detail)):
		return fmt.Errorf("%w: audit entry for %s: detail is not valid JSON", muster.ErrInvalid, e.Action)
	}
	if e.At.IsZero() {
		e.At = s.Opt.Now()
	}
	_, err := s.W.ExecContext(ctx, `INSERT INTO audit (at, actor, role, action, object, remote, detail)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, us(e.At), cleanText(e.Actor), e.Role, cleanText(e.Action), cleanText(e.Object),
		cleanText(e.Remote), cleanText(e.Detail))
	return err
}

// ListAudit implements muster.AuthStore.
func (s *Store) ListAudit(ctx context.Context, f muster.AuditFilter) ([]muster.AuditEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args := []any{limit}
	q := `SELECT id, at, actor, role, action, object, remote, detail FROM audit WHERE 1=1`
	if f.Actor != "" {
		args = append(args, f.Actor)
		q += ` AND actor=` + placeholder(len(args))
	}
	if f.BeforeID > 0 {
		args = append(args, f.BeforeID)
		q += ` AND id < ` + placeholder(len(args))
	}
	return queryAll(ctx, s.R, func(sc scanner) (e muster.AuditEntry, err error) {
		var at int64
		err = sc.Scan(&e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.Object, &e.Remote, &e.Detail)
		e.At = fromUS(at)
		return e, err
	}, q+` ORDER BY id DESC LIMIT $1`, args...)
}
