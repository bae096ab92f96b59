package sqlstore

// nodes.go: muster.Nodes, pull mode's nodes and enrollment tokens (the
// agents' claim is in pull.go).

import (
	"bytes"
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

// maxCertname bounds a certname (a DNS name's length).
const maxCertname = 253

// checkCertname accepts 1 to 253 letters, digits, '.', '_' and '-',
// starting with a letter or digit: a certname is a node name, a lease
// owner's suffix ("agent:<certname>") and a certificate's subject.
func checkCertname(name string) error {
	return checkName("certname", name, maxCertname, "._-", "'.', '_' and '-'")
}

// checkSerial accepts a certificate serial in hex (at most 64 digits: an
// X.509 serial has at most 20 octets, and a little slack costs nothing)
// and returns it in lower case, the form the store keeps and compares.
func checkSerial(serial string) (string, error) {
	ok := serial != "" && len(serial) <= 64
	for _, c := range serial {
		ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
	}
	if !ok {
		return "", fmt.Errorf("%w: certificate serial %q is not 1 to 64 hex digits", muster.ErrInvalid, serial)
	}
	return strings.ToLower(serial), nil
}

// isUnique reports whether err is a unique constraint's violation (both
// drivers say "unique" in it).
func isUnique(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "unique")
}

const enrollTokenFields = `id, name, uses, used, expires_at, certnames, created_by, created_at, revoked_at`

func scanEnrollToken(sc scanner) (muster.EnrollToken, error) {
	var t muster.EnrollToken
	var expires, created, revoked int64
	err := sc.Scan(&t.ID, &t.Name, &t.Uses, &t.Used, &expires, &t.Certnames, &t.CreatedBy, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("enrollment token: %w", muster.ErrNotFound)
	}
	t.Expires, t.CreatedAt, t.RevokedAt = fromUS(expires), fromUS(created), fromUS(revoked)
	return t, err
}

const nodeFields = `certname, state, csr, serial, cert, cert_expires_at, enrolled_at, signed_at, enrolled_with,
	last_run_id, last_run_at, last_checkin_at, facts_at`

func scanNode(sc scanner) (muster.Node, error) {
	var n muster.Node
	var expires, enrolled, signed, lastRun, checkIn, factsAt int64
	err := sc.Scan(&n.Certname, &n.State, &n.CSR, &n.Serial, &n.Cert, &expires, &enrolled, &signed, &n.EnrolledWith,
		&n.LastRunID, &lastRun, &checkIn, &factsAt)
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node: %w", muster.ErrNotFound)
	}
	if len(n.CSR) == 0 {
		n.CSR = nil
	}
	if len(n.Cert) == 0 {
		n.Cert = nil
	}
	n.CertExpires, n.EnrolledAt, n.SignedAt = fromUS(expires), fromUS(enrolled), fromUS(signed)
	n.LastRunAt, n.LastCheckIn, n.FactsAt = fromUS(lastRun), fromUS(checkIn), fromUS(factsAt)
	return n, err
}

