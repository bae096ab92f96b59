package dispatch

// run.go is the dispatcher's life cycle (Run and Shutdown) and the claim
// loop.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/capacity"
)

// Causes of a run's cancellation. Only errTimeout and errCancelRequested
// are reported as the run's outcome; the others mean the run is no longer
// this server's to report.
var (
	errTimeout         = errors.New("run timed out")
	errCancelRequested = errors.New("job cancelled by request")
	errRescued         = errors.New("run was rescued by another server")
	errLeaseExpired    = errors.New("lease expired: the database was unreachable")
	errReleased        = errors.New("shutdown grace period over: run released")
)

// Run dispatches runs until Shutdown is called or ctx is cancelled, and
// returns only when every goroutine it started has exited.
//
// After Shutdown it returns nil (Shutdown reports the outcome of the final
// writes). Cancelling ctx instead is an abrupt stop: executing runs are
// cancelled, pending completions are dropped and nothing more is written to
// the store, exactly as if the process had died; the leases expire and a
// rescuer (on this or another server) requeues the runs. Run then returns
// ctx's error.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.life.Lock()
	if d.started {
		d.life.Unlock()
		return errors.New("dispatch: Run called twice")
	}
	d.started = true
	select {
	case <-d.stopping: // Shutdown came first: nothing to do.
		d.life.Unlock()
		close(d.done)
		return nil
	default:
	}
	d.life.Unlock()
	defer close(d.done)

	hard, stopAll := context.WithCancel(ctx)
	defer stopAll()
	// Background goroutines: leases live until every completion is written;
	// rescue and probing stop as soon as shutdown begins.
	var lease, side, front sync.WaitGroup
	leaseCtx, stopLease := context.WithCancel(hard)
	defer stopLease()
	sideCtx, stopSide := context.WithCancel(hard)
	defer stopSide()
	lease.Go(func() { d.heartbeat(leaseCtx) })
	lease.Go(func() { d.watchdog(leaseCtx) })
	lease.Go(func() { d.canceller(leaseCtx) })
	lease.Go(func() { d.out.flusher(leaseCtx, d.cfg.OutputInterval) })
	if d.cfg.Rescuer != nil {
		side.Go(func() { d.rescuer(sideCtx) })
	}
	if d.cfg.HealthURL != "" {
		side.Go(func() { d.prober(sideCtx) })
	}
	front.Go(func() {
		defer close(d.completerDone)
		d.completer(hard)
	})
	loopDone := make(chan struct{})
	front.Go(func() {
		defer close(loopDone)
		d.loop(hard)
	})
	d.log.Info("dispatcher started", "slots", d.cfg.Slots, "max_running", d.cfg.MaxRunning,
		"lease_ttl", d.cfg.LeaseTTL, "rate", d.cfg.Rate, "health_url", d.cfg.HealthURL, "rescue", d.cfg.Rescuer != nil)

	select {
	case <-hard.Done():
	case <-d.stopping:
	}
	<-loopDone // the loop stops claiming on either signal
	stopSide()
	if hard.Err() == nil {
		d.result = d.stopGracefully(hard)
	}
	stopAll()
	d.workers.Wait() // their contexts derive from hard
	stopLease()
	front.Wait()
	side.Wait()
	lease.Wait()
	d.log.Info("dispatcher stopped")
	return ctx.Err()
}

// stopGracefully is Shutdown's half of Run: wait out the grace period,
// cancel and release what is left, write the last completions.
func (d *Dispatcher) stopGracefully(hard context.Context) error {
	d.log.Info("shutting down: waiting for running runs", "running", d.cap.InFlight())
	workersDone := make(chan struct{})
	go func() {
		d.workers.Wait()
		close(workersDone)
	}()
	select {
	case <-workersDone:
	case <-d.grace.Done():
		if n := d.cancelAll(errReleased); n > 0 {
			d.log.Warn("grace period over: cancelling runs to release their leases", "runs", n)
		}
		<-workersDone
	case <-hard.Done():
		<-workersDone
	}
	// The last writes get up to one lease TTL: past that, the leases have
	// expired and a rescuer requeues the runs anyway.
	final, cancel := context.WithTimeout(hard, d.cfg.LeaseTTL)
	defer cancel()
	d.final = final
	close(d.drain) // publishes d.final to the completer
	<-d.completerDone
	var errs []error
	d.mu.Lock()
	if n := len(d.pending); n > 0 {
		errs = append(errs, fmt.Errorf("dispatch: %d completions not recorded before shutdown ended", n))
	}
	d.mu.Unlock()
	// Anything this server still holds now is a run nobody here will
	// complete: the ones cancelled above, and any orphan. Give them back.
	ids, err := d.queue.ReleaseRuns(final, d.cfg.Server, nil)
	if err != nil {
		errs = append(errs, fmt.Errorf("dispatch: releasing leases: %w", err))
	} else if len(ids) > 0 {
		d.log.Info("released leases", "runs", len(ids))
	}
	return errors.Join(errs...)
}

