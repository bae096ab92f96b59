package postgres

import (
	"context"
	"database/sql"

	"github.com/muster-run/muster/internal/sqlstore"
)

// PostgreSQL's side of the dialect. Several servers share the database:
// the multi-row writers (submit, claim, cancel, bump, rescue) serialise
// under one transaction-level advisory lock, so each dispatch batch sees
// the previous one's claims and row locks are always taken in one order.
// Single-run writers (complete, heartbeat) do not take it; the claim skips
// rows they hold (FOR UPDATE SKIP LOCKED), and the partial unique index is
// the backstop either way.

// queueLockKey is the advisory lock key ("muster" in ASCII).
const queueLockKey int64 = 0x6d7573746572

var dialect = sqlstore.Dialect{Rewrite: sqlx, LockQueue: lockQueue, LockCandidates: lockCandidates}

// sqlx is the identity: the neutral SQL is PostgreSQL's.
func sqlx(q string) string { return q }

// lockQueue takes the queue's transaction-level advisory lock.
func lockQueue(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, queueLockKey)
	return err
}

// lockCandidates row-locks the chosen runs, skipping any another
// transaction holds, and keeps the order of ids.
func lockCandidates(ctx context.Context, tx *sql.Tx, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	got, err := sqlstore.QueryIDs(ctx, tx, `SELECT id FROM runs WHERE id = ANY($1) AND state='pending' ORDER BY id FOR UPDATE SKIP LOCKED`, ids)
	if err != nil {
		return nil, err
	}
	locked := make(map[int64]bool, len(got))
	for _, id := range got {
		locked[id] = true
	}
	out := ids[:0]
	for _, id := range ids {
		if locked[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
