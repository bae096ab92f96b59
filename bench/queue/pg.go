package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// pg.go: the PostgreSQL side: fresh databases per round and
// pg_stat_statements figures.

// pgAdmin is a connection to the cluster's admin database.
type pgAdmin struct {
	db     *sql.DB
	base   *url.URL
	dbName string
}

func newPGAdmin(ctx context.Context, dsn string) (*pgAdmin, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("-database %q: want a postgres:// URL", dsn)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to %s: %w", u.Redacted(), err)
	}
	return &pgAdmin{db: db, base: u}, nil
}

func (p *pgAdmin) close() { p.db.Close() }

// freshDatabase creates a new database (with synchronous_commit set to
// sync, unless empty) and returns its URL.
func (p *pgAdmin) freshDatabase(ctx context.Context, sync string) (string, error) {
	p.dbName = fmt.Sprintf("muster_queue_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := p.db.ExecContext(ctx, "CREATE DATABASE "+p.dbName); err != nil {
		return "", err
	}
	if sync != "" {
		if !regexp.MustCompile(`^[a-z_]+$`).MatchString(sync) {
			return "", fmt.Errorf("bad synchronous_commit value %q", sync)
		}
		if _, err := p.db.ExecContext(ctx, "ALTER DATABASE "+p.dbName+" SET synchronous_commit = "+sync); err != nil {
			return "", err
		}
	}
	u := *p.base
	u.Path = "/" + p.dbName
	return u.String(), nil
}

// dropDatabase drops the fresh database (best effort).
func (p *pgAdmin) dropDatabase() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+p.dbName+" WITH (FORCE)"); err != nil {
		logf("dropping %s: %v", p.dbName, err)
	}
}

// resetStats clears pg_stat_statements and the cluster's WAL statistics.
func (p *pgAdmin) resetStats(ctx context.Context) error {
	if _, err := p.db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("pg_stat_statements (is it in shared_preload_libraries?): %w", err)
	}
	if _, err := p.db.ExecContext(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		return err
	}
	_, err := p.db.ExecContext(ctx, "SELECT pg_stat_reset_shared('wal')")
	return err
}

type pgCounters struct {
	commits, walRecords, walBytes, walSync, walWrite int64
}

func (p *pgAdmin) counters(ctx context.Context) (pgCounters, error) {
	var c pgCounters
	// The statistics collector's view is a snapshot per transaction; a
	// fresh connection-level read is enough here.
	_, _ = p.db.ExecContext(ctx, "SELECT pg_stat_clear_snapshot()")
	if err := p.db.QueryRowContext(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname=$1`, p.dbName).
		Scan(&c.commits); err != nil {
		return c, err
	}
	var bytes float64
	if err := p.db.QueryRowContext(ctx, `SELECT wal_records, wal_bytes, wal_sync, wal_write FROM pg_stat_wal`).
		Scan(&c.walRecords, &bytes, &c.walSync, &c.walWrite); err != nil {
		return c, err
	}
	c.walBytes = int64(bytes)
	return c, nil
}

// topStatements returns the total execution time of the benchmark
// database's statements and the n that took longest.
func (p *pgAdmin) topStatements(ctx context.Context, n int) (float64, []Statement, error) {
	var total float64
	if err := p.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(total_exec_time),0) FROM pg_stat_statements s
		JOIN pg_database d ON d.oid=s.dbid WHERE d.datname=$1`, p.dbName).Scan(&total); err != nil {
		return 0, nil, err
	}
	rows, err := p.db.QueryContext(ctx, `SELECT calls, total_exec_time, mean_exec_time, rows, query FROM pg_stat_statements s
		JOIN pg_database d ON d.oid=s.dbid WHERE d.datname=$1 ORDER BY total_exec_time DESC LIMIT $2`, p.dbName, n)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		if err := rows.Scan(&s.Calls, &s.TotalMS, &s.MeanMS, &s.Rows, &s.Query); err != nil {
			return 0, nil, err
		}
		s.Query = truncate(strings.Join(strings.Fields(s.Query), " "), 160)
		out = append(out, s)
	}
	return total, out, rows.Err()
}
