package sqlstore

// queue.go is the queue's logic in dialect-neutral SQL. internal/postgres
// carries an identical copy (the layering rules forbid sharing it through
// an adapter); only dialect.go differs. Keep the two in step.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-run/muster"
)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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

// write runs fn in one write transaction.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// SubmitJob implements muster.Store.
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
	targets, _ := json.Marshal(j.Targets)
	sum := sha256.Sum256(j.Spec)
	hash := hex.EncodeToString(sum[:])
	state := muster.RunPending
	if j.RunAt.After(now) {
		state = muster.RunScheduled
	}
	res := muster.SubmitResult{Runs: map[string]int64{}}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO jobs (kind, spec, spec_hash, targets, priority, run_at, every_us,
			continuous, max_retries, timeout_us, on_lease_expiry, created_by, created_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id`,
			j.Kind, string(j.Spec), hash, string(targets), j.Priority, us(j.RunAt), j.Every.Microseconds(),
			b2i(j.Continuous), j.MaxRetries, j.Timeout.Microseconds(), j.OnLeaseExpiry, j.CreatedBy, us(now)).Scan(&j.ID)
		if err != nil {
			return err
		}
		oneShot := j.Every == 0 && !j.Continuous
		for _, node := range j.Targets {
			var id int64
			if oneShot {
				id, err = s.coalesce(ctx, tx, j, node, hash, now)
				if err != nil {
					return err
				}
				if id != 0 {
					res.Coalesced = append(res.Coalesced, node)
				}
			}
			if id == 0 {
				if id, err = insertRun(ctx, tx, j, node, hash, state, j.RunAt, now); err != nil {
					return err
				}
			} else if _, err := tx.ExecContext(ctx, `INSERT INTO requests (job_id, run_id) VALUES ($1,$2)`, j.ID, id); err != nil {
				return err
			}
			res.Runs[node] = id
		}
		return nil
	})
	res.Job = j
	return res, err
}

// coalesce merges a one-shot request into a waiting run of the same kind
// and spec on node, returning its id, or 0 if there is none.
func (s *Store) coalesce(ctx context.Context, tx *sql.Tx, j muster.Job, node, hash string, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE node=$1 AND kind=$2 AND spec_hash=$3
		AND state IN ('scheduled','pending') ORDER BY id LIMIT 1`, node, j.Kind, hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	r, err := tx.ExecContext(ctx, s.D.Rewrite(`UPDATE runs SET priority=GREATEST(priority,$2), run_at=LEAST(run_at,$3),
		state=CASE WHEN $3 <= $4 THEN 'pending' ELSE state END
		WHERE id=$1 AND state IN ('scheduled','pending')`), id, j.Priority, us(j.RunAt), us(now))
	if err != nil {
		return 0, err
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return 0, nil
	}
	return id, nil
}

func insertRun(ctx context.Context, tx *sql.Tx, j muster.Job, node, hash string, state muster.RunState, runAt, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO runs (job_id, node, kind, spec_hash, priority, state, max_retries,
		timeout_us, on_lease_expiry, run_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id`,
		j.ID, node, j.Kind, hash, j.Priority, state, j.MaxRetries, j.Timeout.Microseconds(), j.OnLeaseExpiry,
		us(runAt), us(now)).Scan(&id)
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO requests (job_id, run_id) VALUES ($1,$2)`, j.ID, id)
	return id, err
}

// candidates is the best waiting run of every idle node, best first
// (the slow, exact path of pickCandidates).
const candidates = `SELECT id FROM (
	SELECT id, bump, priority, run_at, ROW_NUMBER() OVER (PARTITION BY node ORDER BY bump DESC, priority DESC, run_at, id) AS rn
	FROM runs r WHERE state='pending' AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.node=r.node AND x.state='running')
) c WHERE rn=1 ORDER BY bump DESC, priority DESC, run_at, id LIMIT $1`

// ordered is every waiting run of an idle node, best first, read through
// the runs_ready_order index.
const ordered = `SELECT id, node FROM runs r WHERE state='pending'
	AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.node=r.node AND x.state='running')
	ORDER BY bump DESC, priority DESC, run_at, id LIMIT $1`

