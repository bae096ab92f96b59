package sqlite

import (
	"context"
	"strings"

	"github.com/muster-run/muster/internal/store/sqlstore"
)

// SQLite's side of the dialect. The writer is one connection and every write
// transaction is BEGIN IMMEDIATE, so writes are already serialised and
// nothing else holds the rows a transaction reads: no advisory lock, no row
// locks, no SKIP LOCKED (and AppendOutput needs no LockOutput: its ids are
// committed in order, and no attempt ends while it runs). Lists of ids and
// rows are bound as JSON text and read back with json_each.

var dialect = sqlstore.Dialect{Rewrite: sqlx, LockQueue: lockQueue, IDs: ids, Rows: rows, CacheStatements: true, Unhex: unhex}

// sqlx rewrites PostgreSQL's two-argument GREATEST/LEAST to SQLite's scalar MAX/MIN.
func sqlx(q string) string {
	return strings.NewReplacer("GREATEST(", "MAX(", "LEAST(", "MIN(").Replace(q)
}

// lockQueue serialises the multi-row writers (submit, claim, cancel, bump,
// rescue) on PostgreSQL; BEGIN IMMEDIATE already does it here.
func lockQueue(context.Context, *sqlstore.Tx) error { return nil }

// ids binds a list of ids as a JSON array.
func ids(col, param string, list []int64) (string, any) {
	return col + ` IN (SELECT value FROM json_each(` + param + `))`, sqlstore.IDsJSON(list)
}

// rows reads a JSON array of objects as a table. LIMIT -1 (no limit)
// keeps the query flattener from merging the subquery into a join, where
// SQLite could rescan and re-parse the JSON for every row on the other
// side; this way it is materialised once.
func rows(param string, cols ...sqlstore.Col) string {
	var b strings.Builder
	b.WriteString("(SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("json_extract(value, '$." + c.Name + "') AS " + c.Name)
	}
	b.WriteString(" FROM json_each(" + param + ") LIMIT -1)")
	return b.String()
}

// unhex decodes hex text to a blob.
func unhex(expr string) string { return `unhex(` + expr + `)` }
