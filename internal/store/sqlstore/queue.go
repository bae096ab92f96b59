package sqlstore

// queue.go: the queue's writers, in dialect-neutral SQL (completion is in
// complete.go, leases in lease.go, cancellation in cancel.go). The
// multi-row writers take the dialect's queue lock. On PostgreSQL every
// statement that row-locks running runs takes its locks in id order, and
// ClaimRuns never waits for a row lock, so concurrent batches of
// heartbeats, completions, releases, rescues and cancels cannot deadlock.
//
// Those statements sort by "+r.id", not "r.id": the unary plus keeps
// SQLite's planner, which has no statistics, from choosing a full scan in
// rowid order over the small partial indexes on running runs.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/muster-run/muster"
)

// newRun is a run row to insert, bound through Dialect.Rows.
type newRun struct {
	JobID         int64  `json:"job_id"`
	Node          string `json:"node"`
	Kind          string `json:"kind"`
	SpecHash      string `json:"spec_hash"`
	Priority      int64  `json:"priority"`
	State         string `json:"state"`
	MaxRetries    int64  `json:"max_retries"`
	TimeoutUS     int64  `json:"timeout_us"`
	OnLeaseExpiry string `json:"on_lease_expiry"`
	RunAt         int64  `json:"run_at"`
	CreatedAt     int64  `json:"created_at"`
	Error         string `json:"error"`
}

var newRunCols = []Col{{"job_id", "BIGINT"}, {"node", "TEXT"}, {"kind", "TEXT"}, {"spec_hash", "TEXT"},
	{"priority", "BIGINT"}, {"state", "TEXT"}, {"max_retries", "BIGINT"}, {"timeout_us", "BIGINT"},
	{"on_lease_expiry", "TEXT"}, {"run_at", "BIGINT"}, {"created_at", "BIGINT"}, {"error", "TEXT"}}

const newRunNames = `job_id, node, kind, spec_hash, priority, state, max_retries, timeout_us, on_lease_expiry, run_at, created_at, error`

func runFor(j muster.Job, node, hash string, state muster.RunState, runAt, now time.Time) newRun {
	return newRun{JobID: j.ID, Node: node, Kind: string(j.Kind), SpecHash: hash, Priority: int64(j.Priority),
		State: string(state), MaxRetries: int64(j.MaxRetries), TimeoutUS: j.Timeout.Microseconds(),
		OnLeaseExpiry: string(j.OnLeaseExpiry), RunAt: us(runAt), CreatedAt: us(now)}
}

// runKey names a run by its job and node (unique among the runs one
// statement inserts: a job has one run per target).
type runKey struct {
	job  int64
	node string
}

// request links a job to a run serving it.
type request struct {
	JobID int64 `json:"job_id"`
	RunID int64 `json:"run_id"`
}

// insertRuns inserts rs, each serving its own job, and returns their ids.
func (s *Store) insertRuns(ctx context.Context, tx *Tx, rs []newRun) (map[runKey]int64, error) {
	var args []any
	src, err := s.rows(rs, &args, newRunCols...)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO runs (`+newRunNames+`) SELECT `+newRunNames+` FROM `+src+` v
		RETURNING id, job_id, node`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[runKey]int64, len(rs))
	reqs := make([]request, 0, len(rs))
	for rows.Next() {
		var k runKey
		var id int64
		if err := rows.Scan(&id, &k.job, &k.node); err != nil {
			return nil, err
		}
		ids[k] = id
		reqs = append(reqs, request{JobID: k.job, RunID: id})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) != len(rs) {
		return nil, fmt.Errorf("inserted %d of %d runs", len(ids), len(rs))
	}
	return ids, s.insertRequests(ctx, tx, reqs)
}

// insertRequests links jobs to the runs serving them.
func (s *Store) insertRequests(ctx context.Context, tx *Tx, reqs []request) error {
	if len(reqs) == 0 {
		return nil
	}
	var args []any
	src, err := s.rows(reqs, &args, Col{"job_id", "BIGINT"}, Col{"run_id", "BIGINT"})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO requests (job_id, run_id) SELECT job_id, run_id FROM `+src+` v`, args...)
	return err
}

