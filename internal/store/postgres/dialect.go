package postgres

import (
	"context"
	"strings"

	"github.com/muster-run/muster/internal/store/sqlstore"
)

// PostgreSQL's side of the dialect. Several servers share the database:
// the multi-row writers (submit, claim, cancel, bump, rescue) serialise
// under one transaction-level advisory lock, so each dispatch batch sees
// the previous one's claims. A claim row-locks its candidates with
// FOR UPDATE SKIP LOCKED and never waits for a row; heartbeats,
// completions, releases and rescues lock the running runs they change
// FOR UPDATE in id order, so they cannot deadlock one another. The partial
// unique index on running runs per node is the backstop either way.

// queueLockKey is the advisory lock key ("muster" in ASCII).
const queueLockKey int64 = 0x6d7573746572

// outputLockKey serialises AppendOutput (migrateLockKey is queueLockKey+1).
const outputLockKey int64 = queueLockKey + 2

// channel is the LISTEN/NOTIFY channel on which servers announce work;
// nodeChannel the one on which they ask nodes to act (a payload of
// newline-separated certnames).
const (
	channel     = "muster_work"
	nodeChannel = "muster_nodes"
)

// channels are every channel a Store listens on.
var channels = []string{channel, nodeChannel}

var dialect = sqlstore.Dialect{
	Rewrite:    sqlx,
	LockQueue:  lockQueue,
	IDs:        ids,
	Rows:       rows,
	SkipLocked: " FOR UPDATE SKIP LOCKED",
	ForUpdate:  " FOR UPDATE OF r",
	Notify:     notify,
	Analyze:    "ANALYZE runs",
	Unhex:      unhex,
	LockOutput: lockOutput,
}

// sqlx is the identity: the neutral SQL is PostgreSQL's.
func sqlx(q string) string { return q }

// lockQueue takes the queue's transaction-level advisory lock.
func lockQueue(ctx context.Context, tx *sqlstore.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, queueLockKey)
	return err
}

// ids binds a list of ids as a bigint[], or one id as itself: for a
// one-element array the custom plan always looks cheaper than the generic
// one, so PostgreSQL would plan the statement again on every execution.
func ids(col, param string, list []int64) (string, any) {
	if len(list) == 1 {
		return col + ` = ` + param, list[0]
	}
	return col + ` = ANY(` + param + `)`, list
}

// rows reads a JSON array of objects as a table.
func rows(param string, cols ...sqlstore.Col) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = c.Name + " " + c.Type
	}
	return `(SELECT * FROM json_to_recordset(CAST(` + param + ` AS json)) AS x(` + strings.Join(defs, ", ") + `))`
}

// notify queues a notification on the work channel, sent at commit
// (PostgreSQL folds identical notifications of one transaction into one).
func notify(ctx context.Context, tx *sqlstore.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify('`+channel+`', '')`)
	return err
}

// unhex decodes hex text to a bytea.
func unhex(expr string) string { return `decode(` + expr + `, 'hex')` }

// lockOutput serialises AppendOutput under its own advisory lock, so that
// chunk ids, drawn from a sequence, become visible in increasing order: an
// append that drew lower ids cannot commit after a watcher has read past
// them. It then key-share locks the chunks' running runs, in id order like
// every other row lock on running runs, before the insert takes its
// snapshot. A writer that ends an attempt locks its run FOR UPDATE, so it
// waits for the append to commit, and then reads the run's has_output
// (which the append set) and deletes its chunks; an append that waited
// for such a writer inserts in a later statement, whose snapshot shows
// the attempt ended, and stores nothing for it.
func lockOutput(ctx context.Context, tx *sqlstore.Tx, runIDs []int64) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, outputLockKey); err != nil {
		return err
	}
	cond, arg := ids("r.id", "$1", runIDs)
	_, err := tx.ExecContext(ctx, `SELECT r.id FROM runs r WHERE `+cond+` AND r.state='running'
		ORDER BY r.id FOR KEY SHARE OF r`, arg)
	return err
}
