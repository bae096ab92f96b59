package sqlstore

// migrate.go: the schema's one set of migrations, and their expansion
// into each database's dialect.

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// The migrations, in name order, are written once for both databases. The
// few places where SQLite and PostgreSQL spell the schema differently are
// marked, and Migrations expands them for one Engine:
//
//   - A placeholder {{name}} stands for a column definition from the
//     placeholders table below, such as {{id}} for an integer primary key
//     that the database assigns.
//   - A line that starts with a dialect marker, --sqlite: or --postgres:,
//     belongs to that engine only: for it the marker (and one space after
//     it, if any) is cut and the rest of the line kept; for the other
//     engine the whole line is dropped. A marker alone on its line is an
//     empty line for its engine. Statements only one engine runs, such as
//     PostgreSQL's autovacuum settings, are written this way, and so are
//     the few lines whose text differs in more than a placeholder.
//
// Anything else is the same text on both. The expansion reproduces, byte
// for byte, the files each store embedded before they were merged (see
// TestMigrationsUnchanged): SQLite keeps each CREATE statement's text in
// sqlite_master, so even spacing and comments inside one are schema. A
// migration that has been released must never change, for either engine;
// change the schema with a new file.

//go:embed migration/*.sql
var migrationFiles embed.FS

// Engine is a database the migrations are expanded for. Its value is the
// name of its dialect marker.
type Engine string

// The engines.
const (
	SQLite     Engine = "sqlite"
	PostgreSQL Engine = "postgres"
)

// engines lists every Engine, so that a placeholder defined for only some
// of them is caught.
var engines = []Engine{SQLite, PostgreSQL}

// placeholders are the column definitions that the engines spell
// differently, by name and engine.
var placeholders = map[string]map[Engine]string{
	// id is an integer primary key that the database assigns.
	"id": {
		SQLite:     "INTEGER PRIMARY KEY",
		PostgreSQL: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
	},
	// id_never_reused is an assigned integer primary key that never comes
	// back, even after the rows with the highest ids are deleted (SQLite
	// reuses them without AUTOINCREMENT; an identity never goes back).
	"id_never_reused": {
		SQLite:     "INTEGER PRIMARY KEY AUTOINCREMENT",
		PostgreSQL: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
	},
	// bytes is a column of any bytes.
	"bytes": {
		SQLite:     "BLOB",
		PostgreSQL: "BYTEA",
	},
}

// Migration is one step of the schema, expanded for one engine.
type Migration struct {
	// Name is what the stores record in their schema_migrations table
	// once the step has run: the file's path in this package, such as
	// "migration/001_queue.sql". Both stores recorded exactly these names
	// when each embedded its own copy, so a file must never be renamed.
	Name string
	// SQL is the step's statements, to run in one Exec.
	SQL string
}

// Migrations returns every migration expanded for e, in name order (the
// order to run them in).
func Migrations(e Engine) ([]Migration, error) {
	if !e.valid() {
		return nil, fmt.Errorf("sqlstore: unknown engine %q", e)
	}
	names, err := fs.Glob(migrationFiles, "migration/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	ms := make([]Migration, 0, len(names))
	for _, name := range names {
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		text, err := expand(e, string(body))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: %s: %w", name, err)
		}
		ms = append(ms, Migration{Name: name, SQL: text})
	}
	return ms, nil
}

func (e Engine) valid() bool {
	for _, k := range engines {
		if e == k {
			return true
		}
	}
	return false
}

var (
	// markerRE matches a dialect marker at the start of a line.
	markerRE = regexp.MustCompile(`^--([a-z]+):`)
	// placeholderRE matches a placeholder.
	placeholderRE = regexp.MustCompile(`\{\{([a-z_]*)\}\}`)
)

// expand turns a migration's text into e's SQL: it keeps e's marked lines
// (without their marker), drops the other engines', and replaces the
// placeholders. An unknown marker or placeholder, or a stray "{{" or "}}",
// is an error rather than SQL the database might half accept.
func expand(e Engine, text string) (string, error) {
	var b strings.Builder
	for i, line := range strings.SplitAfter(text, "\n") {
		if m := markerRE.FindStringSubmatch(line); m != nil {
			if !Engine(m[1]).valid() {
				return "", fmt.Errorf("line %d: unknown dialect marker %q", i+1, m[0])
			}
			if Engine(m[1]) != e {
				continue
			}
			line = strings.TrimPrefix(line[len(m[0]):], " ")
		}
		var bad error
		line = placeholderRE.ReplaceAllStringFunc(line, func(p string) string {
			name := p[2 : len(p)-2]
			v, ok := placeholders[name][e]
			if !ok && bad == nil {
				bad = fmt.Errorf("line %d: unknown placeholder %s", i+1, p)
			}
			return v
		})
		if bad != nil {
			return "", bad
		}
		if strings.Contains(line, "{{") || strings.Contains(line, "}}") {
			return "", fmt.Errorf("line %d: malformed placeholder in %q", i+1, strings.TrimSpace(line))
		}
		b.WriteString(line)
	}
	return b.String(), nil
}
