package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/postgres"
	"github.com/muster-run/muster/internal/storetest"
)

// serverURL returns MUSTER_TEST_POSTGRES_URL, or skips (fails when
// MUSTER_TEST_REQUIRE_POSTGRES=1, as in CI: a silent skip is a failure).
func serverURL(t testing.TB) string {
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

// withSearchPath adds search_path=schema to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
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

// factory gives every store its own fresh schema, dropped at cleanup.
func factory(t testing.TB) storetest.Factory {
	dsn := serverURL(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return func(t testing.TB, opts ...muster.StoreOption) muster.Store {
		ctx := context.Background()
		schema := fmt.Sprintf("muster_test_%d_%d", os.Getpid(), seq.Add(1))
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		s, err := postgres.Open(ctx, withSearchPath(t, dsn, schema), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			s.Close()
			if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				t.Errorf("drop schema: %v", err)
			}
		})
		return s
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, factory(t)) }

func BenchmarkDispatch(b *testing.B) { storetest.Benchmark(b, factory(b)) }

// TestConcurrentOpen checks that servers starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	newStore := factory(t)
	first := newStore(t).(*postgres.Store)
	var path string
	if err := first.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	dsn := withSearchPath(t, serverURL(t), path)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := first.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations has %d rows, %v", n, err)
	}
}
