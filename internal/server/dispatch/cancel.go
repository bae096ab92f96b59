package dispatch

// cancel.go stops the runs whose job was cancelled while they ran. The
// database is the source of truth: Store.CancelJob, on any server, flags
// the runs, and the holder finds them with Store.CancelRequested after
// every heartbeat and whenever the store's Wake fires (rate-limited).

import (
	"context"
	"time"

	"github.com/muster-run/muster"
)

// cancelCheckGap is the least time between two wake-driven looks for
// cancel requests: Wake fires on every submission, so under load it would
// otherwise query the database on every claim.
const cancelCheckGap = 200 * time.Millisecond

// canceller looks for cancel requests each time d.cancelSig is signalled
// (the claim loop does it on every Wake), at most once per cancelCheckGap.
// Signals that arrive meanwhile coalesce into the next look.
func (d *Dispatcher) canceller(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.cancelSig:
		}
		if wait := cancelCheckGap - time.Since(last); wait > 0 && !sleep(ctx, wait, nil) {
			return
		}
		select { // this look covers the signals that came while it waited
		case <-d.cancelSig:
		default:
		}
		last = time.Now()
		if err := d.stopCancelled(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("looking for cancelled runs failed; will look again at the next heartbeat or wake-up", "err", err)
		}
	}
}

// stopCancelled asks the store which runs this server holds were
// cancelled, and cancels their executions with errCancelRequested: the
// executor stops the remote work, and the attempt is reported as a
// muster/cancelled failure, which the store records as cancelled. It does
// not ask while nothing executes here.
func (d *Dispatcher) stopCancelled(ctx context.Context) error {
	if d.cap.InFlight() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HeartbeatInterval)
	defer cancel()
	ids, err := d.queue.CancelRequested(ctx, d.cfg.Server)
	if err != nil || len(ids) == 0 {
		return err
	}
	var stopped []muster.Run
	d.mu.Lock()
	for _, id := range ids {
		t := d.tasks[id]
		if t == nil || t.finished || t.lost || t.stopping {
			continue // not executing here (yet, or any more), or already told
		}
		t.stopping = true
		t.cancel(errCancelRequested)
		stopped = append(stopped, t.run)
	}
	d.mu.Unlock()
	for _, r := range stopped {
		d.log.Info("job was cancelled: stopping its run", "job", r.JobID, "run", r.ID, "node", r.Node, "attempt", r.Attempt)
	}
	return nil
}
