package sqlstore

// cancel.go: cancelling a job, and the cancel requests its running runs'
// holders look for.

import (
	"context"
	"fmt"

	"github.com/muster-run/muster"
)

// CancelJob implements muster.Jobs. A run owned by the job that another
// live job shares is handed over to that job, whether it waits or runs;
// the job's own waiting runs are cancelled; and the running runs that
// serve it (found through requests: a run it was coalesced into serves it
// too) and no live job get a cancel request.
func (s *Store) CancelJob(ctx context.Context, id int64) (muster.CancelResult, error) {
	now := us(s.Opt.Now())
	var res muster.CancelResult
	err := s.write(ctx, func(tx *Tx) error {
		res = muster.CancelResult{}
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		if _, err := getJob(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancelled_at=$2 WHERE id=$1 AND cancelled_at=0`, id, now); err != nil {
			return err
		}
		// Row locks in the order every writer takes them (see deps.go): the
		// running runs serving the job, then, in one statement, its runs
		// waiting for dependencies and the waiting or blocked runs of the
		// jobs that run after it, which this cancel may block.
		running, err := QueryIDs(ctx, tx, `SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM requests WHERE job_id=$1)
			AND r.state='running' ORDER BY +r.id`+s.D.ForUpdate, id)
		if err != nil {
			return err
		}
		if _, err := QueryIDs(ctx, tx, `SELECT r.id FROM runs r WHERE r.state IN `+held+` AND (r.job_id=$1
			OR r.job_id IN (SELECT d.job_id FROM job_deps d WHERE d.dep_job_id=$1)) ORDER BY +r.id`+s.D.ForUpdate, id); err != nil {
			return err
		}
		// Hand shared waiting runs over to another live job they serve.
		const heir = `SELECT MIN(q.job_id) FROM requests q JOIN jobs o ON o.id=q.job_id
			WHERE q.run_id=runs.id AND q.job_id<>$1 AND o.cancelled_at=0`
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET job_id=(`+heir+`)
			WHERE job_id=$1 AND state IN `+waiting+` AND (`+heir+`) IS NOT NULL`, id); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET state='cancelled', finished_at=$2,
			error=CASE WHEN state IN `+held+` THEN '' ELSE error END
			WHERE job_id=$1 AND (state IN `+waiting+` OR state IN `+held+`) RETURNING id, has_dependents`, id, now)
		if err != nil {
			return err
		}
		var cancelled, ended []int64
		for rows.Next() {
			var rid, deps int64
			if err := rows.Scan(&rid, &deps); err != nil {
				rows.Close()
				return err
			}
			cancelled = append(cancelled, rid)
			if deps != 0 {
				ended = append(ended, rid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		res.Cancelled = len(cancelled)
		// A waiting run has no attempt running, so no output; this keeps
		// the rule that a run ending drops its chunks without relying on it.
		if err := s.dropOutput(ctx, tx, cancelled); err != nil {
			return err
		}
		// The runs that waited for the cancelled ones are blocked.
		if _, err := s.settle(ctx, tx, ended, fromUS(now)); err != nil {
			return err
		}
		if len(running) == 0 {
			return nil
		}
		// A shared one keeps running for another live job, which takes it
		// over (its retries, and a later cancel, follow that job)...
		args := []any{id}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET job_id=(`+heir+`)
			WHERE `+s.ids("id", running, &args)+` AND job_id=$1 AND (`+heir+`) IS NOT NULL`, args...); err != nil {
			return err
		}
		// ... and the others, serving only cancelled jobs, are asked to stop.
		args = []any{id, now}
		stopping, err := QueryIDs(ctx, tx, `UPDATE runs SET cancel_requested_at=$2
			WHERE `+s.ids("id", running, &args)+` AND cancel_requested_at=0
			AND NOT EXISTS (SELECT 1 FROM requests q JOIN jobs o ON o.id=q.job_id
				WHERE q.run_id=runs.id AND q.job_id<>$1 AND o.cancelled_at=0)
			RETURNING id`, args...)
		if err != nil {
			return err
		}
		if res.Stopping = len(stopping); res.Stopping == 0 {
			return nil
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return muster.CancelResult{}, err
	}
	if res.Stopping > 0 {
		s.Signal()
	}
	return res, nil
}

// CancelRequested implements muster.WorkQueue. It reads the partial index
// runs_cancel_requested (whose predicate it repeats, so that SQLite uses
// it), which holds only the running runs whose cancel was requested.
func (s *Store) CancelRequested(ctx context.Context, server string) ([]int64, error) {
	if server == "" {
		return nil, fmt.Errorf("%w: cancel requests are looked up by server", muster.ErrInvalid)
	}
	return QueryIDs(ctx, s.R, `SELECT id FROM runs WHERE state='running' AND cancel_requested_at > 0
		AND lease_owner=$1 ORDER BY id`, server)
}
