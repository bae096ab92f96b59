package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/muster-run/muster/internal/sqlstore"
)

// SQLite's side of the dialect. The writer is one connection and every write
// transaction is BEGIN IMMEDIATE, so writes are already serialised and
// nothing else holds the candidate rows: no advisory lock, no SKIP LOCKED.

var dialect = sqlstore.Dialect{Rewrite: sqlx, LockQueue: lockQueue, LockCandidates: lockCandidates}

// sqlx rewrites PostgreSQL's two-argument GREATEST/LEAST to SQLite's scalar MAX/MIN.
func sqlx(q string) string {
	return strings.NewReplacer("GREATEST(", "MAX(", "LEAST(", "MIN(").Replace(q)
}

// lockQueue serialises the multi-row writers (submit, claim, cancel, bump,
// rescue) on PostgreSQL; BEGIN IMMEDIATE already does it here.
func lockQueue(context.Context, *sql.Tx) error { return nil }

// lockCandidates row-locks the chosen runs on PostgreSQL (SKIP LOCKED).
func lockCandidates(_ context.Context, _ *sql.Tx, ids []int64) ([]int64, error) { return ids, nil }
