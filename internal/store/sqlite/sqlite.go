// Package sqlite is muster's embedded queue store: muster.Store on SQLite
// through modernc.org/sqlite (pure Go, no cgo). The database runs in WAL
// mode with a busy timeout; all writes go through one connection and start
// with BEGIN IMMEDIATE, so a write transaction never upgrades a read lock
// and never deadlocks. Reads use a small pool of read-only connections.
// Migrations (sqlstore.Migrations, expanded for SQLite) run on Open, after
// a quick integrity check.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/store/sqlstore"
	msqlite "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a muster.Store on one SQLite database file.
type Store struct {
	*sqlstore.Store
}

// Store is every part of the queue's contract.
var (
	_ muster.WorkQueue = (*Store)(nil)
	_ muster.Rescuer   = (*Store)(nil)
	_ muster.Jobs      = (*Store)(nil)
	_ muster.AuthStore = (*Store)(nil)
	_ muster.Nodes     = (*Store)(nil)
	_ muster.Store     = (*Store)(nil)
)

// ErrCorrupt is matched (errors.Is) by Open's error when the file is a
// damaged SQLite database or not a SQLite database at all.
var ErrCorrupt = errors.New("sqlite: the database is corrupt")

// Open opens (creating if needed) the database at path, checks it with
// PRAGMA quick_check(1) and migrates it. A damaged database, or a file
// that is not one, is refused with an error that says what to do and
// matches ErrCorrupt: a server that started on it would only answer errors.
// The check reads the whole file once: about 0.2 s for 100,000 finished
// runs (a 62 MB file, in the page cache), and grows with the file.
func Open(ctx context.Context, path string, opts ...muster.StoreOption) (*Store, error) {
	if path == "" || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: need a plain file path, got %q", path)
	}
	dsn := func(extra string) string {
		return "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)" + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := quickCheck(ctx, w, path); err != nil {
		w.Close()
		return nil, err
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		if ce := asCorrupt(path, err); ce != nil {
			return nil, ce
		}
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	return &Store{sqlstore.New(w, r, muster.NewStoreOptions(opts...), dialect)}, nil
}

// migrate applies the migrations not yet recorded in schema_migrations,
// each in its own transaction, in name order. They run with foreign keys
// off, as SQLite's procedure for rebuilding a table wants (a migration
// that changes a constraint rebuilds the table, and dropping the old one
// must not touch the rows that refer to it), and each checks them with
// PRAGMA foreign_key_check before it commits.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := sqlstore.Migrations(sqlstore.SQLite)
	if err != nil {
		return err
	}
	// foreign_keys cannot change inside a transaction, and is a setting of
	// the connection: hold one, and turn them back on before it returns to
	// the pool (a connection that failed to is closed instead).
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys=OFF`); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys=ON`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	for _, m := range ms {
		if err := migrateOne(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

// migrateOne applies m in one transaction on conn unless it is recorded.
func migrateOne(ctx context.Context, conn *sql.Conn, m sqlstore.Migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name=$1`, m.Name).Scan(&n); err != nil || n > 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	var table string
	var rowid sql.NullInt64
	var parent string
	var fkid int
	switch err := tx.QueryRowContext(ctx, `PRAGMA foreign_key_check`).Scan(&table, &rowid, &parent, &fkid); {
	case err == nil:
		return fmt.Errorf("%s: a row of %s (rowid %d) refers to a missing row of %s", m.Name, table, rowid.Int64, parent)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: foreign key check: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, m.Name); err != nil {
		return err
	}
	return tx.Commit()
}

// quickCheck runs PRAGMA quick_check(1) on db: it walks every b-tree page
// of the file (reading all of it once) but, unlike integrity_check, does
// not match index entries against their tables, and stops at the first
// problem.
func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&res); err != nil {
		if ce := asCorrupt(path, err); ce != nil {
			return ce
		}
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if res != "ok" {
		return &corruptError{path: path, detail: res}
	}
	return nil
}

// asCorrupt returns a *corruptError for an SQLITE_CORRUPT or SQLITE_NOTADB
// error from the driver, else nil.
func asCorrupt(path string, err error) *corruptError {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	msg := strings.TrimSuffix(se.Error(), fmt.Sprintf(" (%d)", se.Code()))
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return &corruptError{path: path, detail: msg, notDB: true, err: err}
	case sqlite3.SQLITE_CORRUPT:
		return &corruptError{path: path, detail: msg, err: err}
	}
	return nil
}

// corruptError says that the database at path is damaged, or not a
// database, and what to do about it.
type corruptError struct {
	path   string
	detail string // quick_check's first finding, or the driver's message
	notDB  bool
	err    error // the driver's error, if any
}

func (e *corruptError) Error() string {
	var lines []string
	for _, l := range strings.Split(e.detail, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "*** in database") {
			lines = append(lines, l)
		}
	}
	detail := strings.Join(lines, "; ")
	if e.notDB {
		return fmt.Sprintf("%s is not a SQLite database (%s): check --database (or MUSTER_DATABASE); "+
			"if it is the queue's database, restore it from a backup, or move it aside to start with an empty queue",
			e.path, detail)
	}
	return fmt.Sprintf("SQLite database %s is corrupt (quick_check: %s): restore it from a backup, "+
		"or move it aside to start with an empty queue (to salvage its rows: sqlite3 %s \".recover\" | "+
		"sqlite3 recovered.db)", e.path, detail, e.path)
}

// Is matches ErrCorrupt.
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the driver's error, if any.
func (e *corruptError) Unwrap() error { return e.err }
