package sqlstore

// complete.go: recording the end of run attempts, a batch per transaction.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/muster-run/muster"
)

// checkComplete validates one completion.
func checkComplete(p muster.CompleteParams) error {
	if p.Outcome != muster.OutcomeSucceeded && p.Outcome != muster.OutcomeFailed || p.Server == "" || p.Attempt <= 0 {
		return fmt.Errorf("%w: completion of run %d needs a server, an attempt and an outcome (got server %q, attempt %d, outcome %q)",
			muster.ErrInvalid, p.RunID, p.Server, p.Attempt, p.Outcome)
	}
	if len(p.Result) > 0 && (!json.Valid(p.Result) || !utf8.Valid(p.Result)) {
		return fmt.Errorf("%w: the result of run %d is not valid UTF-8 JSON", muster.ErrInvalid, p.RunID)
	}
	if p.ExitCode != int(int32(p.ExitCode)) {
		return fmt.Errorf("%w: run %d: exit code %d out of range", muster.ErrInvalid, p.RunID, p.ExitCode)
	}
	return nil
}

// completion is one run's new state, bound through Dialect.Rows.
type completion struct {
	ID       int64  `json:"id"`
	Server   string `json:"server"`
	Attempt  int64  `json:"attempt"`
	State    string `json:"state"`
	ExitCode int64  `json:"exit_code"`
	Error    string `json:"error"`
	Result   string `json:"result"`
	RunAt    int64  `json:"run_at"`
}

var completionCols = []Col{{"id", "BIGINT"}, {"server", "TEXT"}, {"attempt", "BIGINT"}, {"state", "TEXT"},
	{"exit_code", "BIGINT"}, {"error", "TEXT"}, {"result", "TEXT"}, {"run_at", "BIGINT"}}

// heldRun is a run as CompleteRuns sees it.
type heldRun struct {
	muster.Run
	done     int       // completed_attempt: the last attempt whose end was recorded
	stopping bool      // its cancel was requested (CancelJob)
	output   bool      // has_output: some chunk of its output was stored
	deps     bool      // has_dependents: some job runs after a job it serves
	job      repeating // what repeat needs of the run's job
}

// repeating is what repeat needs of a job.
type repeating struct {
	muster.Job
	hash      string
	cancelled int64
	// The job's on-change action: its kind ('' for none) and spec.
	onChangeKind, onChangeSpec string
}

// repeats reports whether the job enqueues a node's next run when one ends.
func (j *repeating) repeats() bool { return j.cancelled == 0 && (j.Every > 0 || j.Continuous) }

// jobRepeatFields are repeating's columns of "jobs j", in scan's order.
const jobRepeatFields = `j.id, j.kind, j.spec_hash, j.priority, j.every_us, j.continuous, j.max_retries, j.timeout_us,
	j.on_lease_expiry, j.cancelled_at, j.fingerprint, j.on_change_kind, j.on_change_spec`

// scanDest returns the destinations for jobRepeatFields; call fill after
// scanning.
func (j *repeating) scanDest() (dest []any, fill func()) {
	var every, timeout int64
	var continuous int
	return []any{&j.ID, &j.Kind, &j.hash, &j.Priority, &every, &continuous, &j.MaxRetries, &timeout,
			&j.OnLeaseExpiry, &j.cancelled, &j.Fingerprint, &j.onChangeKind, &j.onChangeSpec}, func() {
			j.Every, j.Timeout = time.Duration(every)*time.Microsecond, time.Duration(timeout)*time.Microsecond
			j.Continuous = continuous != 0
		}
}

