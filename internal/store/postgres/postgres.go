// Package postgres is muster's shared queue store: muster.Store on
// PostgreSQL through pgx/v5 (its database/sql driver), for several muster
// servers on one database. Claims take a transaction-level advisory lock
// per dispatch batch and lock their rows FOR UPDATE SKIP LOCKED; the
// partial unique index on running runs per node is the final word.
// Migrations (sqlstore.Migrations, expanded for PostgreSQL) run on Open,
// under an advisory lock, in one transaction.
//
// Wake hears about work from every server on the database: submissions,
// bumps and requeues NOTIFY the muster_work channel in their transaction,
// and each Store LISTENs on a dedicated connection that reconnects (with
// capped backoff) after losing the database.
//
// Leases are computed from each server's clock (StoreOptions.Now), so the
// servers sharing a database must keep their clocks in sync (NTP) to well
// within a lease TTL.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/store/sqlstore"
)

// Store is a muster.Store on a PostgreSQL database.
type Store struct {
	*sqlstore.Store
	l      *listener
	onNode atomic.Pointer[func([]string)]
}

// Store is every part of the queue's contract.
var (
	_ muster.WorkQueue = (*Store)(nil)
	_ muster.Rescuer   = (*Store)(nil)
	_ muster.Jobs      = (*Store)(nil)
	_ muster.AuthStore = (*Store)(nil)
	_ muster.Nodes     = (*Store)(nil)
	_ muster.Store     = (*Store)(nil)

	_ muster.NodeSignals = (*Store)(nil)
)

// Open connects to the database at url (postgres://... or a key=value DSN;
// a search_path parameter selects the schema), migrates it, and starts
// listening for other servers' work notifications (see Wake).
func Open(ctx context.Context, url string, opts ...muster.StoreOption) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	s := &Store{Store: sqlstore.New(db, db, muster.NewStoreOptions(opts...), dialect)}
	if s.l, err = listen(ctx, url, s.notified); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: listen for work notifications: %w", err)
	}
	return s, nil
}

// notified routes a notification from the listener: work wakes the
// dispatcher (Wake), node names go to the OnNodeSignal function (an empty
// payload, after the listener reconnected, means every node).
func (s *Store) notified(ch, payload string) {
	switch ch {
	case channel:
		s.Signal()
	case nodeChannel:
		if f := s.onNode.Load(); f != nil {
			var names []string
			if payload != "" {
				names = strings.Split(payload, "\n")
			}
			(*f)(names)
		}
	}
}

// OnNodeSignal implements muster.NodeSignals. f gets nil, meaning every
// node, after the listener lost and regained the database.
func (s *Store) OnNodeSignal(f func(certnames []string)) { s.onNode.Store(&f) }

// maxPayload keeps a node notification under PostgreSQL's 8000-byte
// payload limit.
const maxPayload = 7900

// SignalNodes implements muster.NodeSignals: NOTIFY muster_nodes, the
// certnames newline-separated, in as many notifications as their length
// needs. Every server's listener, this one's included, hears them.
func (s *Store) SignalNodes(ctx context.Context, certnames ...string) error {
	for len(certnames) > 0 {
		n, size := 0, 0
		for n < len(certnames) && (n == 0 || size+len(certnames[n])+1 <= maxPayload) {
			size += len(certnames[n]) + 1
			n++
		}
		if _, err := s.W.ExecContext(ctx, `SELECT pg_notify($1, $2)`, nodeChannel, strings.Join(certnames[:n], "\n")); err != nil {
			return fmt.Errorf("postgres: signalling nodes: %w", err)
		}
		certnames = certnames[n:]
	}
	return nil
}

// Close stops the notification listener, waiting for it, and closes the
// connection pool.
func (s *Store) Close() error {
	s.l.stop()
	return s.Store.Close()
}

// migrateLockKey serialises migrations of servers starting together.
const migrateLockKey int64 = 0x6d7573746572 + 1

// migrate applies the migrations not yet recorded in schema_migrations,
// all in one transaction under an advisory lock.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := sqlstore.Migrations(sqlstore.PostgreSQL)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return err
	}
	for _, m := range ms {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name=$1`, m.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, m.Name); err != nil {
			return err
		}
	}
	return tx.Commit()
}