// CreateEnrollToken implements muster.Nodes. hash must be a SHA-256 sum;
// the name follows API tokens' rules; CreatedAt defaults to now, and Used
// and RevokedAt start unset.
func (s *Store) CreateEnrollToken(ctx context.Context, t muster.EnrollToken, hash []byte) (muster.EnrollToken, error) {
	if err := checkTokenName(t.Name); err != nil {
		return muster.EnrollToken{}, fmt.Errorf("enrollment token: %w", err)
	}
	switch {
	case len(hash) != sha256.Size:
		return muster.EnrollToken{}, fmt.Errorf("%w: enrollment token %q: the hash must be a %d-byte SHA-256 sum, got %d bytes",
			muster.ErrInvalid, t.Name, sha256.Size, len(hash))
	case t.Uses < 0:
		return muster.EnrollToken{}, fmt.Errorf("%w: enrollment token %q: uses must be 0 (no limit) or more, got %d",
			muster.ErrInvalid, t.Name, t.Uses)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.Opt.Now()
	}
	t.CreatedAt, t.Expires, t.Used, t.RevokedAt = fromUS(us(t.CreatedAt)), fromUS(us(t.Expires)), 0, time.Time{}
	t.Certnames, t.CreatedBy = cleanText(t.Certnames), cleanText(t.CreatedBy)
	err := s.write(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM enroll_tokens WHERE name=$1 AND revoked_at=0`, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a live enrollment token named %q exists; revoke it first", muster.ErrInvalid, t.Name)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO enroll_tokens (name, hash, uses, expires_at, certnames, created_by, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id`, t.Name, hex.EncodeToString(hash), t.Uses, us(t.Expires),
			t.Certnames, t.CreatedBy, us(t.CreatedAt)).Scan(&t.ID)
		if isUnique(err) {
			// Another server created the name meanwhile, or the hash is taken.
			return fmt.Errorf("%w: enrollment token %q: a live token has this name, or a token this secret", muster.ErrInvalid, t.Name)
		}
		return err
	})
	if err != nil {
		return muster.EnrollToken{}, err
	}
	return t, nil
}

// ListEnrollTokens implements muster.Nodes.
func (s *Store) ListEnrollTokens(ctx context.Context) ([]muster.EnrollToken, error) {
	return queryAll(ctx, s.R, scanEnrollToken, `SELECT `+enrollTokenFields+` FROM enroll_tokens ORDER BY id`)
}

