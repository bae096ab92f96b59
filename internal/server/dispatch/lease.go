package dispatch

// lease.go keeps leases alive (heartbeat), stops runs whose lease is gone,
// and rescues the runs of servers that died.

import (
	"context"
	"slices"
	"time"

	"github.com/muster-run/muster"
)

// heartbeat renews this server's leases every HeartbeatInterval, and
// retries failed renewals with backoff until the database comes back.
// After each renewal it stops the runs whose job was cancelled.
func (d *Dispatcher) heartbeat(ctx context.Context) {
	interval := d.cfg.HeartbeatInterval
	bo := backoff{min: min(50*time.Millisecond, interval), max: interval}
	wait := interval
	for {
		if !sleep(ctx, wait, nil) {
			return
		}
		if err := d.beat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = bo.next()
			d.log.Warn("heartbeat failed; will retry", "err", err, "retry_in", wait)
			continue
		}
		bo.reset()
		wait = interval
		if err := d.stopCancelled(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("looking for cancelled runs failed; will look again", "err", err)
		}
	}
}

// watchdog cancels every executing run whose lease, as far as this
// dispatcher knows, has run out: the database has been unreachable (or
// too slow) for a whole TTL, so a rescuer elsewhere may already have
// handed the run to another server. It works apart from the heartbeat,
// which may be stuck in a call to a hung database.
func (d *Dispatcher) watchdog(ctx context.Context) {
	poll := max(d.cfg.HeartbeatInterval/4, 5*time.Millisecond)
	for {
		wait := poll
		if e, ok := d.expireLeases(time.Now()); ok {
			wait = min(wait, time.Until(e))
		}
		if !sleep(ctx, wait, nil) {
			return
		}
	}
}

// beat renews the leases once and reconciles the answer with the runs
// this dispatcher holds.
func (d *Dispatcher) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HeartbeatInterval)
	defer cancel()
	// Hold claimMu so no claimed-but-unregistered run can look orphaned.
	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	start := time.Now()
	ids, err := d.queue.Heartbeat(ctx, muster.HeartbeatParams{Server: d.cfg.Server, LeaseTTL: d.cfg.LeaseTTL})
	if err != nil {
		return err
	}
	held := make(map[int64]bool, len(ids))
	for _, id := range ids {
		held[id] = true
	}
	var rescued []muster.Run
	var orphans []int64
	d.mu.Lock()
	for id, t := range d.tasks {
		switch {
		case held[id]:
			t.leaseUntil = start.Add(d.cfg.LeaseTTL)
		case !t.finished && !t.lost:
			// Another server rescued it: stop it, and do not report it.
			t.lost = true
			t.cancel(errRescued)
			rescued = append(rescued, t.run)
		}
		// A finished run missing from the answer was completed just now,
		// or rescued; its completion will tell (ErrLeaseLost).
	}
	for _, id := range ids {
		if d.tasks[id] == nil {
			orphans = append(orphans, id)
		}
	}
	d.mu.Unlock()
	for _, r := range rescued {
		d.log.Warn("run was rescued by another server; stopping it here", "run", r.ID, "node", r.Node, "attempt", r.Attempt)
	}
	if len(orphans) == 0 {
		return nil
	}
	// Runs this server holds but no longer executes (stopped when the
	// database was unreachable, or a completion that failed): every
	// heartbeat would renew them forever, so give them back.
	slices.Sort(orphans)
	released, err := d.queue.ReleaseRuns(ctx, d.cfg.Server, orphans)
	if err != nil {
		d.log.Warn("releasing orphaned leases failed; will retry", "runs", orphans, "err", err)
		return nil // the renewal itself worked
	}
	if len(released) > 0 {
		d.log.Info("released leases of runs no longer executing here", "runs", released)
		signal(d.kick)
	}
	return nil
}

// expireLeases cancels the executing runs whose lease, as far as this
// dispatcher knows, ran out before now, and returns the earliest lease end
// among the rest.
func (d *Dispatcher) expireLeases(now time.Time) (earliest time.Time, ok bool) {
	var expired []muster.Run
	d.mu.Lock()
	for _, t := range d.tasks {
		if t.finished || t.lost {
			continue
		}
		if !t.leaseUntil.After(now) {
			t.lost = true
			t.cancel(errLeaseExpired)
			expired = append(expired, t.run)
			continue
		}
		if !ok || t.leaseUntil.Before(earliest) {
			earliest, ok = t.leaseUntil, true
		}
	}
	d.mu.Unlock()
	for _, r := range expired {
		d.log.Error("lease ran out without a heartbeat (database unreachable?); stopping the run, another server may take it over",
			"run", r.ID, "node", r.Node, "attempt", r.Attempt)
	}
	return earliest, ok
}

// rescuer requeues (or fails, per the job's policy) runs whose lease
// expired, every RescueInterval, with Config.Rescuer. Every server runs
// one; the store makes concurrent rescues safe.
func (d *Dispatcher) rescuer(ctx context.Context) {
	tick := time.NewTicker(d.cfg.RescueInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.RescueInterval)
		ids, err := d.cfg.Rescuer.RescueExpired(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("rescuing expired leases failed", "err", err)
		case len(ids) > 0:
			d.log.Warn("rescued runs whose lease expired", "runs", ids)
			signal(d.kick)
		}
	}
}
