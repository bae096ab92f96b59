package sqlstore

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrationsUnchanged expands every migration for each engine and
// compares it with the file that engine's store embedded before the two
// copies were merged (testdata/<engine>/, copied verbatim from
// internal/sqlite/migration and internal/postgres/migration): the same
// names, so schema_migrations on an existing database matches and nothing
// runs again, and byte for byte the same SQL, so a new database gets the
// very schema an old one has.
func TestMigrationsUnchanged(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e), func(t *testing.T) {
			golden, err := filepath.Glob(filepath.Join("testdata", string(e), "*.sql"))
			if err != nil {
				t.Fatal(err)
			}
			if len(golden) == 0 {
				t.Fatalf("no golden migrations in testdata/%s", e)
			}
			want := map[string]string{}
			for _, f := range golden {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				// The name the store recorded: the embedded file's path.
				want[path.Join("migration", filepath.Base(f))] = string(b)
			}
			ms, err := Migrations(e)
			if err != nil {
				t.Fatal(err)
			}
			// Migrations added since (see TestNewMigrationsExpand) come after
			// every golden one.
			last := ""
			for name := range want {
				last = max(last, name)
			}
			got := map[string]string{}
			for i, m := range ms {
				if i > 0 && ms[i-1].Name >= m.Name {
					t.Errorf("migration %s comes after %s: not in name order", m.Name, ms[i-1].Name)
				}
				if m.Name <= last {
					got[m.Name] = m.SQL
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("migrations for %s differ from what the store ran before (-before +now):\n%s", e, diff)
			}
		})
	}
}

// TestNewMigrationsExpand: the migrations added since the merge (those
// without a golden file) expand for every engine, under the same names in
// the same order, into SQL without markers or placeholders, and each
// engine's text differs from the other's only where the file says so.
func TestNewMigrationsExpand(t *testing.T) {
	golden, err := filepath.Glob(filepath.Join("testdata", string(SQLite), "*.sql"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("golden migrations: %v, %v", golden, err)
	}
	old := map[string]bool{}
	for _, f := range golden {
		old[path.Join("migration", filepath.Base(f))] = true
	}
	byEngine := map[Engine][]Migration{}
	for _, e := range engines {
		ms, err := Migrations(e)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		byEngine[e] = ms
	}
	newOnes := 0
	for i, m := range byEngine[SQLite] {
		if old[m.Name] {
			continue
		}
		newOnes++
		raw, err := migrationFiles.ReadFile(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range engines {
			other := byEngine[e][i]
			if other.Name != m.Name {
				t.Fatalf("migration %d is %s for sqlite, %s for %s", i, m.Name, other.Name, e)
			}
			if strings.Contains(other.SQL, "{{") || markerRE.MatchString(other.SQL) ||
				strings.Contains(other.SQL, "\n--sqlite:") || strings.Contains(other.SQL, "\n--postgres:") {
				t.Errorf("%s for %s keeps a marker or placeholder:\n%s", m.Name, e, other.SQL)
			}
			if strings.TrimSpace(other.SQL) == "" {
				t.Errorf("%s is empty for %s", m.Name, e)
			}
		}
		marked := strings.Contains(string(raw), "--sqlite:") || strings.Contains(string(raw), "--postgres:") ||
			placeholderRE.MatchString(string(raw))
		if same := byEngine[SQLite][i].SQL == byEngine[PostgreSQL][i].SQL; same == marked {
			t.Errorf("%s: marked or with placeholders %v, yet the engines' SQL is the same: %v", m.Name, marked, same)
		}
	}
	if newOnes == 0 {
		t.Skip("no migration added since the golden files")
	}
}

// TestPlaceholdersComplete: every placeholder has a spelling for every
// engine.
func TestPlaceholdersComplete(t *testing.T) {
	for name, by := range placeholders {
		for _, e := range engines {
			if by[e] == "" {
				t.Errorf("placeholder {{%s}} has no spelling for %s", name, e)
			}
		}
	}
}

// TestExpand checks the markers and placeholders on made-up migrations.
func TestExpand(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		engine  Engine
		want    string
		wantErr string
	}{
		{"plain text is kept", "CREATE TABLE t (x TEXT);\n-- note: a comment\n", SQLite,
			"CREATE TABLE t (x TEXT);\n-- note: a comment\n", ""},
		{"placeholder, sqlite", "CREATE TABLE t (id {{id}}, n {{id_never_reused}});\n", SQLite,
			"CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER PRIMARY KEY AUTOINCREMENT);\n", ""},
		{"placeholder, postgres", "CREATE TABLE t (id {{id}});\n", PostgreSQL,
			"CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n", ""},
		{"own marker kept, other dropped", "a\n--postgres: ALTER TABLE t SET (x = 1);\n--sqlite:   b BLOB\nc", PostgreSQL,
			"a\nALTER TABLE t SET (x = 1);\nc", ""},
		{"other marker kept for its engine", "a\n--postgres: ALTER TABLE t SET (x = 1);\n--sqlite:   b BLOB\nc", SQLite,
			"a\n  b BLOB\nc", ""},
		{"marker alone is an empty line", "a\n--postgres:\n--postgres: b\n", PostgreSQL, "a\n\nb\n", ""},
		{"marker alone dropped for the other", "a\n--postgres:\n--postgres: b\n", SQLite, "a\n", ""},
		{"bytes placeholder", "b {{bytes}} NOT NULL\n", SQLite, "b BLOB NOT NULL\n", ""},
		{"bytes placeholder, postgres", "b {{bytes}} NOT NULL\n", PostgreSQL, "b BYTEA NOT NULL\n", ""},
		{"placeholder on a marked line", "--sqlite: id {{id}}\n", SQLite, "id INTEGER PRIMARY KEY\n", ""},
		{"unknown marker", "--mysql: x\n", SQLite, "", `line 1: unknown dialect marker "--mysql:"`},
		{"unknown marker on the other engine's run", "ok\n--oracle: x\n", PostgreSQL, "", `line 2: unknown dialect marker "--oracle:"`},
		{"unknown placeholder", "x {{uuid}}\n", PostgreSQL, "", "line 1: unknown placeholder {{uuid}}"},
		{"malformed placeholder", "x {{ id }}\n", SQLite, "", "line 1: malformed placeholder"},
		{"unclosed placeholder", "x {{id\n", SQLite, "", "line 1: malformed placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expand(tt.engine, tt.text)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("expand = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("expand: %v", err)
			case got != tt.want:
				t.Errorf("expand = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMigrationsUnknownEngine: an engine without markers or spellings is
// refused.
func TestMigrationsUnknownEngine(t *testing.T) {
	if _, err := Migrations("mysql"); err == nil {
		t.Fatal("Migrations(mysql) succeeded")
	}
}
