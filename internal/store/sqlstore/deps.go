package sqlstore

// deps.go: job dependencies (muster.Job.After) and retrying failed runs.
//
// A run that waits for other jobs' runs is stored in state 'waiting', or
// 'blocked' once one of them ended failed or cancelled, never 'pending'.
// Both claims read pending runs only (runs_ready_order, runs_pull_waiting),
// so dependencies cost ClaimRuns and ClaimNodeRun nothing: no NOT EXISTS
// per candidate, no extra index to walk, the same plans as before. The
// price is paid once per dependency instead, by the transaction that ends
// a run something depends on: it settles the dependents there and then,
// moving them to pending (or scheduled, before their RunAt) when the last
// run they wait for succeeded, or to blocked, with the reason in their
// error, when one failed. That transaction knows to look because the run
// has has_dependents set: SubmitJob sets it on every run serving a job
// named in After. A completion of a run nothing depends on pays nothing
// (the flag comes with the row CompleteRuns reads anyway).
//
// Several servers on PostgreSQL (READ COMMITTED). Two completions of two
// runs one dependent waits for may commit at the same time, each seeing
// the other's run still running: both would leave the dependent waiting
// forever. So settle row-locks the dependents (FOR UPDATE, in id order)
// before it reads their dependencies' states, in a later statement: the
// second transaction waits for the first and then sees its commit. A
// submission naming a job whose runs are running races their completions
// the same way: it locks those runs (setting has_dependents) before it
// reads their states, so a completion either committed first (and the
// submission sees the run ended) or waits for the submission (and then
// reads the flag, and finds the new waiting runs).
//
// Lock order. CompleteRuns and ReleaseRuns, which do not take the queue
// lock, row-lock running runs first and waiting or blocked runs after,
// each set in id order. Every writer here does the same, so they cannot
// deadlock one another.
//
// Dependencies always name older jobs that exist (and a CHECK in job_deps
// says so), so they cannot form a cycle: no job can be edited to point at
// a newer one.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// held lists the states of runs that wait for their dependencies.
const held = `('waiting','blocked')`

// openRun is a run serving a dependency that has not succeeded.
type openRun struct {
	job   int64
	id    int64
	node  string
	state muster.RunState
	err   string
}

// verdict decides the state of a run on node whose job runs after deps,
// from the dependencies' runs that have not succeeded (by job): blocked
// (with the reason) if one of the runs it waits for failed or was
// cancelled, waiting if one has not ended, and "" when it may run.
func verdict(node string, deps []muster.Dependency, open map[int64][]openRun) (muster.RunState, string) {
	var state muster.RunState
	reason := ""
	for _, d := range deps {
		for _, r := range open[d.JobID] {
			if d.Each && r.node != node {
				continue
			}
			if r.state == muster.RunFailed || r.state == muster.RunCancelled {
				return muster.RunBlocked, blockedReason(r)
			}
			state = muster.RunWaiting
		}
	}
	return state, reason
}

// blockedReason says which run blocks a dependent, and why.
func blockedReason(r openRun) string {
	if r.state == muster.RunCancelled {
		return fmt.Sprintf("blocked: job %d's run %d on %s was cancelled", r.job, r.id, r.node)
	}
	why := strings.TrimSpace(r.err)
	if i := strings.IndexByte(why, '\n'); i >= 0 {
		why = why[:i]
	}
	if len(why) > 300 {
		why = why[:300] + "..."
	}
	if why == "" {
		why = "it failed"
	}
	return fmt.Sprintf("blocked: job %d's run %d on %s failed (%s); retry it with: muster job retry %d", r.job, r.id, r.node, why, r.job)
}

// openRuns reads the runs serving jobs that have not succeeded, by job:
// on nodes only, when it is not nil.
func (s *Store) openRuns(ctx context.Context, tx *Tx, jobs []int64, nodes []string) (map[int64][]openRun, error) {
	open := map[int64][]openRun{}
	if len(jobs) == 0 {
		return open, nil
	}
	var args []any
	q := `SELECT q.job_id, r.id, r.node, r.state, r.error FROM requests q JOIN runs r ON r.id = q.run_id
		WHERE ` + s.ids("q.job_id", jobs, &args) + ` AND r.state <> 'succeeded'`
	if nodes != nil {
		type node struct {
			Node string `json:"node"`
		}
		ns := make([]node, len(nodes))
		for i, n := range nodes {
			ns[i] = node{n}
		}
		src, err := s.rows(ns, &args, Col{"node", "TEXT"})
		if err != nil {
			return nil, err
		}
		q += ` AND r.node IN (SELECT node FROM ` + src + ` v)`
	}
	rs, err := queryAll(ctx, tx, func(sc scanner) (r openRun, err error) {
		err = sc.Scan(&r.job, &r.id, &r.node, &r.state, &r.err)
		return r, err
	}, q+` ORDER BY r.id`, args...)
	for _, r := range rs {
		open[r.job] = append(open[r.job], r)
	}
	return open, err
}