// RevokeEnrollToken implements muster.Nodes.
func (s *Store) RevokeEnrollToken(ctx context.Context, name string) (muster.EnrollToken, error) {
	now := fromUS(us(s.Opt.Now()))
	var t muster.EnrollToken
	err := s.write(ctx, func(tx *Tx) (err error) {
		t, err = scanEnrollToken(tx.QueryRowContext(ctx, `UPDATE enroll_tokens SET revoked_at=$1 WHERE name=$2 AND revoked_at=0
			RETURNING `+enrollTokenFields, us(now), name))
		if errors.Is(err, muster.ErrNotFound) {
			return fmt.Errorf("no live enrollment token named %q: %w", name, muster.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return muster.EnrollToken{}, err
	}
	return t, nil
}

// useToken counts a use of the token whose hash is given, inside tx, and
// returns it; a token that is unknown, revoked, expired at now or used up
// is an ErrInvalid error that says which. On PostgreSQL the token's row
// stays locked until tx ends, so concurrent enrollments with one token
// count their uses one after the other (SQLite's single writer does the
// same).
func (s *Store) useToken(ctx context.Context, tx *Tx, hash []byte, now time.Time) (muster.EnrollToken, error) {
	t, err := scanEnrollToken(tx.QueryRowContext(ctx, `SELECT `+enrollTokenFields+` FROM enroll_tokens r WHERE hash=$1`+s.D.ForUpdate,
		hex.EncodeToString(hash)))
	switch {
	case errors.Is(err, muster.ErrNotFound):
		return t, fmt.Errorf("%w: unknown or revoked enrollment token", muster.ErrInvalid)
	case err != nil:
		return t, err
	case !t.RevokedAt.IsZero():
		return t, fmt.Errorf("%w: enrollment token %q was revoked at %s", muster.ErrInvalid, t.Name, t.RevokedAt.Format(time.RFC3339))
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return t, fmt.Errorf("%w: enrollment token %q expired at %s", muster.ErrInvalid, t.Name, t.Expires.Format(time.RFC3339))
	case t.Uses > 0 && t.Used >= t.Uses:
		return t, fmt.Errorf("%w: enrollment token %q used up (%d of %d)", muster.ErrInvalid, t.Name, t.Used, t.Uses)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET used=used+1 WHERE id=$1`, t.ID); err != nil {
		return t, err
	}
	t.Used++
	return t, nil
}

// Enroll implements muster.Nodes: it counts the token's use, then inserts
// the pending node, or replaces a pending, revoked or expired one, in one
// statement whose conflict clause leaves a node with a valid certificate
// alone.
func (s *Store) Enroll(ctx context.Context, tokenHash []byte, certname string, csr []byte, now time.Time) (muster.EnrollToken, muster.Node, error) {
	if err := checkCertname(certname); err != nil {
		return muster.EnrollToken{}, muster.Node{}, err
	}
	if len(csr) == 0 {
		return muster.EnrollToken{}, muster.Node{}, fmt.Errorf("%w: enrollment of %s: no certificate request", muster.ErrInvalid, certname)
	}
	if now.IsZero() {
		now = s.Opt.Now()
	}
	now = fromUS(us(now))
	var t muster.EnrollToken
	var n muster.Node
	err := s.write(ctx, func(tx *Tx) (err error) {
		if t, err = s.useToken(ctx, tx, tokenHash, now); err != nil {
			return err
		}
		n, err = scanNode(tx.QueryRowContext(ctx, `INSERT INTO nodes (certname, state, csr, cert, enrolled_at, enrolled_with)
			VALUES ($1,'pending',$2,$3,$4,$5)
			ON CONFLICT (certname) DO UPDATE SET state='pending', csr=excluded.csr, serial='', cert=excluded.cert,
				cert_expires_at=0, signed_at=0, enrolled_with=excluded.enrolled_with,
				enrolled_at=CASE WHEN nodes.state='pending' THEN nodes.enrolled_at ELSE excluded.enrolled_at END
			WHERE nodes.state <> 'signed' OR nodes.cert_expires_at <= $4
			RETURNING `+nodeFields, certname, csr, []byte{}, us(now), t.Name))
		if errors.Is(err, muster.ErrNotFound) {
			return fmt.Errorf("%w: node %s already holds a valid certificate: revoke it first (muster cert revoke %s)",
				muster.ErrInvalid, certname, certname)
		}
		return err
	})
	if err != nil {
		return muster.EnrollToken{}, muster.Node{}, err
	}
	return t, n, nil
}

// SignNode implements muster.Nodes.
func (s *Store) SignNode(ctx context.Context, certname, serial string, cert []byte, expires, now time.Time) (muster.Node, error) {
	serial, err := checkSerial(serial)
	switch {
	case err != nil:
		return muster.Node{}, fmt.Errorf("signing %s: %w", certname, err)
	case len(cert) == 0:
		return muster.Node{}, fmt.Errorf("%w: signing %s: no certificate", muster.ErrInvalid, certname)
	}
	if now.IsZero() {
		now = s.Opt.Now()
	}
	now, expires = fromUS(us(now)), fromUS(us(expires))
	if !expires.After(now) {
		return muster.Node{}, fmt.Errorf("%w: signing %s: the certificate expires at %s, not after now (%s)",
			muster.ErrInvalid, certname, expires.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	var n muster.Node
	err = s.write(ctx, func(tx *Tx) error {
		old, err := scanNode(tx.QueryRowContext(ctx, `SELECT `+nodeFields+` FROM nodes r WHERE certname=$1`+s.D.ForUpdate, certname))
		if errors.Is(err, muster.ErrNotFound) {
			return fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
		} else if err != nil {
			return err
		}
		if old.State == muster.NodeRevoked {
			return fmt.Errorf("%w: node %s is revoked: it must enroll again with a new token", muster.ErrInvalid, certname)
		}
		n, err = scanNode(tx.QueryRowContext(ctx, `UPDATE nodes SET state='signed', csr=$2, serial=$3, cert=$4,
			cert_expires_at=$5, signed_at=$6,
			last_checkin_at=CASE WHEN state='signed' THEN $6 ELSE last_checkin_at END
			WHERE certname=$1 RETURNING `+nodeFields, certname, []byte{}, serial, cert, us(expires), us(now)))
		if isUnique(err) {
			return fmt.Errorf("%w: signing %s: serial %s is another node's certificate in force", muster.ErrInvalid, certname, serial)
		}
		return err
	})
	if err != nil {
		return muster.Node{}, err
	}
	return n, nil
}

// RevokeNode implements muster.Nodes. A pending node's request is
// refused this way too; revoking a revoked node changes nothing.
func (s *Store) RevokeNode(ctx context.Context, certname string) (muster.Node, error) {
	var n muster.Node
	err := s.write(ctx, func(tx *Tx) (err error) {
		n, err = scanNode(tx.QueryRowContext(ctx, `UPDATE nodes SET state='revoked', csr=$2 WHERE certname=$1
			RETURNING `+nodeFields, certname, []byte{}))
		if errors.Is(err, muster.ErrNotFound) {
			return fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return muster.Node{}, err
	}
	return n, nil
}

// SerialRevoked implements muster.Nodes with one lookup in the unique
// index of signed nodes' serials, on the reader pool. It fails closed: on
// an error it also reports the serial revoked.
func (s *Store) SerialRevoked(ctx context.Context, serial string) (bool, error) {
	var n int
	err := s.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes WHERE serial=$1 AND state='signed'`,
		strings.ToLower(serial)).Scan(&n)
	if err != nil {
		return true, err
	}
	return n == 0, nil
}

// GetNode implements muster.Nodes.
func (s *Store) GetNode(ctx context.Context, certname string) (muster.Node, error) {
	n, err := scanNode(s.R.QueryRowContext(ctx, `SELECT `+nodeFields+` FROM nodes WHERE certname=$1`, certname))
	if errors.Is(err, muster.ErrNotFound) {
		return n, fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
	}
	return n, err
}

// ListNodes implements muster.Nodes.
func (s *Store) ListNodes(ctx context.Context) ([]muster.Node, error) {
	return queryAll(ctx, s.R, scanNode, `SELECT `+nodeFields+` FROM nodes ORDER BY certname`)
}

// NoteNodeRun implements muster.Nodes.
func (s *Store) NoteNodeRun(ctx context.Context, certname string, runID int64, at time.Time) error {
	return s.write(ctx, func(tx *Tx) error {
		return noteNodeRun(ctx, tx, certname, runID, at)
	})
}

// noteNodeRun records the node's run inside tx.
func noteNodeRun(ctx context.Context, tx *Tx, certname string, runID int64, at time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE nodes SET last_run_id=$2, last_run_at=$3, last_checkin_at=$3 WHERE certname=$1`,
		certname, runID, us(at))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
	}
	return nil
}

// SetNodeFacts implements muster.Nodes.
func (s *Store) SetNodeFacts(ctx context.Context, certname string, facts []byte, at time.Time) error {
	if !json.Valid(facts) || len(bytes.TrimSpace(facts)) == 0 || bytes.TrimSpace(facts)[0] != '{' {
		return fmt.Errorf("%w: node %s: facts must be a JSON object", muster.ErrInvalid, certname)
	}
	if at.IsZero() {
		at = s.Opt.Now()
	}
	return s.write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET facts=$2, facts_at=$3 WHERE certname=$1 AND state='signed'`,
			certname, string(facts), us(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no signed node %q: %w", certname, muster.ErrNotFound)
		}
		return nil
	})
}

// NodeFacts implements muster.Nodes.
func (s *Store) NodeFacts(ctx context.Context, certname string) ([]byte, time.Time, error) {
	var facts string
	var at int64
	err := s.R.QueryRowContext(ctx, `SELECT facts, facts_at FROM nodes WHERE certname=$1`, certname).Scan(&facts, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
	} else if err != nil {
		return nil, time.Time{}, err
	}
	return []byte(facts), fromUS(at), nil
}
