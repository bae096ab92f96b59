package sqlstore

// lease.go: the writers of leases: renewal, release and rescue. On
// PostgreSQL each statement row-locks the running runs it changes in id
// order (see queue.go), so they cannot deadlock one another.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/muster-run/muster"
)

// Heartbeat implements muster.WorkQueue.
func (s *Store) Heartbeat(ctx context.Context, p muster.HeartbeatParams) ([]int64, error) {
	if p.Server == "" || p.LeaseTTL <= 0 {
		return nil, fmt.Errorf("%w: heartbeat needs a server and a lease TTL", muster.ErrInvalid)
	}
	var ids []int64
	err := s.write(ctx, func(tx *Tx) (err error) {
		ids, err = QueryIDs(ctx, tx, `UPDATE runs SET lease_expires_at=$1 WHERE id IN (SELECT r.id FROM runs r
			WHERE r.state='running' AND r.lease_owner=$2 ORDER BY +r.id`+s.D.ForUpdate+`) RETURNING id`,
			us(s.Opt.Now().Add(p.LeaseTTL)), p.Server)
		return err
	})
	slices.Sort(ids)
	return ids, err
}

// ReleaseRuns implements muster.WorkQueue. A released run goes back to pending
// with its bump, priority and RunAt unchanged, so it keeps its place in
// the queue. Its Attempt is decremented: the released claim is undone, so
// the next claim gets the same attempt number and the run's retry budget
// is untouched. (A run whose cancel was requested ends cancelled instead,
// its attempt counted.) A completion of a released attempt is refused with
// ErrLeaseLost while the run waits and while another server holds it; a
// server that claims the run again under the same name gets the same
// attempt number, so a server must not report runs it has released.
func (s *Store) ReleaseRuns(ctx context.Context, server string, ids []int64) ([]int64, error) {
	if server == "" {
		return nil, fmt.Errorf("%w: release needs a server", muster.ErrInvalid)
	}
	var out []int64
	requeued := false
	err := s.write(ctx, func(tx *Tx) (err error) {
		args := []any{server}
		cond := `r.state='running' AND r.lease_owner=$1`
		if len(ids) > 0 {
			cond += ` AND ` + s.ids("r.id", ids, &args)
		}
		// A run whose job was cancelled while it ran ends here, cancelled.
		args = append(args, us(s.Opt.Now()))
		now := placeholder(len(args))
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET lease_owner='', lease_expires_at=0,
			state=CASE WHEN cancel_requested_at > 0 THEN 'cancelled' ELSE 'pending' END,
			attempt=CASE WHEN cancel_requested_at > 0 THEN attempt ELSE attempt-1 END,
			completed_attempt=CASE WHEN cancel_requested_at > 0 THEN attempt ELSE completed_attempt END,
			finished_at=CASE WHEN cancel_requested_at > 0 THEN `+now+` ELSE finished_at END,
			error=CASE WHEN cancel_requested_at > 0 THEN 'muster/cancelled: the job was cancelled while the run was running (its server released it unreported)'
				ELSE error END
			WHERE id IN (SELECT r.id FROM runs r WHERE `+cond+` ORDER BY +r.id`+s.D.ForUpdate+`) RETURNING id, state, has_output, has_dependents`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, requeued = nil, false
		var output, ended []int64
		for rows.Next() {
			var id, hasOutput, hasDeps int64
			var state muster.RunState
			if err := rows.Scan(&id, &state, &hasOutput, &hasDeps); err != nil {
				return err
			}
			out = append(out, id)
			requeued = requeued || state == muster.RunPending
			if hasOutput != 0 {
				output = append(output, id)
			}
			if hasDeps != 0 && state == muster.RunCancelled {
				ended = append(ended, id)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if err := s.dropOutput(ctx, tx, output); err != nil {
			return err
		}
		// A run cancelled here blocks the runs that wait for it.
		if _, err := s.settle(ctx, tx, ended, s.Opt.Now()); err != nil || !requeued {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	if requeued {
		s.Signal()
	}
	slices.Sort(out)
	return out, nil
}

// RescueExpired implements muster.Rescuer.
func (s *Store) RescueExpired(ctx context.Context) ([]int64, error) {
	now := s.Opt.Now()
	var out []int64
	requeued := false
	err := s.write(ctx, func(tx *Tx) error {
		out, requeued = nil, false
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+runFields+`, r.cancel_requested_at, r.has_output, r.has_dependents FROM runs r JOIN jobs j ON j.id = r.job_id
			WHERE r.state='running' AND r.lease_expires_at < $1 ORDER BY +r.id`+s.D.ForUpdate, us(now))
		if err != nil {
			return err
		}
		var expired []muster.Run
		stopping, hasOutput, hasDeps := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
		for rows.Next() {
			var cancelReq, output, deps int64
			r, err := scanRun(rows, &cancelReq, &output, &deps)
			if err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, r)
			stopping[r.ID], hasOutput[r.ID], hasDeps[r.ID] = cancelReq > 0, output != 0, deps != 0
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var failed []muster.Run
		var output, ended []int64
		for _, r := range expired {
			msg := fmt.Sprintf("lease of %s expired at %s", r.LeaseOwner, r.LeaseExpires.Format(time.RFC3339Nano))
			state, fin := muster.RunPending, int64(0)
			switch {
			case stopping[r.ID]: // its job was cancelled: it must not run again
				state, fin = muster.RunCancelled, us(now)
				msg = fmt.Sprintf("%s: job %d was cancelled while running on %s; %s", muster.KindCancelled, r.JobID, r.Node, msg)
			case r.OnLeaseExpiry == muster.LeaseFail:
				state, fin = muster.RunFailed, us(now)
			}
			res, err := tx.ExecContext(ctx, `UPDATE runs SET state=$2, finished_at=$3, error=$4, lease_owner='',
				lease_expires_at=0, completed_attempt=CASE WHEN $2='pending' THEN completed_attempt ELSE attempt END
				WHERE id=$1 AND state='running' AND lease_expires_at < $5`, r.ID, state, fin, msg, us(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue
			}
			switch state {
			case muster.RunFailed:
				failed = append(failed, r)
			case muster.RunPending:
				requeued = true
			}
			out = append(out, r.ID)
			if hasOutput[r.ID] {
				output = append(output, r.ID)
			}
			if hasDeps[r.ID] && state != muster.RunPending {
				ended = append(ended, r.ID)
			}
		}
		if err := s.dropOutput(ctx, tx, output); err != nil {
			return err
		}
		// A run failed or cancelled here blocks the runs that wait for it.
		if _, err := s.settle(ctx, tx, ended, now); err != nil {
			return err
		}
		var jobIDs []int64
		for _, r := range failed {
			if !slices.Contains(jobIDs, r.JobID) {
				jobIDs = append(jobIDs, r.JobID)
			}
		}
		jobs, err := s.repeatingJobs(ctx, tx, jobIDs)
		if err != nil {
			return err
		}
		more, err := s.repeat(ctx, tx, failed, jobs, now)
		if err != nil {
			return err
		}
		if requeued = requeued || more; requeued {
			return s.notify(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if requeued {
		s.Signal()
	}
	return out, nil
}