// checkAfter checks, under the queue lock, the jobs j (just inserted)
// runs after: each exists, is not j, is not cancelled and does not repeat.
func (s *Store) checkAfter(ctx context.Context, tx *Tx, j muster.Job) error {
	ids := make([]int64, len(j.After))
	for i, d := range j.After {
		if d.JobID == j.ID {
			return fmt.Errorf("%w: after: job %d is this job: a job cannot run after itself (that is a cycle)", muster.ErrInvalid, d.JobID)
		}
		ids[i] = d.JobID
	}
	var args []any
	type dep struct {
		id, every, cancelled int64
		continuous           int
	}
	found, err := queryAll(ctx, tx, func(sc scanner) (d dep, err error) {
		err = sc.Scan(&d.id, &d.every, &d.continuous, &d.cancelled)
		return d, err
	}, `SELECT id, every_us, continuous, cancelled_at FROM jobs WHERE `+s.ids("id", ids, &args), args...)
	if err != nil {
		return err
	}
	byID := map[int64]dep{}
	for _, d := range found {
		byID[d.id] = d
	}
	for _, id := range ids {
		d, ok := byID[id]
		switch {
		case !ok || id > j.ID:
			return fmt.Errorf("%w: after: there is no job %d", muster.ErrInvalid, id)
		case d.cancelled != 0:
			return fmt.Errorf("%w: after: job %d was cancelled: its runs will never succeed, so a job after it could never run",
				muster.ErrInvalid, id)
		case d.every != 0 || d.continuous != 0:
			return fmt.Errorf("%w: after: job %d repeats (recurring or continuous): it never finishes, so a job after it could never start",
				muster.ErrInvalid, id)
		}
	}
	return nil
}

// submitDeps stores j's dependencies, marks the runs serving them as
// having dependents, and decides the state of j's run on each target
// ("" for those that need not wait). It runs in SubmitJob's transaction,
// under the queue lock, after j's row is inserted.
func (s *Store) submitDeps(ctx context.Context, tx *Tx, j muster.Job) (map[string]muster.RunState, map[string]string, error) {
	if err := s.checkAfter(ctx, tx, j); err != nil {
		return nil, nil, err
	}
	ids := make([]int64, len(j.After))
	for i, d := range j.After {
		ids[i] = d.JobID
	}
	// The runs serving the dependencies: the running ones are locked
	// first, in id order (see the lock order above), then every one is
	// marked, so that the transaction that ends it settles j's runs.
	var args []any
	serving := `r.id IN (SELECT run_id FROM requests WHERE ` + s.ids("job_id", ids, &args) + `)`
	if _, err := QueryIDs(ctx, tx, `SELECT r.id FROM runs r WHERE `+serving+` AND r.lease_owner <> ''
		ORDER BY +r.id`+s.D.ForUpdate, args...); err != nil {
		return nil, nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET has_dependents=1 WHERE id IN (SELECT r.id FROM runs r
		WHERE `+serving+` AND r.has_dependents=0 ORDER BY +r.id`+s.D.ForUpdate+`)`, args...); err != nil {
		return nil, nil, err
	}
	type depRow struct {
		JobID   int64 `json:"job_id"`
		DepID   int64 `json:"dep_job_id"`
		PerNode int64 `json:"per_node"`
	}
	rows := make([]depRow, len(j.After))
	for i, d := range j.After {
		rows[i] = depRow{j.ID, d.JobID, int64(b2i(d.Each))}
	}
	args = nil
	src, err := s.rows(rows, &args, Col{"job_id", "BIGINT"}, Col{"dep_job_id", "BIGINT"}, Col{"per_node", "BIGINT"})
	if err != nil {
		return nil, nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO job_deps (job_id, dep_job_id, per_node)
		SELECT job_id, dep_job_id, per_node FROM `+src+` v`, args...); err != nil {
		return nil, nil, err
	}
	open, err := s.openRuns(ctx, tx, ids, nil)
	if err != nil {
		return nil, nil, err
	}
	states, reasons := map[string]muster.RunState{}, map[string]string{}
	for _, node := range j.Targets {
		st, why := verdict(node, j.After, open)
		if st != "" {
			states[node], reasons[node] = st, why
		}
	}
	return states, reasons, nil
}