// Shutdown stops the dispatcher gracefully: it stops claiming, lets the
// running runs finish until ctx is done (the grace period), then cancels
// the rest, waits for their executors to return, records the runs that
// finished, and releases the leases of the cancelled ones with
// Store.ReleaseRuns: they go back to pending, without spending a retry,
// for any server to claim. It returns once Run has returned, with an error
// if the final writes failed. Calling it before Run makes Run return at
// once; calling it again just waits.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.life.Lock()
	if d.grace == nil {
		d.grace = ctx
		close(d.stopping)
	}
	started := d.started
	d.life.Unlock()
	if !started {
		return nil
	}
	<-d.done
	return d.result
}

// cancelAll cancels every executing run with cause and marks it lost, so
// that it is not reported. It returns how many it cancelled.
func (d *Dispatcher) cancelAll(cause error) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, t := range d.tasks {
		if !t.finished && !t.lost {
			t.lost = true
			t.cancel(cause)
			n++
		}
	}
	return n
}

// loop is the claim loop. It waits for a reason to claim (a Wake from the
// store, the poll tick, freed capacity, the rate limiter's next token),
// asks capacity how many runs may start, and claims them.
func (d *Dispatcher) loop(ctx context.Context) {
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	bo := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	wake := d.queue.Wake()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.stopping:
			return
		default:
		}
		again, retryIn, err := d.claim(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := bo.next()
			d.log.Warn("claiming runs failed; will retry", "err", err, "retry_in", delay)
			if !sleep(ctx, delay, d.stopping) {
				return
			}
			continue
		}
		bo.reset()
		if again {
			// Busy: claim again at once, but still pass on a wake-up.
			select {
			case <-wake:
				signal(d.cancelSig)
			default:
			}
			continue
		}
		var retryC <-chan time.Time
		if retryIn > 0 {
			retry.Reset(retryIn)
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case <-d.stopping:
			return
		case <-wake:
			signal(d.cancelSig) // it may be a cancel request
		case <-poll.C:
		case <-d.kick:
		case <-retryC:
		}
		retry.Stop()
	}
}

// claim claims as many runs as capacity admits, up to a batch, and starts
// them. again reports a full batch (more may be waiting); retryIn is when
// the rate limiter admits the next run, if it is what said no.
func (d *Dispatcher) claim(ctx context.Context) (again bool, retryIn time.Duration, err error) {
	now := time.Now()
	dec := d.cap.Admit(now)
	d.noteAdmission(dec)
	n := min(dec.N, d.cfg.BatchSize)
	if n <= 0 {
		return false, dec.RetryIn, nil
	}
	// A claim slower than a lease is pointless (and holding claimMu that
	// long would stall the heartbeat). If it timed out after committing,
	// the heartbeat finds the runs orphaned and releases them.
	cctx, cancel := context.WithTimeout(ctx, d.cfg.LeaseTTL)
	defer cancel()
	d.claimMu.Lock()
	runs, err := d.queue.ClaimRuns(cctx, muster.ClaimParams{Server: d.cfg.Server, Limit: n,
		LeaseTTL: d.cfg.LeaseTTL, MaxRunning: d.cfg.MaxRunning})
	if err != nil {
		d.claimMu.Unlock()
		return false, 0, err
	}
	started := make([]*task, 0, len(runs))
	d.mu.Lock()
	for _, r := range runs {
		t := &task{run: r, leaseUntil: now.Add(d.cfg.LeaseTTL), exited: make(chan struct{})}
		t.ctx, t.cancel = context.WithCancelCause(ctx)
		if old := d.byNode[r.Node]; old != nil {
			// The store says the node is free, yet an earlier run is still
			// executing on it here: that run was rescued and requeued while
			// this server was cut off, and the heartbeat has not told yet.
			// Stop it, and start the new run only once it has exited: one
			// run per node at a time, here too.
			if !old.lost {
				old.lost = true
				old.cancel(errRescued)
			}
			t.after = old.exited
			d.log.Warn("node is busy with a run that was rescued; stopping it first", "node", r.Node,
				"old_run", old.run.ID, "old_attempt", old.run.Attempt, "run", r.ID, "attempt", r.Attempt)
		}
		d.byNode[r.Node] = t
		// An earlier attempt of this run that finished and still awaits
		// its write (a fast retry) is simply replaced: the completer checks
		// identity before it forgets a task.
		d.tasks[r.ID] = t
		started = append(started, t)
	}
	d.mu.Unlock()
	d.cap.Start(now, len(started))
	d.claimMu.Unlock()
	d.stored(runs...)
	for _, t := range started {
		d.workers.Add(1)
		go d.execute(ctx, t)
	}
	return len(runs) == n, 0, nil
}

// noteAdmission reports admission changes to the OnAdmission hook. Only
// the loop calls it.
func (d *Dispatcher) noteAdmission(dec capacity.Decision) {
	open := dec.Open()
	if d.admitKnown && d.admitOpen == open && d.admitWhy == dec.Why {
		return
	}
	d.admitKnown, d.admitOpen, d.admitWhy = true, open, dec.Why
	if h := d.cfg.Hooks.OnAdmission; h != nil {
		h(open, dec.Why)
	}
}
