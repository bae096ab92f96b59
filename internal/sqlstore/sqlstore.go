// Package sqlstore is the job queue's logic in dialect-neutral SQL over
// database/sql, shared by the sqlite and postgres adapters, which supply
// their connections and a Dialect. It holds no driver of its own.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/muster-run/muster"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Rewrite adapts a query written for PostgreSQL (GREATEST, LEAST).
	Rewrite func(query string) string
	// LockQueue serialises the multi-row writers (submit, claim, cancel,
	// bump, rescue) inside tx.
	LockQueue func(ctx context.Context, tx *sql.Tx) error
	// LockCandidates row-locks the chosen runs and returns those it got.
	LockCandidates func(ctx context.Context, tx *sql.Tx, ids []int64) ([]int64, error)
}

// Store is a muster.Store over a writer and a reader connection pool.
type Store struct {
	W   *sql.DB // writes (and reads that must see them)
	R   *sql.DB // reads
	Opt muster.StoreOptions
	D   Dialect
}

var _ muster.Store = (*Store)(nil)

// Close closes both pools.
func (s *Store) Close() error {
	if s.R == s.W {
		return s.W.Close()
	}
	return errors.Join(s.R.Close(), s.W.Close())
}

// DB returns the writer, for tests that try to break the queue's rules.
func (s *Store) DB() *sql.DB { return s.W }