// SubmitJob implements muster.Jobs. It costs a fixed number of statements
// whatever the number of targets.
func (s *Store) SubmitJob(ctx context.Context, j muster.Job) (muster.SubmitResult, error) {
	if err := j.Validate(); err != nil {
		return muster.SubmitResult{}, err
	}
	now := s.Opt.Now()
	if j.RunAt.Before(now) {
		j.RunAt = now
	}
	j.RunAt, j.CreatedAt = fromUS(us(j.RunAt)), fromUS(us(now))
	j.CancelledAt, j.Counts = time.Time{}, nil
	var res muster.SubmitResult
	err := s.write(ctx, func(tx *Tx) error {
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		var err error
		res, err = s.insertJob(ctx, tx, &j, now)
		if err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return muster.SubmitResult{}, err
	}
	s.Signal()
	s.noteInserted(len(res.Runs) - len(res.Coalesced))
	s.maybeAnalyze()
	res.Job = j
	return res, nil
}

// insertJob writes a validated job (RunAt and CreatedAt set) and its runs
// inside the caller's transaction, and sets its ID. SubmitJob holds the
// queue lock around it; a completion's on-change job (fingerprint) does not,
// so a concurrent submit may, rarely, leave a second waiting run where it
// would have coalesced.
func (s *Store) insertJob(ctx context.Context, tx *Tx, jp *muster.Job, now time.Time) (muster.SubmitResult, error) {
	j := *jp
	targets, _ := json.Marshal(j.Targets)
	sum := sha256.Sum256(j.Spec)
	hash := hex.EncodeToString(sum[:])
	state := muster.RunPending
	if j.RunAt.After(now) {
		state = muster.RunScheduled
	}
	var onChangeKind, onChangeSpec, factsUsed string
	if j.OnChange != nil {
		onChangeKind, onChangeSpec = string(j.OnChange.Kind), string(j.OnChange.Spec)
	}
	if len(j.FactsUsed) > 0 {
		b, _ := json.Marshal(j.FactsUsed)
		factsUsed = string(b)
	}
	res := muster.SubmitResult{Runs: map[string]int64{}}
	if j.OnceKey != "" {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE once_key=$1`, j.OnceKey).Scan(&id)
		switch {
		case err == nil:
			existing, err := getJob(ctx, tx, id)
			if err != nil {
				return res, err
			}
			*jp = existing
			res.Job, res.Existing = existing, true
			return res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return res, err
		}
	}
	if j.DependsOnResult > 0 {
		if _, err := getJob(ctx, tx, j.DependsOnResult); err != nil {
			return res, fmt.Errorf("%w: depends-on-result: job %d: %w", muster.ErrInvalid, j.DependsOnResult, err)
		}
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO jobs (kind, spec, spec_hash, targets, priority, run_at, every_us,
		continuous, max_retries, timeout_us, on_lease_expiry, created_by, created_at, fingerprint, on_change_kind,
		on_change_spec, facts_used, depends_on_result, once_key)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) RETURNING id`,
		j.Kind, string(j.Spec), hash, string(targets), j.Priority, us(j.RunAt), j.Every.Microseconds(),
		b2i(j.Continuous), j.MaxRetries, j.Timeout.Microseconds(), j.OnLeaseExpiry, j.CreatedBy, us(now),
		j.Fingerprint, onChangeKind, onChangeSpec, factsUsed, j.DependsOnResult, j.OnceKey).Scan(&j.ID)
	if err != nil {
		return res, err
	}
	jp.ID = j.ID
	err = func() error {
		merged := map[string]int64{}
		if j.Every == 0 && !j.Continuous && len(j.After) == 0 {
			if merged, err = s.coalesce(ctx, tx, j, hash, now); err != nil {
				return err
			}
		}
		// A run that waits for other jobs' runs starts out waiting (or
		// blocked), and never takes in or joins another job's run.
		var states map[string]muster.RunState
		var reasons map[string]string
		if len(j.After) > 0 {
			if states, reasons, err = s.submitDeps(ctx, tx, j); err != nil {
				return err
			}
		}
		var fresh []newRun
		var reqs []request
		for _, node := range j.Targets {
			if id, ok := merged[node]; ok {
				res.Runs[node] = id
				res.Coalesced = append(res.Coalesced, node)
				reqs = append(reqs, request{JobID: j.ID, RunID: id})
			} else if st := states[node]; st != "" {
				r := runFor(j, node, hash, st, j.RunAt, now)
				r.Error = reasons[node]
				fresh = append(fresh, r)
			} else {
				fresh = append(fresh, runFor(j, node, hash, state, j.RunAt, now))
			}
		}
		if len(fresh) > 0 {
			ids, err := s.insertRuns(ctx, tx, fresh)
			if err != nil {
				return err
			}
			for _, r := range fresh {
				res.Runs[r.Node] = ids[runKey{j.ID, r.Node}]
			}
		}
		return s.insertRequests(ctx, tx, reqs)
	}()
	res.Job = j
	return res, err
}

// coalesce merges a one-shot request into the oldest waiting run of the
// same kind and spec on each of j's targets that has one, and returns
// those runs' ids by node. A merged run gets the higher priority and the
// earlier RunAt.
func (s *Store) coalesce(ctx context.Context, tx *Tx, j muster.Job, hash string, now time.Time) (map[string]int64, error) {
	type target struct {
		Node string `json:"node"`
	}
	ts := make([]target, len(j.Targets))
	for i, t := range j.Targets {
		ts[i] = target{t}
	}
	args := []any{j.Kind, hash}
	src, err := s.rows(ts, &args, Col{"node", "TEXT"})
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, node FROM runs WHERE kind=$1 AND spec_hash=$2
		AND state IN ('scheduled','pending') AND node IN (SELECT node FROM `+src+` v) ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	first := map[string]bool{}
	var ids []int64
	for rows.Next() {
		var id int64
		var node string
		if err := rows.Scan(&id, &node); err != nil {
			return nil, err
		}
		if !first[node] {
			first[node] = true
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	merged := map[string]int64{}
	if len(ids) == 0 {
		return merged, nil
	}
	args = []any{j.Priority, us(j.RunAt), us(now)}
	cond := s.ids("id", ids, &args)
	rows, err = tx.QueryContext(ctx, s.D.Rewrite(`UPDATE runs SET priority=GREATEST(priority,$1), run_at=LEAST(run_at,$2),
		state=CASE WHEN $2 <= $3 THEN 'pending' ELSE state END
		WHERE `+cond+` AND state IN ('scheduled','pending') RETURNING id, node`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var node string
		if err := rows.Scan(&id, &node); err != nil {
			return nil, err
		}
		merged[node] = id
	}
	return merged, rows.Err()
}

// candidates is the best waiting push run of every idle node, best first
// (the slow, exact path of pickCandidates). Like ordered, it never picks a
// pull run (JobPull): those are their agents' (ClaimNodeRun).
const candidates = `SELECT id FROM (
	SELECT id, bump, priority, run_at, ROW_NUMBER() OVER (PARTITION BY node ORDER BY bump DESC, priority DESC, run_at, id) AS rn
	FROM runs r WHERE state='pending' AND kind <> 'pull' AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.node=r.node AND x.state='running')
) c WHERE rn=1 ORDER BY bump DESC, priority DESC, run_at, id LIMIT $1`

// ordered is every waiting push run of an idle node, best first, read
// through the runs_ready_order index, which holds no pull runs: its
// predicate is repeated as written, for SQLite's planner.
const ordered = `SELECT id, node FROM runs r WHERE state='pending' AND kind <> 'pull'
	AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.node=r.node AND x.state='running')
	ORDER BY bump DESC, priority DESC, run_at, id LIMIT $1`

// pickCandidates returns the ids of up to n runs to claim: the best run of
// each idle node, best first. The fast path reads the top of the ordered
// queue and takes each node's first run, which is exactly the start of the
// candidates list; only when that window holds too few distinct nodes does
// it sort every waiting run with candidates.
func pickCandidates(ctx context.Context, tx *Tx, n int) ([]int64, error) {
	window := 4*n + 16
	rows, err := tx.QueryContext(ctx, ordered, window)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	seen, read := map[string]bool{}, 0
	for len(ids) < n && rows.Next() {
		var id int64
		var node string
		if err := rows.Scan(&id, &node); err != nil {
			return nil, err
		}
		read++
		if !seen[node] {
			seen[node] = true
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == n || read < window {
		return ids, nil
	}
	return QueryIDs(ctx, tx, candidates, n)
}

// ClaimRuns implements muster.WorkQueue: one statement moves the whole batch to
// running and returns it.
func (s *Store) ClaimRuns(ctx context.Context, p muster.ClaimParams) ([]muster.Run, error) {
	if p.Server == "" || p.Limit <= 0 || p.LeaseTTL <= 0 || p.MaxRunning < 0 {
		return nil, fmt.Errorf("%w: claim needs a server, a positive limit and a lease TTL", muster.ErrInvalid)
	}
	var now time.Time
	var out []muster.Run
	err := s.write(ctx, func(tx *Tx) error {
		out = nil
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		now = s.Opt.Now()
		// The first term repeats runs_waiting's predicate: SQLite only uses a
		// partial index whose predicate appears in the query as written.
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state='pending'
			WHERE state IN `+waiting+` AND state IN ('scheduled','retrying') AND run_at <= $1`, us(now)); err != nil {
			return err
		}
		n := p.Limit
		if p.MaxRunning > 0 {
			var running int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE state='running'`).Scan(&running); err != nil {
				return err
			}
			n = min(n, p.MaxRunning-running)
		}
		if n <= 0 {
			return nil
		}
		ids, err := pickCandidates(ctx, tx, n)
		if err != nil || len(ids) == 0 {
			return err
		}
		// started_at is read after the candidates were chosen: a completion
		// that freed a node is committed, with its finished_at, before the
		// candidate query could see the node idle.
		started := s.Opt.Now()
		args := []any{us(started), p.Server, us(started.Add(p.LeaseTTL))}
		cond := s.ids("id", ids, &args)
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET state='running', attempt=attempt+1, started_at=$1,
			finished_at=0, lease_owner=$2, lease_expires_at=$3
			WHERE id IN (SELECT id FROM runs WHERE `+cond+s.D.SkipLocked+`) AND state='pending'
			RETURNING `+runReturning, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rank := make(map[int64]int, len(ids))
		for i, id := range ids {
			rank[id] = i
		}
		slices.SortFunc(out, func(a, b muster.Run) int { return rank[a.ID] - rank[b.ID] })
		return s.fillSpecs(ctx, tx, out)
	})
	if err != nil {
		return nil, err
	}
	s.maybeAnalyze()
	return out, nil
}

// fillSpecs sets each run's Spec from its job, in one query.
func (s *Store) fillSpecs(ctx context.Context, q querier, rs []muster.Run) error {
	var jobs []int64
	for _, r := range rs {
		if !slices.Contains(jobs, r.JobID) {
			jobs = append(jobs, r.JobID)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	var args []any
	cond := s.ids("id", jobs, &args)
	rows, err := q.QueryContext(ctx, `SELECT id, spec, fingerprint FROM jobs WHERE `+cond, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	specs := make(map[int64]json.RawMessage, len(jobs))
	prints := map[int64]string{}
	for rows.Next() {
		var id int64
		var spec, print string
		if err := rows.Scan(&id, &spec, &print); err != nil {
			return err
		}
		specs[id], prints[id] = json.RawMessage(spec), print
	}
	for i := range rs {
		rs[i].Spec, rs[i].Fingerprint = specs[rs[i].JobID], prints[rs[i].JobID]
	}
	return rows.Err()
}

// BumpJob implements muster.Jobs.
func (s *Store) BumpJob(ctx context.Context, id int64) error {
	now := us(s.Opt.Now())
	err := s.write(ctx, func(tx *Tx) error {
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		if _, err := getJob(ctx, tx, id); err != nil {
			return err
		}
		var top int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(bump),0) FROM runs`).Scan(&top); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.D.Rewrite(`UPDATE runs SET bump=$2, state='pending', run_at=LEAST(run_at,$3)
			WHERE state IN `+waiting+` AND id IN (SELECT run_id FROM requests WHERE job_id=$1)`), id, top+1, now)
		if err != nil {
			return err
		}
		// Runs waiting for dependencies keep waiting, bumped: they go first
		// once ready. They are locked in id order, as settle locks them.
		_, err = tx.ExecContext(ctx, `UPDATE runs SET bump=$2 WHERE id IN (SELECT r.id FROM runs r
			WHERE r.job_id=$1 AND r.state IN `+held+` ORDER BY +r.id`+s.D.ForUpdate+`)`, id, top+1)
		if err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err == nil {
		s.Signal()
	}
	return err
}