// dependent is a waiting or blocked run that settle re-decides.
type dependent struct {
	id    int64
	job   int64
	node  string
	state muster.RunState
	runAt int64
	err   string
}

// settled is a dependent's new state, bound through Dialect.Rows.
type settled struct {
	ID    int64  `json:"id"`
	State string `json:"state"`
	Error string `json:"error"`
	RunAt int64  `json:"run_at"`
}

// settle re-decides, inside tx, the waiting and blocked runs that depend
// on the runs ended (which have has_dependents set, and just ended,
// or were requeued by RetryJob), and reports whether one became ready
// now. It locks them first, in id order, so that concurrent settles of
// one dependent take turns and the later one sees the earlier's commit.
func (s *Store) settle(ctx context.Context, tx *Tx, ended []int64, now time.Time) (bool, error) {
	if len(ended) == 0 {
		return false, nil
	}
	var args []any
	cond := s.ids("e.id", ended, &args)
	locked, err := QueryIDs(ctx, tx, `SELECT r.id FROM runs r WHERE r.state IN `+held+` AND r.id IN (
		SELECT x.id FROM runs e JOIN requests q ON q.run_id = e.id JOIN job_deps d ON d.dep_job_id = q.job_id
		JOIN runs x ON x.job_id = d.job_id AND (d.per_node = 0 OR x.node = e.node)
		WHERE `+cond+` AND x.state IN `+held+`) ORDER BY +r.id`+s.D.ForUpdate, args...)
	if err != nil || len(locked) == 0 {
		return false, err
	}
	args = nil
	deps, err := queryAll(ctx, tx, func(sc scanner) (d dependent, err error) {
		err = sc.Scan(&d.id, &d.job, &d.node, &d.state, &d.runAt, &d.err)
		return d, err
	}, `SELECT id, job_id, node, state, run_at, error FROM runs WHERE `+s.ids("id", locked, &args)+` AND state IN `+held, args...)
	if err != nil || len(deps) == 0 {
		return false, err
	}
	var jobs []int64
	var nodes []string
	for _, d := range deps {
		if !slices.Contains(jobs, d.job) {
			jobs = append(jobs, d.job)
		}
		if !slices.Contains(nodes, d.node) {
			nodes = append(nodes, d.node)
		}
	}
	after, err := s.jobDeps(ctx, tx, jobs)
	if err != nil {
		return false, err
	}
	var depJobs []int64
	perNode := true
	for _, ds := range after {
		for _, d := range ds {
			if !slices.Contains(depJobs, d.JobID) {
				depJobs = append(depJobs, d.JobID)
			}
			perNode = perNode && d.Each
		}
	}
	if !perNode {
		nodes = nil // a job-wide dependency waits for runs on every node
	}
	open, err := s.openRuns(ctx, tx, depJobs, nodes)
	if err != nil {
		return false, err
	}
	var changes []settled
	ready := false
	for _, d := range deps {
		st, why := verdict(d.node, after[d.job], open)
		runAt := d.runAt
		if st == "" {
			st = muster.RunPending
			if fromUS(d.runAt).After(now) {
				st = muster.RunScheduled
			} else {
				runAt, ready = us(now), true
			}
		}
		if st != d.state || why != d.err {
			changes = append(changes, settled{ID: d.id, State: string(st), Error: why, RunAt: runAt})
		}
	}
	if len(changes) == 0 {
		return false, nil
	}
	args = nil
	src, err := s.rows(changes, &args, Col{"id", "BIGINT"}, Col{"state", "TEXT"}, Col{"error", "TEXT"}, Col{"run_at", "BIGINT"})
	if err != nil {
		return false, err
	}
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.ID
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET state=v.state, error=v.error, run_at=v.run_at FROM `+src+` v
		WHERE `+s.ids("runs.id", ids, &args)+` AND runs.id=v.id AND runs.state IN `+held, args...)
	return ready, err
}

// jobDeps reads the dependencies of jobs, by job, in dependency order.
func (s *Store) jobDeps(ctx context.Context, q querier, jobs []int64) (map[int64][]muster.Dependency, error) {
	out := map[int64][]muster.Dependency{}
	if len(jobs) == 0 {
		return out, nil
	}
	var args []any
	type row struct {
		job int64
		dep muster.Dependency
	}
	rs, err := queryAll(ctx, q, func(sc scanner) (r row, err error) {
		var perNode int
		err = sc.Scan(&r.job, &r.dep.JobID, &perNode)
		r.dep.Each = perNode != 0
		return r, err
	}, `SELECT job_id, dep_job_id, per_node FROM job_deps WHERE `+s.ids("job_id", jobs, &args)+` ORDER BY job_id, dep_job_id`, args...)
	for _, r := range rs {
		out[r.job] = append(out[r.job], r.dep)
	}
	return out, err
}

// RetryJob implements muster.Jobs.
func (s *Store) RetryJob(ctx context.Context, id int64, node string) (muster.RetryResult, error) {
	var res muster.RetryResult
	ready := false
	err := s.write(ctx, func(tx *Tx) error {
		res, ready = muster.RetryResult{}, false
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		j, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		switch {
		case !j.CancelledAt.IsZero():
			return fmt.Errorf("%w: job %d was cancelled: submit it again instead", muster.ErrInvalid, id)
		case j.Every > 0 || j.Continuous:
			return fmt.Errorf("%w: job %d repeats: each node's next run is queued already", muster.ErrInvalid, id)
		}
		args := []any{id}
		q := `SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM requests WHERE job_id=$1) AND r.state='failed'`
		if node != "" {
			args = append(args, node)
			q += ` AND r.node=$2`
		}
		failed, err := QueryIDs(ctx, tx, q+` ORDER BY +r.id`+s.D.ForUpdate, args...)
		if err != nil {
			return err
		}
		if len(failed) == 0 {
			msg := fmt.Sprintf("job %d has no failed run to retry", id)
			if node != "" {
				msg = fmt.Sprintf("job %d has no failed run on %s to retry", id, node)
			}
			if n := j.Counts[muster.RunBlocked]; n > 0 && node == "" {
				msg += fmt.Sprintf(" (%d of its runs are blocked: retry the job they wait for)", n)
			}
			return fmt.Errorf("%w: %s", muster.ErrInvalid, msg)
		}
		now := s.Opt.Now()
		args = []any{us(now), j.MaxRetries}
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET state='pending', run_at=$1, finished_at=0, exit_code=0,
			error='', result='', max_retries=attempt+$2 WHERE `+s.ids("id", failed, &args)+` AND state='failed'
			RETURNING id, has_dependents`, args...)
		if err != nil {
			return err
		}
		var deps []int64
		for rows.Next() {
			var rid, hasDeps int64
			if err := rows.Scan(&rid, &hasDeps); err != nil {
				rows.Close()
				return err
			}
			res.Retried = append(res.Retried, rid)
			if hasDeps != 0 {
				deps = append(deps, rid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		slices.Sort(res.Retried)
		before, err := countHeld(ctx, tx, s, deps, muster.RunBlocked)
		if err != nil {
			return err
		}
		if _, err := s.settle(ctx, tx, deps, now); err != nil {
			return err
		}
		after, err := countHeld(ctx, tx, s, deps, muster.RunBlocked)
		if err != nil {
			return err
		}
		res.Unblocked, ready = before-after, true
		return s.notify(ctx, tx)
	})
	if err != nil {
		return muster.RetryResult{}, err
	}
	if ready {
		s.Signal()
	}
	return res, nil
}

// countHeld counts the runs in state st that depend on the runs ids.
func countHeld(ctx context.Context, tx *Tx, s *Store, ids []int64, st muster.RunState) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{string(st)}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(DISTINCT x.id) FROM runs e JOIN requests q ON q.run_id = e.id
		JOIN job_deps d ON d.dep_job_id = q.job_id
		JOIN runs x ON x.job_id = d.job_id AND (d.per_node = 0 OR x.node = e.node)
		WHERE `+s.ids("e.id", ids, &args)+` AND x.state = $1`, args...).Scan(&n)
	return n, err
}
