// Package sqlstore is the job queue's logic in dialect-neutral SQL over
// database/sql, shared by the sqlite and postgres adapters, which supply
// their connections and a Dialect. It holds no driver of its own. It also
// holds the schema: one set of migrations for both databases, which each
// adapter expands for its engine with Migrations (see migrate.go).
//
// The hot paths (ClaimRuns, CompleteRuns, SubmitJob) are set-based: a batch
// of runs costs a fixed handful of statements, whatever its size. Lists of
// ids and of rows travel as one parameter each (an array or a JSON
// document, per Dialect), so every statement's text is the same for every
// batch size.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Col is a column of a table expression built by Dialect.Rows.
type Col struct {
	Name string
	Type string // "BIGINT" or "TEXT"
}

// Dialect is what differs between the databases.
type Dialect struct {
	// Rewrite adapts a query written for PostgreSQL (GREATEST, LEAST).
	Rewrite func(query string) string
	// LockQueue serialises the multi-row writers (submit, claim, cancel,
	// bump, rescue) inside tx.
	LockQueue func(ctx context.Context, tx *Tx) error
	// IDs returns a condition "col is one of ids" that reads the list from
	// the query parameter param, and the value to bind to param.
	IDs func(col, param string, ids []int64) (cond string, arg any)
	// Rows returns a parenthesised table expression with the columns cols
	// over the JSON array of objects bound (as a string) to param; each
	// object has one member per column, named like it.
	Rows func(param string, cols ...Col) string
	// SkipLocked ends a SELECT over runs that row-locks what it returns,
	// skipping rows another transaction holds ("" where writers are
	// serialised anyway).
	SkipLocked string
	// ForUpdate ends a SELECT over "runs r" that row-locks its rows until
	// the transaction ends, waiting for other holders.
	ForUpdate string
	// Notify, if set, tells the other servers on the database, at commit,
	// that work may have become ready.
	Notify func(ctx context.Context, tx *Tx) error
	// CacheStatements keeps the write transactions' statements prepared
	// for the Store's life (for drivers that parse every statement anew;
	// pgx caches prepared statements itself).
	CacheStatements bool
	// Analyze, if set, is a statement that refreshes the planner's
	// statistics on runs, run once submissions have added many runs (see
	// maybeAnalyze): a planner that still believes the queue is nearly
	// empty sorts the whole backlog on every claim.
	Analyze string
	// Unhex returns an expression that decodes the hex text expr to bytes
	// (output chunks travel through Rows as hex).
	Unhex func(expr string) string
	// LockOutput, if set, runs first in AppendOutput's transaction, with
	// the ids of the runs its chunks are for. Where writers run
	// concurrently it must make two things hold: chunk ids become visible
	// in increasing order (a watcher pages by id and must not page past a
	// chunk still being committed), and an append and a writer that ends
	// an attempt of one of those runs do not overlap, so the append either
	// commits before the attempt's chunks are deleted or sees the attempt
	// ended.
	LockOutput func(ctx context.Context, tx *Tx, runIDs []int64) error
}

// Dialect.Analyze runs once this Store's submissions have inserted
// analyzeAfter runs since the last time, at most every analyzeEvery.
const (
	analyzeAfter = 500
	analyzeEvery = time.Second
)

// analyzer counts the runs submitted since the last Dialect.Analyze.
type analyzer struct {
	mu       sync.Mutex
	inserted int
	last     time.Time
	running  bool
	wg       sync.WaitGroup // the background ANALYZE, waited for by Close
	stop     chan struct{}  // closed by Close
}

// noteInserted counts n newly submitted runs.
func (s *Store) noteInserted(n int) {
	if s.D.Analyze == "" || n == 0 {
		return
	}
	s.an.mu.Lock()
	s.an.inserted += n
	s.an.mu.Unlock()
}

// maybeAnalyze starts Dialect.Analyze in the background when it is due.
// SubmitJob and ClaimRuns call it after they commit, so a burst of
// submissions is analyzed at the latest by the next claim a second later,
// without holding up the claimed runs or the submit's answer. A failure is
// ignored: only plans depend on it. Close cancels and waits for it.
func (s *Store) maybeAnalyze() {
	if s.D.Analyze == "" || s.an.stop == nil {
		return
	}
	s.an.mu.Lock()
	defer s.an.mu.Unlock()
	if s.an.running || s.an.inserted < analyzeAfter || time.Since(s.an.last) < analyzeEvery {
		return
	}
	select {
	case <-s.an.stop:
		return
	default:
	}
	s.an.inserted, s.an.last, s.an.running = 0, time.Now(), true
	s.an.wg.Go(func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.an.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, _ = s.W.ExecContext(ctx, s.D.Analyze)
		s.an.mu.Lock()
		s.an.running = false
		s.an.mu.Unlock()
	})
}

// Store is a muster.Store over a writer and a reader connection pool.
type Store struct {
	W   *sql.DB // writes (and reads that must see them)
	R   *sql.DB // reads
	Opt muster.StoreOptions
	D   Dialect

	wake  chan struct{}
	stmts stmtCache
	an    analyzer
}

