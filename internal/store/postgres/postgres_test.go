package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/store/postgres"
	"github.com/muster-run/muster/internal/store/sqlstore"
	"github.com/muster-run/muster/internal/store/storetest"
	"github.com/muster-run/muster/internal/testkit/pgtest"
)

// factory gives every store its own fresh schema, dropped at cleanup.
func factory(t testing.TB) storetest.Factory {
	pgtest.URL(t)
	return func(t testing.TB, opts ...muster.StoreOption) muster.Store {
		s, err := postgres.Open(context.Background(), pgtest.Schema(t, ""), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, factory(t)) }

func BenchmarkDispatch(b *testing.B) { storetest.Benchmark(b, factory(b)) }

func BenchmarkDispatchBatch(b *testing.B) { storetest.BenchmarkBatch(b, factory(b)) }

// TestConcurrentOpen checks that servers starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	newStore := factory(t)
	first := newStore(t).(*postgres.Store)
	var path string
	if err := first.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.WithSearchPath(t, pgtest.URL(t), path)
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
	ms, err := sqlstore.Migrations(sqlstore.PostgreSQL)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := first.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d: %v", n, len(ms), err)
	}
}

// TestOpensOldDatabase: a database that the store migrated before the
// migrations moved to internal/store/sqlstore (from its own copies, kept there as
// golden files) opens without running any migration again, and has
// exactly the schema that a new database gets.
func TestOpensOldDatabase(t *testing.T) {
	ctx := context.Background()
	old := pgtest.Schema(t, "")
	db, err := sql.Open("pgx", old)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// What migrate did then: each embedded file in name order, recorded
	// under its embedded path, in one transaction.
	files, err := filepath.Glob(filepath.Join("..", "sqlstore", "testdata", "postgres", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden migrations: %v, %v", files, err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (name) VALUES ($1)`, "migration/"+filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	fresh := pgtest.Schema(t, "")
	for _, dsn := range []string{old, fresh} {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if diff := cmp.Diff(schemaOf(t, old), schemaOf(t, fresh)); diff != "" {
		t.Errorf("a new database's schema differs from an old one's (-old +new):\n%s", diff)
	}
}

// schemaOf describes the schema of dsn's search path from the catalogs:
// columns, constraints, indexes, storage options, and the migrations it
// recorded. Names are unqualified, so two schemas compare equal.
func schemaOf(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, q := range []string{
		`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable ||
			' default=' || COALESCE(column_default, '') || ' identity=' || is_identity || ' ' || COALESCE(identity_generation, '')
			FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, column_name`,
		`SELECT 'constraint ' || c.relname || '.' || con.conname || ': ' || pg_get_constraintdef(con.oid)
			FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() ORDER BY c.relname, con.conname`,
		`SELECT 'index ' || indexname || ': ' || replace(indexdef, current_schema() || '.', '')
			FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`,
		`SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || COALESCE(array_to_string(c.reloptions, ','), '')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() ORDER BY c.relname`,
		`SELECT 'migration ' || name FROM schema_migrations ORDER BY name`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if len(out) == 0 || !strings.HasPrefix(out[0], "column ") {
		t.Fatalf("no schema found for %s: %q", dsn, out)
	}
	return out
}

// TestSharedDependencies: two stores (two servers) on one database
// complete a dependency's runs and claim concurrently: no dependent starts
// before its dependencies succeeded, and none is left waiting.
func TestSharedDependencies(t *testing.T) {
	newStore := factory(t)
	storetest.RunShared(t, func(t *testing.T, opts ...muster.StoreOption) (muster.Store, muster.Store) {
		a := newStore(t, opts...).(*postgres.Store)
		var path string
		if err := a.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
			t.Fatal(err)
		}
		b, err := postgres.Open(context.Background(), pgtest.WithSearchPath(t, pgtest.URL(t), path), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return a, b
	})
}
