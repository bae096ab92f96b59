package sqlstore

// pull.go: the agents' side of the queue. A pull run (muster.JobPull) is
// claimed by its node's agent, never by ClaimRuns, whose ready order
// (runs_ready_order) holds no pull runs; an agent reads its node's few
// waiting pull runs through runs_pull_waiting. Once claimed, a pull run is
// held like any other: CompleteRuns, Heartbeat, ReleaseRuns and
// RescueExpired know runs by their lease owner, not by their kind.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-run/muster"
)

// pullReady is the condition on "runs r" of the node $1's pull runs that
// are ready at $2. Its first terms repeat runs_pull_waiting's predicate:
// SQLite only uses a partial index whose predicate appears in the query
// as written.
const pullReady = `r.kind='pull' AND r.state IN ` + waiting + ` AND r.node=$1 AND r.run_at <= $2`

// ClaimNodeRun implements muster.Nodes. A check-in of a node with nothing
// ready costs one read on the reader pool and no write transaction. A
// claim takes the queue lock, like ClaimRuns: the two claims are then
// serialised, so one never makes a node busy between the other's check
// that it is idle and its update (the unique index on running runs per
// node would fail the later claim's statement).
//
// With a backend, the claim also counts the runs running on it (through
// runs_backend_running) and takes a token from its bucket in pull_backends,
// under the same lock: the backend's limits hold across servers.
func (s *Store) ClaimNodeRun(ctx context.Context, c muster.NodeClaim) (muster.Run, bool, error) {
	certname, owner, leaseTTL, now := c.Certname, c.Owner, c.LeaseTTL, c.Now
	if certname == "" || owner == "" || leaseTTL <= 0 {
		return muster.Run{}, false, fmt.Errorf("%w: a node's claim needs a certname, an owner and a lease TTL (got %q, %q, %v)",
			muster.ErrInvalid, certname, owner, leaseTTL)
	}
	if c.Limit.MaxRunning < 0 || c.Limit.Rate < 0 || c.Limit.Rate > 0 && c.Limit.Burst < 1 {
		return muster.Run{}, false, fmt.Errorf("%w: backend %q: limits must be positive, with a burst of at least 1 for a rate (got %+v)",
			muster.ErrInvalid, c.Backend, c.Limit)
	}
	if now.IsZero() {
		now = s.Opt.Now()
	}
	now = fromUS(us(now))
	var state muster.NodeState
	var ready int
	err := s.R.QueryRowContext(ctx, `SELECT n.state, (SELECT COUNT(*) FROM runs r WHERE `+pullReady+`)
		FROM nodes n WHERE n.certname=$1`, certname, us(now)).Scan(&state, &ready)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return muster.Run{}, false, fmt.Errorf("no node %q: %w", certname, muster.ErrNotFound)
	case err != nil:
		return muster.Run{}, false, err
	case state != muster.NodeSigned:
		return muster.Run{}, false, fmt.Errorf("%w: node %s is %s: only a signed node claims runs", muster.ErrInvalid, certname, state)
	case ready == 0:
		return muster.Run{}, false, nil
	}
	var run muster.Run
	var ok bool
	err = s.write(ctx, func(tx *Tx) error {
		run, ok = muster.Run{}, false
		if err := s.D.LockQueue(ctx, tx); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT r.id FROM runs r WHERE `+pullReady+`
			ORDER BY r.bump DESC, r.priority DESC, r.run_at, r.id LIMIT 1`, certname, us(now)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // claimed or cancelled since the read
		} else if err != nil {
			return err
		}
		var busy int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE node=$1 AND state='running'`, certname).Scan(&busy); err != nil {
			return err
		}
		if busy > 0 {
			return nil
		}
		if c.Backend != "" {
			if err := s.admitOnBackend(ctx, tx, c.Backend, c.Limit, now); err != nil {
				return err
			}
		}
		run, err = scanRun(tx.QueryRowContext(ctx, `UPDATE runs SET state='running', attempt=attempt+1, started_at=$2,
			finished_at=0, lease_owner=$3, lease_expires_at=$4, backend=$5
			WHERE id=$1 AND state IN `+waiting+` RETURNING `+runReturning, id, us(now), owner, us(now.Add(leaseTTL)), c.Backend))
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET last_run_id=$2, last_run_at=$3, last_checkin_at=$3
			WHERE certname=$1 AND state='signed'`, certname, run.ID, us(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: node %s was revoked while it claimed a run", muster.ErrInvalid, certname)
		}
		rs := []muster.Run{run}
		if err := s.fillSpecs(ctx, tx, rs); err != nil {
			return err
		}
		run, ok = rs[0], true
		return nil
	})
	if err != nil {
		return muster.Run{}, false, err
	}
	return run, ok, nil
}

// admitOnBackend checks, inside a claim's transaction (under the queue
// lock), that backend has room for one more run, and takes a token from
// its start-rate bucket; ErrBackendFull otherwise.
func (s *Store) admitOnBackend(ctx context.Context, tx *Tx, backend string, lim muster.BackendLimit, now time.Time) error {
	if lim.MaxRunning > 0 {
		var running int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE backend=$1 AND state='running' AND backend <> ''`,
			backend).Scan(&running); err != nil {
			return err
		}
		if running >= lim.MaxRunning {
			return fmt.Errorf("%w: %s has %d of %d runs running", muster.ErrBackendFull, backend, running, lim.MaxRunning)
		}
	}
	if lim.Rate <= 0 {
		return nil
	}
	tokens, at := lim.Burst, us(now)
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT tokens, refilled_at FROM pull_backends WHERE name=$1`, backend).Scan(&tokens, &last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		tokens = lim.Burst
	case err != nil:
		return err
	case at > last:
		tokens = min(lim.Burst, tokens+float64(at-last)/1e6*lim.Rate)
	default:
		at = last // another server's clock is ahead: refill from there
		tokens = min(lim.Burst, tokens)
	}
	if tokens < 1 {
		return fmt.Errorf("%w: %s started its %g runs per second", muster.ErrBackendFull, backend, lim.Rate)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO pull_backends (name, tokens, refilled_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET tokens=excluded.tokens, refilled_at=excluded.refilled_at`, backend, tokens-1, at)
	return err
}

// BackendLoad implements muster.Nodes.
func (s *Store) BackendLoad(ctx context.Context) (map[string]int, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT backend, COUNT(*) FROM runs WHERE state='running' AND backend <> '' GROUP BY backend`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	load := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		load[name] = n
	}
	return load, rows.Err()
}