// CompleteRuns implements muster.WorkQueue. The whole batch is one transaction
// of a few statements: read (and on PostgreSQL row-lock, in id order) the
// batch's running runs, decide every completion in order, update all the
// finished attempts in one statement, and enqueue the next runs of
// continuous and recurring jobs in two more. A later completion of a run
// the same batch already completed is an idempotent repeat.
func (s *Store) CompleteRuns(ctx context.Context, ps []muster.CompleteParams) ([]muster.CompleteResult, error) {
	out := make([]muster.CompleteResult, len(ps))
	valid := make([]bool, len(ps))
	var ids []int64
	seen := make(map[int64]bool, len(ps))
	for i, p := range ps {
		if out[i].Err = checkComplete(p); out[i].Err == nil {
			valid[i] = true
			if !seen[p.RunID] {
				seen[p.RunID] = true
				ids = append(ids, p.RunID)
			}
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var now time.Time
	wake := false
	err := s.write(ctx, func(tx *Tx) error {
		wake = false
		held, err := s.heldRuns(ctx, tx, ids)
		if err != nil {
			return err
		}
		// Read the clock once the runs are locked, so a run's finished_at is
		// never later than the next claim's started_at on its node.
		now = fromUS(us(s.Opt.Now()))
		var upd []completion
		var ended []muster.Run
		var output []int64   // runs whose chunks go
		var settle []int64   // ended runs that others wait for
		var prints []printed // fingerprints to compare
		jobs := map[int64]*repeating{}
		for i, p := range ps {
			if !valid[i] {
				continue
			}
			r := held[p.RunID]
			switch {
			case r == nil:
				out[i].Err = fmt.Errorf("run %d: %w", p.RunID, muster.ErrNotFound)
				continue
			case r.done == p.Attempt: // already recorded: completion is idempotent
				out[i] = muster.CompleteResult{Run: r.Run}
				continue
			case r.State != muster.RunRunning || r.LeaseOwner != p.Server || r.Attempt != p.Attempt:
				out[i].Err = fmt.Errorf("run %d attempt %d on %s: %w", p.RunID, p.Attempt, p.Server, muster.ErrLeaseLost)
				continue
			}
			r.State = muster.RunSucceeded
			switch {
			case p.Outcome != muster.OutcomeFailed:
			case r.stopping: // stopped because its job was cancelled: no retry, no repeat
				r.State = muster.RunCancelled
			case r.Attempt <= r.MaxRetries:
				r.State, r.RunAt = muster.RunRetrying, fromUS(us(now.Add(s.Opt.RetryDelay(r.Attempt))))
			default:
				r.State = muster.RunFailed
			}
			r.FinishedAt, r.LeaseOwner, r.LeaseExpires, r.done = now, "", time.Time{}, r.Attempt
			r.ExitCode, r.Error, r.Result = p.ExitCode, cleanText(p.Error), nil
			if len(p.Result) > 0 {
				r.Result = slices.Clone(p.Result)
			}
			upd = append(upd, completion{ID: r.ID, Server: p.Server, Attempt: int64(p.Attempt), State: string(r.State),
				ExitCode: int64(r.ExitCode), Error: r.Error, Result: string(r.Result), RunAt: us(r.RunAt)})
			if r.output {
				output = append(output, r.ID)
			}
			if r.State == muster.RunSucceeded && r.job.Fingerprint != "" && p.Fingerprint != "" && r.job.cancelled == 0 {
				prints = append(prints, printed{i: i, run: r, value: p.Fingerprint})
			}
			if r.deps && r.State.Final() {
				settle = append(settle, r.ID)
			}
			if r.State.Final() && r.State != muster.RunCancelled && r.job.repeats() {
				ended = append(ended, r.Run)
				jobs[r.JobID] = &r.job
			}
			out[i] = muster.CompleteResult{Run: r.Run}
		}
		if len(upd) == 0 {
			return nil
		}
		args := []any{us(now)}
		src, err := s.rows(upd, &args, completionCols...)
		if err != nil {
			return err
		}
		updIDs := make([]int64, len(upd))
		for i, c := range upd {
			updIDs[i] = c.ID
		}
		// A run is running exactly while it has a lease owner, so the owner
		// and attempt guard is the running guard too. (A guard on state
		// would let a planner with stale statistics read the partial
		// indexes on running runs, full of dead entries in a busy queue,
		// instead of the primary key.)
		done, err := QueryIDs(ctx, tx, `UPDATE runs SET state=v.state, finished_at=$1, lease_owner='', lease_expires_at=0,
			completed_attempt=runs.attempt, exit_code=v.exit_code, error=v.error, result=v.result, run_at=v.run_at
			FROM `+src+` v WHERE `+s.ids("runs.id", updIDs, &args)+` AND runs.id=v.id
			AND runs.lease_owner=v.server AND runs.attempt=v.attempt
			RETURNING runs.id`, args...)
		if err != nil {
			return err
		}
		if len(done) != len(upd) {
			return fmt.Errorf("complete: %d of %d held runs changed while their completion was recorded", len(upd)-len(done), len(upd))
		}
		if err := s.dropOutput(ctx, tx, output); err != nil {
			return err
		}
		// The runs' dependents are locked after the runs themselves (see
		// deps.go): running runs first, then waiting ones.
		unblocked, err := s.settle(ctx, tx, settle, now)
		if err != nil {
			return err
		}
		if wake, err = s.repeat(ctx, tx, ended, jobs, now); err != nil {
			return err
		}
		changed, err := s.fingerprint(ctx, tx, prints, now)
		if err != nil {
			return err
		}
		for _, c := range changed {
			out[c.i].Change = c.change
		}
		if wake = wake || unblocked || len(changed) > 0; !wake {
			return nil
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	if wake {
		s.Signal()
	}
	return out, nil
}

// heldRuns reads the runs ids, by id. The running ones (those with a lease
// owner) are read first, and on PostgreSQL row-locked in id order until
// the transaction ends; the others (repeats, lost leases) are only read.
func (s *Store) heldRuns(ctx context.Context, tx *Tx, ids []int64) (map[int64]*heldRun, error) {
	held := make(map[int64]*heldRun, len(ids))
	read := func(query string, ids []int64) error {
		var args []any
		cond := s.ids("r.id", ids, &args)
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(query, cond), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			h := &heldRun{}
			dest, fill := h.job.scanDest()
			var cancelReq, output, deps int64
			if h.Run, err = scanRun(rows, append(dest, &h.done, &cancelReq, &output, &deps)...); err != nil {
				return err
			}
			fill()
			h.stopping, h.output, h.deps = cancelReq > 0, output != 0, deps != 0
			held[h.ID] = h
		}
		return rows.Err()
	}
	const cols = `SELECT ` + runFields + `, ` + jobRepeatFields + `, r.completed_attempt, r.cancel_requested_at, r.has_output, r.has_dependents FROM runs r JOIN jobs j ON j.id = r.job_id`
	err := read(cols+` WHERE %s AND r.lease_owner <> '' ORDER BY +r.id`+s.D.ForUpdate, ids)
	if err != nil {
		return nil, err
	}
	var rest []int64
	for _, id := range ids {
		if held[id] == nil {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return held, nil
	}
	return held, read(cols+` WHERE %s`, rest)
}

// cleanText makes s storable as text on every database: valid UTF-8
// without NUL bytes.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// repeatingJobs reads the jobs among ids that repeat, by id.
func (s *Store) repeatingJobs(ctx context.Context, tx *Tx, ids []int64) (map[int64]*repeating, error) {
	jobs := map[int64]*repeating{}
	if len(ids) == 0 {
		return jobs, nil
	}
	var args []any
	cond := s.ids("j.id", ids, &args)
	rows, err := tx.QueryContext(ctx, `SELECT `+jobRepeatFields+` FROM jobs j WHERE `+cond, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		j := &repeating{}
		dest, fill := j.scanDest()
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		fill()
		if j.repeats() {
			jobs[j.ID] = j
		}
	}
	return jobs, rows.Err()
}

// repeat enqueues the node's next run of each ended run whose job is in
// jobs (continuous or recurring, not cancelled), inside the caller's
// transaction, and reports whether any of them is ready now.
func (s *Store) repeat(ctx context.Context, tx *Tx, ended []muster.Run, jobs map[int64]*repeating, now time.Time) (bool, error) {
	var next []newRun
	ready := false
	for _, r := range ended {
		j := jobs[r.JobID]
		if j == nil || !j.repeats() {
			continue
		}
		at, state := now, muster.RunPending // continuous: the back of the queue
		if j.Every > 0 {
			if at = r.RunAt.Add(j.Every); at.After(now) {
				state = muster.RunScheduled
			} else {
				at = now
			}
		}
		ready = ready || state == muster.RunPending
		next = append(next, runFor(j.Job, r.Node, j.hash, state, at, now))
	}
	if len(next) == 0 {
		return false, nil
	}
	_, err := s.insertRuns(ctx, tx, next)
	return ready, err
}