// pickCandidates returns the ids of up to n runs to claim: the best run of
// each idle node, best first. The fast path reads the top of the ordered
// queue and takes each node's first run, which is exactly the start of the
// candidates list; only when that window holds too few distinct nodes does
// it sort every waiting run with candidates.
func pickCandidates(ctx context.Context, tx *sql.Tx, n int) ([]int64, error) {
	window := 4*n + 16
	rows, err := tx.QueryContext(ctx, ordered, window)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	seen, read := map[string]bool{}, 0
	for rows.Next() {
		var id int64
		var node string
		if err := rows.Scan(&id, &node); err != nil {
			return nil, err
		}
		read++
		if !seen[node] && len(ids) < n {
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

// ClaimRuns implements muster.Store.
func (s *Store) ClaimRuns(ctx context.Context, p muster.ClaimParams) ([]muster.Run, error) {
	if p.Server == "" || p.Limit <= 0 || p.LeaseTTL <= 0 || p.MaxRunning < 0 {
		return nil, fmt.Errorf("%w: claim needs a server, a positive limit and a lease TTL", muster.ErrInvalid)
	}
	now := s.Opt.Now()
	var out []muster.Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = nil
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state='pending'
			WHERE state IN ('scheduled','retrying') AND run_at <= $1`, us(now)); err != nil {
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
		if err != nil {
			return err
		}
		if ids, err = s.D.LockCandidates(ctx, tx, ids); err != nil {
			return err
		}
		for _, id := range ids {
			_, err := tx.ExecContext(ctx, `UPDATE runs SET state='running', attempt=attempt+1, started_at=$2,
				finished_at=0, lease_owner=$3, lease_expires_at=$4 WHERE id=$1 AND state='pending'`,
				id, us(now), p.Server, us(now.Add(p.LeaseTTL)))
			if err != nil {
				return err
			}
			r, err := getRun(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Heartbeat implements muster.Store.
func (s *Store) Heartbeat(ctx context.Context, p muster.HeartbeatParams) ([]int64, error) {
	if p.Server == "" || p.LeaseTTL <= 0 {
		return nil, fmt.Errorf("%w: heartbeat needs a server and a lease TTL", muster.ErrInvalid)
	}
	var ids []int64
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		ids, err = QueryIDs(ctx, tx, `UPDATE runs SET lease_expires_at=$1 WHERE state='running' AND lease_owner=$2 RETURNING id`,
			us(s.Opt.Now().Add(p.LeaseTTL)), p.Server)
		return err
	})
	return ids, err
}

// CompleteRun implements muster.Store.
func (s *Store) CompleteRun(ctx context.Context, p muster.CompleteParams) (muster.Run, error) {
	if p.Outcome != muster.OutcomeSucceeded && p.Outcome != muster.OutcomeFailed || p.Server == "" || p.Attempt <= 0 {
		return muster.Run{}, fmt.Errorf("%w: completion needs a server, an attempt and an outcome (got %q)", muster.ErrInvalid, p.Outcome)
	}
	if len(p.Result) > 0 && !json.Valid(p.Result) {
		return muster.Run{}, fmt.Errorf("%w: result is not valid JSON", muster.ErrInvalid)
	}
	now := s.Opt.Now()
	var out muster.Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := getRun(ctx, tx, p.RunID)
		if err != nil {
			return err
		}
		var done int
		if err := tx.QueryRowContext(ctx, `SELECT completed_attempt FROM runs WHERE id=$1`, p.RunID).Scan(&done); err != nil {
			return err
		}
		if done == p.Attempt {
			out = r // already recorded: completion is idempotent
			return nil
		}
		state, runAt := muster.RunSucceeded, r.RunAt
		if p.Outcome == muster.OutcomeFailed {
			state = muster.RunFailed
			if r.Attempt <= r.MaxRetries {
				state, runAt = muster.RunRetrying, now.Add(s.Opt.RetryDelay(r.Attempt))
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state=$4, finished_at=$5, lease_owner='', lease_expires_at=0,
			completed_attempt=attempt, exit_code=$6, error=$7, result=$8, run_at=$9
			WHERE id=$1 AND state='running' AND lease_owner=$2 AND attempt=$3`,
			p.RunID, p.Server, p.Attempt, state, us(now), p.ExitCode, p.Error, string(p.Result), us(runAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return muster.ErrLeaseLost
		}
		if state.Final() {
			if err := repeat(ctx, tx, r, now); err != nil {
				return err
			}
		}
		out, err = getRun(ctx, tx, p.RunID)
		return err
	})
	return out, err
}

// repeat enqueues the node's next run of a continuous or recurring job
// after r ended, inside the caller's transaction.
func repeat(ctx context.Context, tx *sql.Tx, r muster.Run, now time.Time) error {
	var j muster.Job
	var hash string
	var every, timeout, cancelled int64
	var continuous int
	err := tx.QueryRowContext(ctx, `SELECT id, kind, spec_hash, priority, every_us, continuous, max_retries, timeout_us,
		on_lease_expiry, cancelled_at FROM jobs WHERE id=$1`, r.JobID).Scan(&j.ID, &j.Kind, &hash, &j.Priority,
		&every, &continuous, &j.MaxRetries, &timeout, &j.OnLeaseExpiry, &cancelled)
	if err != nil || cancelled != 0 || (every == 0 && continuous == 0) {
		return err
	}
	j.Timeout = time.Duration(timeout) * time.Microsecond
	next, state := now, muster.RunPending // continuous: the back of the queue
	if every > 0 {
		if next = r.RunAt.Add(time.Duration(every) * time.Microsecond); next.After(now) {
			state = muster.RunScheduled
		} else {
			next = now
		}
	}
	_, err = insertRun(ctx, tx, j, r.Node, hash, state, next, now)
	return err
}

// CancelJob implements muster.Store.
func (s *Store) CancelJob(ctx context.Context, id int64) (int, error) {
	now := us(s.Opt.Now())
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		if _, err := getJob(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancelled_at=$2 WHERE id=$1 AND cancelled_at=0`, id, now); err != nil {
			return err
		}
		// Hand shared waiting runs over to another live job they serve.
		const heir = `SELECT MIN(q.job_id) FROM requests q JOIN jobs o ON o.id=q.job_id
			WHERE q.run_id=runs.id AND q.job_id<>$1 AND o.cancelled_at=0`
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET job_id=(`+heir+`)
			WHERE job_id=$1 AND state IN `+waiting+` AND (`+heir+`) IS NOT NULL`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state='cancelled', finished_at=$2
			WHERE job_id=$1 AND state IN `+waiting, id, now)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// BumpJob implements muster.Store.
func (s *Store) BumpJob(ctx context.Context, id int64) error {
	now := us(s.Opt.Now())
	return s.write(ctx, func(tx *sql.Tx) error {
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
		return err
	})
}

// RescueExpired implements muster.Store.
func (s *Store) RescueExpired(ctx context.Context) ([]int64, error) {
	now := s.Opt.Now()
	var out []int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = nil
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		ids, err := QueryIDs(ctx, tx, `SELECT id FROM runs WHERE state='running' AND lease_expires_at < $1 ORDER BY id`, us(now))
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := getRun(ctx, tx, id)
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("lease of %s expired at %s", r.LeaseOwner, r.LeaseExpires.Format(time.RFC3339Nano))
			state, fin := muster.RunPending, int64(0)
			if r.OnLeaseExpiry == muster.LeaseFail {
				state, fin = muster.RunFailed, us(now)
			}
			res, err := tx.ExecContext(ctx, `UPDATE runs SET state=$2, finished_at=$3, error=$4, lease_owner='',
				lease_expires_at=0, completed_attempt=CASE WHEN $2='failed' THEN attempt ELSE completed_attempt END
				WHERE id=$1 AND state='running' AND lease_expires_at < $5`, id, state, fin, msg, us(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue
			}
			if state == muster.RunFailed {
				if err := repeat(ctx, tx, r, now); err != nil {
					return err
				}
			}
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

// QueryIDs runs query and returns the ids it selects.
func QueryIDs(ctx context.Context, q querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
