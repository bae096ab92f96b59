package muster

import (
	"context"
	"time"
)

// This file is the server's access-control vocabulary: API tokens with
// roles, and the audit trail of every mutation. Both live in the Store.

// Role is what an API token may do.
type Role string

// The roles, from most to least powerful.
const (
	// RoleAdmin manages tokens and every job, and reads the audit trail.
	RoleAdmin Role = "admin"
	// RoleOperator submits, cancels and bumps jobs, and reads everything
	// but tokens and the audit trail.
	RoleOperator Role = "operator"
	// RoleViewer reads jobs, runs and stats.
	RoleViewer Role = "viewer"
)

// Roles lists the roles, most powerful first.
var Roles = []Role{RoleAdmin, RoleOperator, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleOperator || r == RoleViewer }

// Allows reports whether a token with role r may act with role need.
func (r Role) Allows(need Role) bool {
	rank := map[Role]int{RoleViewer: 1, RoleOperator: 2, RoleAdmin: 3}
	return rank[r] > 0 && rank[r] >= rank[need]
}

// Token is an API token's record. The secret itself is never stored: only
// its SHA-256 hash (tokens are 256-bit random values, so a fast hash is
// enough), which is all TokenByHash needs.
type Token struct {
	ID         int64
	Name       string // unique among live tokens
	Role       Role
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt time.Time // updated at most once a minute
	RevokedAt  time.Time // zero while the token is valid
}

// AuditEntry records one mutation: who did what to which object, when and
// from where.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string // token name, or "local:<user>" for commands run on the server machine
	Role   Role
	Action string // "job.submit", "job.cancel", "job.bump", "token.create", "token.revoke", ...
	Object string // "job/42", "token/7"
	Remote string // client address
	Detail string // JSON with the request's non-secret fields
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Actor    string // empty means any
	BeforeID int64  // paging: only entries with a smaller id; 0 means no bound
	Limit    int    // 0 means 100
}

// AuthStore keeps tokens and the audit trail. Every Store is one.
type AuthStore interface {
	// CreateToken stores a new token's hash. A live token with the same
	// name is an ErrInvalid error.
	CreateToken(ctx context.Context, t Token, hash []byte) (Token, error)
	// TokenByHash returns the live token with this hash, or ErrNotFound
	// (unknown and revoked tokens alike), and notes its use.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns every token, live and revoked, by id.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes a live token by name; ErrNotFound if there is none.
	RevokeToken(ctx context.Context, name string) (Token, error)
	// Audit appends an entry (At defaults to now).
	Audit(ctx context.Context, e AuditEntry) error
	// ListAudit returns entries, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
