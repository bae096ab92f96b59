package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/store/sqlite"
	"github.com/muster-run/muster/internal/store/storetest"
)

func newStore(t testing.TB, opts ...muster.StoreOption) muster.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "muster.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }

func BenchmarkDispatch(b *testing.B) { storetest.Benchmark(b, newStore) }

func BenchmarkDispatchBatch(b *testing.B) { storetest.BenchmarkBatch(b, newStore) }

// TestReopen checks that migrations run once and data survives a reopen.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "muster.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.SubmitJob(ctx, muster.Job{Kind: muster.JobTask, Targets: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if j, err := s.GetJob(ctx, res.Job.ID); err != nil || j.Counts[muster.RunPending] != 1 {
		t.Fatalf("after reopen: %+v, %v", j, err)
	}
}

// TestMigrateKeepsForeignKeys: migrations run with foreign keys off (a
// table rebuild needs it), and the writer has them on again afterwards,
// on a new database and on one migrated from the golden files.
func TestMigrateKeepsForeignKeys(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "muster.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var on int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&on); err != nil || on != 1 {
		t.Fatalf("PRAGMA foreign_keys = %d, %v; want 1", on, err)
	}
	_, err = s.DB().ExecContext(ctx, `INSERT INTO requests (job_id, run_id) VALUES (999, 999)`)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "foreign key") {
		t.Fatalf("a request for a missing job and run: %v, want a foreign key error", err)
	}
}

// TestOpenChecksIntegrity: Open refuses a corrupt database or a file that
// is not a database, saying what is wrong and what to do, and opens a
// healthy one.
func TestOpenChecksIntegrity(t *testing.T) {
	ctx := context.Background()
	// pageGarbage overwrites page n (1-based; 0 is the middle one) with
	// garbage.
	pageGarbage := func(n int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			size := int(binary.BigEndian.Uint16(b[16:18]))
			if size == 1 {
				size = 65536
			}
			if n == 0 {
				n = len(b) / size / 2
			}
			if n < 1 || len(b) < n*size {
				t.Fatalf("%s has %d bytes: no page %d of %d bytes", path, len(b), n, size)
			}
			page := b[(n-1)*size : n*size]
			for i := range page {
				page[i] = byte(i*7 + 0xA5)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	replace := func(content string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, path string) // nil leaves the file alone
		want   []string                        // in the error; none: Open succeeds
	}{
		{"healthy", nil, nil},
		{"page 3 overwritten", pageGarbage(3), []string{" is corrupt (quick_check: ", "restore it from a backup",
			"move it aside to start with an empty queue", `".recover"`}},
		{"page 2 overwritten", pageGarbage(2), []string{" is corrupt (quick_check: ", "restore it from a backup"}},
		{"middle page overwritten", pageGarbage(0), []string{" is corrupt (quick_check: ", "restore it from a backup"}},
		{"not a database", replace(strings.Repeat("this is a text file, not a database\n", 300)),
			[]string{" is not a SQLite database (file is not a database)", "--database", "move it aside"}},
		{"empty file", replace(""), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "muster.db")
			s, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			var id int64
			for i := range 100 {
				res, err := s.SubmitJob(ctx, muster.Job{Kind: muster.JobCommand, Spec: []byte(`{"command":"uptime"}`),
					Targets: []string{fmt.Sprintf("web%d", i), fmt.Sprintf("db%d", i), fmt.Sprintf("mail%d", i)}})
				if err != nil {
					t.Fatal(err)
				}
				id = res.Job.ID
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
				t.Fatalf("the WAL still holds %d bytes after Close", fi.Size())
			}
			if tc.damage != nil {
				tc.damage(t, path)
			}
			s, err = sqlite.Open(ctx, path)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if tc.damage == nil {
					if j, err := s.GetJob(ctx, id); err != nil || len(j.Targets) != 3 {
						t.Fatalf("job %d after reopen: %+v, %v", id, j, err)
					}
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			t.Logf("Open: %s", msg)
			if !strings.Contains(msg, path) {
				t.Errorf("the error does not name %s: %s", path, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error lacks %q: %s", w, msg)
				}
			}
			if !errors.Is(err, sqlite.ErrCorrupt) {
				t.Errorf("errors.Is(err, ErrCorrupt) is false: %v", err)
			}
		})
	}
}

// BenchmarkOpen measures Open (with its quick_check) and the quick_check
// alone on a database of 100,000 finished runs (100 jobs on 1,000 nodes,
// each run with a result of about 300 bytes), and reports the file size.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "muster.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]string, 1000)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node%04d.example.com", i)
	}
	for j := range 100 {
		if _, err := s.SubmitJob(ctx, muster.Job{Kind: muster.JobCommand, Targets: nodes,
			Spec: []byte(fmt.Sprintf(`{"command":"uptime # %d"}`, j))}); err != nil {
			b.Fatal(err)
		}
	}
	result := []byte(`{"stdout":"` + strings.Repeat("load average: 0.01, 0.02, 0.03 ", 9) + `","exit_code":0}`)
	for done := 0; done < 100*len(nodes); {
		rs, err := s.ClaimRuns(ctx, muster.ClaimParams{Server: "bench", Limit: 1000, LeaseTTL: time.Minute})
		if err != nil || len(rs) == 0 {
			b.Fatalf("claim after %d: %d runs, %v", done, len(rs), err)
		}
		ps := make([]muster.CompleteParams, len(rs))
		for i, r := range rs {
			ps[i] = muster.CompleteParams{RunID: r.ID, Server: "bench", Attempt: r.Attempt,
				Outcome: muster.OutcomeSucceeded, Result: result}
		}
		if _, err := s.CompleteRuns(ctx, ps); err != nil {
			b.Fatal(err)
		}
		done += len(rs)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			s, err := sqlite.Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
		b.ReportMetric(float64(fi.Size())/1e6, "MB")
	})
	b.Run("QuickCheck", func(b *testing.B) {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			var res string
			if err := db.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&res); err != nil || res != "ok" {
				b.Fatalf("quick_check: %q, %v", res, err)
			}
		}
	})
}

// TestOpensOldDatabase: a database that the store migrated before the
// migrations moved to internal/store/sqlstore (from its own copies, kept there as
// golden files) opens without running any migration again, and has
// exactly the schema that a new database gets.
func TestOpensOldDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	db, err := sql.Open("sqlite", "file:"+old)
	if err != nil {
		t.Fatal(err)
	}
	// What migrate did then: each embedded file in name order, recorded
	// under its embedded path.
	files, err := filepath.Glob(filepath.Join("..", "sqlstore", "testdata", "sqlite", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden migrations: %v, %v", files, err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations (name) VALUES ($1)`, "migration/"+filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	fresh := filepath.Join(dir, "new.db")
	for _, path := range []string{old, fresh} {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("open %s: %v", filepath.Base(path), err)
		}
		s.Close()
	}
	if got, want := schemaOf(t, fresh), schemaOf(t, old); got != want {
		t.Errorf("a new database's schema differs from an old one's:\nnew:\n%s\nold:\n%s", got, want)
	}
}

// schemaOf returns the database's schema as SQLite keeps it (every
// object's CREATE text) and the migrations it recorded.
func schemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || COALESCE(sql, '') FROM sqlite_master ORDER BY type, name`,
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
			b.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}
