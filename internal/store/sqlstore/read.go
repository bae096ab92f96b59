package sqlstore

// read.go: the queue's read side, in dialect-neutral SQL.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// runFields are a Run's columns, in scanRun's order, over "runs r" joined
// with "jobs j"; runCols adds the FROM clause.
const runFields = `r.id, r.job_id, r.node, r.kind, j.spec, r.priority, r.state, r.attempt, r.max_retries, r.timeout_us,
	r.on_lease_expiry, r.run_at, r.created_at, r.started_at, r.finished_at, r.lease_owner, r.lease_expires_at,
	r.exit_code, r.error, r.result`

const runCols = runFields + ` FROM runs r JOIN jobs j ON j.id = r.job_id`

// runReturning is runFields for a RETURNING clause of a statement on runs
// alone: the spec comes back empty and is filled in from jobs.
const runReturning = `id, job_id, node, kind, '' AS spec, priority, state, attempt, max_retries, timeout_us,
	on_lease_expiry, run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at,
	exit_code, error, result`

type scanner interface{ Scan(dest ...any) error }

// scanRun scans runFields, then extra.
func scanRun(sc scanner, extra ...any) (muster.Run, error) {
	var r muster.Run
	var spec, result string
	var timeout, runAt, created, started, finished, expires int64
	dest := []any{&r.ID, &r.JobID, &r.Node, &r.Kind, &spec, &r.Priority, &r.State, &r.Attempt, &r.MaxRetries,
		&timeout, &r.OnLeaseExpiry, &runAt, &created, &started, &finished, &r.LeaseOwner, &expires,
		&r.ExitCode, &r.Error, &result}
	err := sc.Scan(append(dest, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run: %w", muster.ErrNotFound)
	}
	r.Spec = json.RawMessage(spec)
	if result != "" {
		r.Result = json.RawMessage(result)
	}
	r.Timeout = time.Duration(timeout) * time.Microsecond
	r.RunAt, r.CreatedAt, r.StartedAt = fromUS(runAt), fromUS(created), fromUS(started)
	r.FinishedAt, r.LeaseExpires = fromUS(finished), fromUS(expires)
	return r, err
}

func getRun(ctx context.Context, q querier, id int64) (muster.Run, error) {
	return scanRun(q.QueryRowContext(ctx, `SELECT `+runCols+` WHERE r.id=$1`, id))
}

const jobCols = `id, kind, spec, targets, priority, run_at, every_us, continuous, max_retries, timeout_us,
	on_lease_expiry, created_by, created_at, cancelled_at, fingerprint, on_change_kind, on_change_spec, facts_used,
	depends_on_result, once_key FROM jobs`

func scanJob(sc scanner) (muster.Job, error) {
	var j muster.Job
	var spec, targets string
	var runAt, every, timeout, created, cancelled int64
	var continuous int
	var onChangeKind, onChangeSpec, factsUsed string
	err := sc.Scan(&j.ID, &j.Kind, &spec, &targets, &j.Priority, &runAt, &every, &continuous, &j.MaxRetries,
		&timeout, &j.OnLeaseExpiry, &j.CreatedBy, &created, &cancelled, &j.Fingerprint, &onChangeKind, &onChangeSpec,
		&factsUsed, &j.DependsOnResult, &j.OnceKey)
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("job: %w", muster.ErrNotFound)
	} else if err != nil {
		return j, err
	}
	j.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(targets), &j.Targets); err != nil {
		return j, err
	}
	j.RunAt, j.CreatedAt, j.CancelledAt = fromUS(runAt), fromUS(created), fromUS(cancelled)
	j.Every = time.Duration(every) * time.Microsecond
	j.Timeout = time.Duration(timeout) * time.Microsecond
	j.Continuous = continuous != 0
	if onChangeKind != "" {
		j.OnChange = &muster.OnChange{Kind: muster.JobKind(onChangeKind), Spec: json.RawMessage(onChangeSpec)}
	}
	if factsUsed != "" {
		if err := json.Unmarshal([]byte(factsUsed), &j.FactsUsed); err != nil {
			return j, fmt.Errorf("job %d: facts_used: %w", j.ID, err)
		}
	}
	return j, nil
}

// getJob reads a job with its run counts.
func getJob(ctx context.Context, q querier, id int64) (muster.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobCols+` WHERE id=$1`, id))
	if err != nil {
		return j, err
	}
	j.Counts, err = countByState(ctx, q, `SELECT r.state, COUNT(*) FROM requests q JOIN runs r ON r.id=q.run_id
		WHERE q.job_id=$1 GROUP BY r.state`, id)
	if err != nil {
		return j, err
	}
	j.After, err = queryAll(ctx, q, func(sc scanner) (d muster.Dependency, err error) {
		var perNode int
		err = sc.Scan(&d.JobID, &perNode)
		d.Each = perNode != 0
		return d, err
	}, `SELECT dep_job_id, per_node FROM job_deps WHERE job_id=$1 ORDER BY dep_job_id`, id)
	return j, err
}

