// Package pgtest gives tests a PostgreSQL database: the server from
// MUSTER_TEST_POSTGRES_URL (scripts/pgtest.sh starts a throwaway one), and
// a fresh schema per test so tests never see each other's queues.
package pgtest

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// URL returns MUSTER_TEST_POSTGRES_URL, or skips the test; with
// MUSTER_TEST_REQUIRE_POSTGRES=1 (as in CI) a missing database fails it
// instead, since a silent skip there would hide a broken setup.
func URL(t testing.TB) string {
	u := os.Getenv("MUSTER_TEST_POSTGRES_URL")
	if u == "" {
		msg := "MUSTER_TEST_POSTGRES_URL is not set; start a throwaway server with: eval \"$(scripts/pgtest.sh)\""
		if os.Getenv("MUSTER_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal(msg + " (MUSTER_TEST_REQUIRE_POSTGRES=1)")
		}
		t.Skip(msg)
	}
	return u
}

// WithSearchPath adds search_path=schema to a URL or key=value DSN.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

var seq atomic.Int64

// Schema creates a fresh schema on dsn (URL(t) when dsn is ""), drops it
// when the test ends, and returns a DSN that uses it.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	if dsn == "" {
		dsn = URL(t)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("muster_test_%d_%d", os.Getpid(), seq.Add(1))
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, dsn, schema)
}
