package sqlstore

// change.go: change-driven continuous jobs. A completion that reports a
// fingerprint compares it with the node's last one in the same
// transaction; a change is stored, audited, enqueues the job's on-change
// action for the node, and moves the waiting runs of the jobs that depend
// on the result to the front. FactsChanged moves one node's waiting runs
// of the jobs whose facts changed to the front.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/muster-run/muster"
)

// printed is a fingerprint a completion reported.
type printed struct {
	i     int // the completion's index
	run   *heldRun
	value string
}

// changed is a fingerprint that differed from the node's last one.
type changed struct {
	i      int
	change *muster.ResultChange
}

type printKey struct {
	Job  int64  `json:"job_id"`
	Node string `json:"node"`
}

// ChangeActor is the audit actor of recorded result changes.
const ChangeActor = "muster"

// fingerprint compares the reported fingerprints with the stored ones and
// acts on those that changed, inside the completion's transaction. The
// first fingerprint of a job on a node is a change: there was no previous
// result to act on.
func (s *Store) fingerprint(ctx context.Context, tx *Tx, ps []printed, now time.Time) ([]changed, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	last := map[printKey]int{} // a batch may hold two runs of one job and node: the last one counts
	var keys []printKey
	for i, p := range ps {
		k := printKey{p.run.JobID, p.run.Node}
		if _, ok := last[k]; !ok {
			keys = append(keys, k)
		}
		last[k] = i
	}
	var args []any
	src, err := s.rows(keys, &args, Col{"job_id", "BIGINT"}, Col{"node", "TEXT"})
	if err != nil {
		return nil, err
	}
	stored := map[printKey]string{}
	rows, err := tx.QueryContext(ctx, `SELECT f.job_id, f.node, f.value FROM fingerprints f
		JOIN `+src+` v ON f.job_id=v.job_id AND f.node=v.node`, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k printKey
		var v string
		if err := rows.Scan(&k.Job, &k.Node, &v); err != nil {
			rows.Close()
			return nil, err
		}
		stored[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []changed
	var deps []int64 // jobs whose result changed
	for _, k := range keys {
		p := ps[last[k]]
		prev, ok := stored[k]
		if ok && prev == p.value {
			continue
		}
		c := &muster.ResultChange{JobID: k.Job, Node: k.Node, RunID: p.run.ID, Previous: prev, Current: p.value}
		if _, err := tx.ExecContext(ctx, `INSERT INTO fingerprints (job_id, node, run_id, value, changed_at, changes)
			VALUES ($1,$2,$3,$4,$5,1) ON CONFLICT (job_id, node) DO UPDATE SET run_id=excluded.run_id,
			value=excluded.value, changed_at=excluded.changed_at, changes=fingerprints.changes+1`,
			k.Job, k.Node, p.run.ID, p.value, us(now)); err != nil {
			return nil, err
		}
		if j := &p.run.job; j.onChangeKind != "" {
			if err := s.onChange(ctx, tx, j, c, now); err != nil {
				return nil, err
			}
		}
		detail, _ := json.Marshal(map[string]any{"run": c.RunID, "node": c.Node, "previous": c.Previous,
			"current": c.Current, "on_change_job": c.OnChangeJob})
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, role, action, object, remote, detail)
			VALUES ($1,$2,'','job.result-changed',$3,'',$4)`, us(now), ChangeActor,
			"job/"+strconv.FormatInt(k.Job, 10)+"/node/"+cleanText(k.Node), string(detail)); err != nil {
			return nil, err
		}
		deps = append(deps, k.Job)
		out = append(out, changed{i: p.i, change: c})
	}
	if len(deps) == 0 {
		return out, nil
	}
	// The runs of the jobs that depend on a changed result go to the front.
	top, err := topBump(ctx, tx)
	if err != nil {
		return nil, err
	}
	args = []any{top + 1, us(now)}
	cond := s.ids("depends_on_result", deps, &args)
	bumped, err := QueryIDs(ctx, tx, s.D.Rewrite(`UPDATE runs SET bump=$1, state='pending', run_at=LEAST(run_at,$2)
		WHERE id IN (SELECT r.id FROM runs r WHERE r.state IN `+waiting+` AND r.job_id IN
		(SELECT id FROM jobs WHERE `+cond+` AND cancelled_at=0) ORDER BY +r.id`+s.D.ForUpdate+`) RETURNING id`), args...)
	if err != nil {
		return nil, err
	}
	for _, c := range out {
		c.change.Bumped = len(bumped)
	}
	return out, nil
}

// onChange enqueues j's on-change action for the node whose result
// changed: a one-shot job at the front of the queue, coalesced into the
// node's waiting run of the same action if it has one.
func (s *Store) onChange(ctx context.Context, tx *Tx, j *repeating, c *muster.ResultChange, now time.Time) error {
	act := muster.Job{Kind: muster.JobKind(j.onChangeKind), Spec: json.RawMessage(j.onChangeSpec),
		Targets: []string{c.Node}, Priority: j.Priority, CreatedBy: muster.OnChangeCreator(j.ID), RunAt: now}
	if err := act.Validate(); err != nil {
		return fmt.Errorf("job %d's on-change action: %w", j.ID, err)
	}
	act.CreatedAt = now
	res, err := s.insertJob(ctx, tx, &act, now)
	if err != nil {
		return err
	}
	c.OnChangeJob, c.OnChangeKind = act.ID, act.Kind
	top, err := topBump(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET bump=$1 WHERE id=$2 AND state='pending'`, top+1, res.Runs[c.Node])
	return err
}

// topBump is the highest bump in the queue: a bump goes above it.
func topBump(ctx context.Context, tx *Tx) (int64, error) {
	var top int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(bump),0) FROM runs`).Scan(&top)
	return top, err
}

// FactsChanged implements muster.Changes.
func (s *Store) FactsChanged(ctx context.Context, node string, facts []string) ([]int64, error) {
	if node == "" || len(facts) == 0 {
		return nil, nil
	}
	now := us(s.Opt.Now())
	var jobs []int64
	err := s.write(ctx, func(tx *Tx) error {
		jobs = nil
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, facts_used FROM jobs j WHERE facts_used <> '' AND cancelled_at=0
			AND EXISTS (SELECT 1 FROM runs r WHERE r.job_id=j.id AND r.node=$1 AND r.state IN `+waiting+`)`, node)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var used string
			var list []string
			if err := rows.Scan(&id, &used); err != nil {
				rows.Close()
				return err
			}
			if json.Unmarshal([]byte(used), &list) == nil && muster.FactsOverlap(list, facts) {
				jobs = append(jobs, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(jobs) == 0 {
			return err
		}
		top, err := topBump(ctx, tx)
		if err != nil {
			return err
		}
		args := []any{top + 1, now, node}
		cond := s.ids("job_id", jobs, &args)
		if _, err := tx.ExecContext(ctx, s.D.Rewrite(`UPDATE runs SET bump=$1, state='pending', run_at=LEAST(run_at,$2)
			WHERE node=$3 AND state IN `+waiting+` AND `+cond), args...); err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	if len(jobs) > 0 {
		s.Signal()
	}
	return jobs, nil
}

// ListFingerprints implements muster.Changes.
func (s *Store) ListFingerprints(ctx context.Context, job int64) ([]muster.Fingerprint, error) {
	return queryAll(ctx, s.R, func(sc scanner) (f muster.Fingerprint, err error) {
		var at int64
		err = sc.Scan(&f.JobID, &f.Node, &f.RunID, &f.Value, &at, &f.Changes)
		f.ChangedAt = fromUS(at)
		return f, err
	}, `SELECT job_id, node, run_id, value, changed_at, changes FROM fingerprints WHERE job_id=$1 ORDER BY node`, job)
}