// GetJob implements muster.Jobs.
func (s *Store) GetJob(ctx context.Context, id int64) (muster.Job, error) {
	return getJob(ctx, s.R, id)
}

// ListJobs implements muster.Jobs. The state filter is applied to derived
// job states, so a filtered page may scan more jobs than it returns.
func (s *Store) ListJobs(ctx context.Context, f muster.JobFilter) ([]muster.Job, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	before := f.BeforeID
	var out []muster.Job
	for len(out) < limit {
		q := `SELECT id FROM jobs ORDER BY id DESC LIMIT $1`
		args := []any{limit}
		if before > 0 {
			q = `SELECT id FROM jobs WHERE id < $2 ORDER BY id DESC LIMIT $1`
			args = append(args, before)
		}
		ids, err := QueryIDs(ctx, s.R, q, args...)
		if err != nil || len(ids) == 0 {
			return out, err
		}
		for _, id := range ids {
			j, err := getJob(ctx, s.R, id)
			if err != nil {
				return nil, err
			}
			if (f.State == "" || j.State() == f.State) && len(out) < limit {
				out = append(out, j)
			}
			before = id
		}
	}
	return out, nil
}

// GetRun implements muster.Jobs.
func (s *Store) GetRun(ctx context.Context, id int64) (muster.Run, error) {
	return getRun(ctx, s.R, id)
}

// ListRuns implements muster.Jobs.
func (s *Store) ListRuns(ctx context.Context, f muster.RunFilter) ([]muster.Run, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.JobID != 0 {
		where = append(where, `r.id IN (SELECT run_id FROM requests WHERE job_id=`+arg(f.JobID)+`)`)
	}
	if f.Node != "" {
		where = append(where, `r.node=`+arg(f.Node))
	}
	if len(f.States) > 0 {
		var in []string
		for _, st := range f.States {
			in = append(in, arg(string(st)))
		}
		where = append(where, `r.state IN (`+strings.Join(in, ",")+`)`)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT ` + runCols
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY r.id LIMIT ` + arg(limit)
	return queryAll(ctx, s.R, scanOneRun, q, args...)
}

// scanOneRun scans runFields alone, for queryAll.
func scanOneRun(sc scanner) (muster.Run, error) { return scanRun(sc) }

// Stats implements muster.Jobs.
func (s *Store) Stats(ctx context.Context) (muster.Stats, error) {
	now := s.Opt.Now()
	var st muster.Stats
	var err error
	if st.Counts, err = countByState(ctx, s.R, `SELECT state, COUNT(*) FROM runs GROUP BY state`); err != nil {
		return st, err
	}
	var oldest int64
	if err := s.R.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(run_at),0) FROM runs
		WHERE state IN `+waiting+` AND run_at <= $1`, us(now)).Scan(&st.Ready, &oldest); err != nil {
		return st, err
	}
	if oldest != 0 {
		st.OldestReadyAge = now.Sub(fromUS(oldest))
	}
	err = s.R.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN finished_at >= $1 THEN 1 ELSE 0 END),0),
		COALESCE(SUM(CASE WHEN finished_at >= $2 THEN 1 ELSE 0 END),0), COUNT(*)
		FROM runs WHERE state IN ('succeeded','failed') AND finished_at >= $3`,
		us(now.Add(-time.Minute)), us(now.Add(-5*time.Minute)), us(now.Add(-15*time.Minute))).
		Scan(&st.Finished1m, &st.Finished5m, &st.Finished15m)
	if err != nil {
		return st, err
	}
	rows, err := s.R.QueryContext(ctx, `SELECT run_at, started_at, finished_at FROM runs
		WHERE state IN ('succeeded','failed') AND started_at > 0 ORDER BY finished_at DESC LIMIT 1000`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	var waits, runs []time.Duration
	for rows.Next() {
		var runAt, started, finished int64
		if err := rows.Scan(&runAt, &started, &finished); err != nil {
			return st, err
		}
		waits = append(waits, max(0, time.Duration(started-runAt)*time.Microsecond))
		runs = append(runs, max(0, time.Duration(finished-started)*time.Microsecond))
	}
	st.Wait, st.RunTime = muster.PercentilesOf(waits), muster.PercentilesOf(runs)
	return st, rows.Err()
}