var _ muster.Store = (*Store)(nil)

// New returns a Store over the writer w and the reader r (which may be the
// same pool).
func New(w, r *sql.DB, opt muster.StoreOptions, d Dialect) *Store {
	s := &Store{W: w, R: r, Opt: opt, D: d, wake: make(chan struct{}, 1)}
	s.an.stop = make(chan struct{})
	s.stmts.on = d.CacheStatements
	return s
}

// Close closes both pools. Wake's channel stays open.
func (s *Store) Close() error {
	if s.an.stop != nil {
		s.an.mu.Lock()
		select {
		case <-s.an.stop:
		default:
			close(s.an.stop)
		}
		s.an.mu.Unlock()
		s.an.wg.Wait()
	}
	err := s.stmts.close()
	if s.R == s.W {
		return errors.Join(err, s.W.Close())
	}
	return errors.Join(err, s.R.Close(), s.W.Close())
}

// DB returns the writer, for tests that try to break the queue's rules.
func (s *Store) DB() *sql.DB { return s.W }

// Wake implements muster.WorkQueue.
func (s *Store) Wake() <-chan struct{} { return s.wake }

// Signal wakes the consumer of Wake, without blocking: signals coalesce in
// the channel's one-slot buffer.
func (s *Store) Signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// notify runs the dialect's cross-server notification inside tx.
func (s *Store) notify(ctx context.Context, tx *Tx) error {
	if s.D.Notify == nil {
		return nil
	}
	return s.D.Notify(ctx, tx)
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is a write transaction whose statements go through the Store's
// statement cache.
type Tx struct {
	*sql.Tx
	s *Store
}

// ExecContext is sql.Tx's, through the statement cache.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.s.stmts.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext is sql.Tx's, through the statement cache.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.s.stmts.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext is sql.Tx's, through the statement cache.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.s.stmts.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// write runs fn in one write transaction.
func (s *Store) write(ctx context.Context, fn func(tx *Tx) error) error {
	defer s.stmts.prepareMissed(ctx, s.W)
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Tx{Tx: tx, s: s}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// maxStmts bounds the statement cache (the queue's write statements are
// a few dozen constant texts).
const maxStmts = 100

// stmtCache holds prepared statements by query text. A statement is
// prepared after the first transaction that runs it has ended: preparing
// on the pool while a transaction holds SQLite's one writer connection
// would wait for it forever.
type stmtCache struct {
	on   bool
	mu   sync.Mutex
	m    map[string]*sql.Stmt
	miss map[string]bool
}

func (c *stmtCache) get(query string) *sql.Stmt {
	if !c.on {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st
	}
	if len(c.m)+len(c.miss) < maxStmts {
		if c.miss == nil {
			c.miss = map[string]bool{}
		}
		c.miss[query] = true
	}
	return nil
}

func (c *stmtCache) prepareMissed(ctx context.Context, db *sql.DB) {
	if !c.on {
		return
	}
	c.mu.Lock()
	miss := c.miss
	c.miss = nil
	c.mu.Unlock()
	for q := range miss {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared, as it did this time
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		if c.m[q] == nil && c.on {
			c.m[q], st = st, nil
		}
		c.mu.Unlock()
		if st != nil { // prepared meanwhile by another caller, or closed
			_ = st.Close()
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m, c.miss, c.on = nil, nil, false
	return errors.Join(errs...)
}

// ids binds a list of ids as parameter param: it returns the condition on
// col and appends the value to args.
func (s *Store) ids(col string, ids []int64, args *[]any) string {
	cond, arg := s.D.IDs(col, placeholder(len(*args)+1), ids)
	*args = append(*args, arg)
	return cond
}

// rows binds v (a slice of structs whose JSON member names are the cols'
// names) as parameter param: it returns the table expression and appends
// the JSON to args.
func (s *Store) rows(v any, args *[]any, cols ...Col) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	expr := s.D.Rows(placeholder(len(*args)+1), cols...)
	*args = append(*args, string(b))
	return expr, nil
}

func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// IDsJSON is the JSON array of ids, for dialects that bind lists as JSON.
func IDsJSON(ids []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// queryAll runs query and scans every row it returns with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// countByState runs a "SELECT state, COUNT(*) ... GROUP BY state" query.
func countByState(ctx context.Context, q querier, query string, args ...any) (map[muster.RunState]int, error) {
	type count struct {
		state muster.RunState
		n     int
	}
	cs, err := queryAll(ctx, q, func(sc scanner) (c count, err error) {
		err = sc.Scan(&c.state, &c.n)
		return c, err
	}, query, args...)
	out := make(map[muster.RunState]int, len(cs))
	for _, c := range cs {
		out[c.state] = c.n
	}
	return out, err
}

// QueryIDs runs query and returns the ids it selects.
func QueryIDs(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	return queryAll(ctx, q, func(sc scanner) (id int64, err error) {
		err = sc.Scan(&id)
		return id, err
	}, query, args...)
}

const waiting = `('scheduled','pending','retrying')`

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
