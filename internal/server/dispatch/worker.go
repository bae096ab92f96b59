package dispatch

// worker.go runs claimed runs and writes their completions in batches.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/muster-run/muster"
)

// execute runs one claimed run (one goroutine each) and queues its
// completion, unless the run was lost meanwhile.
func (d *Dispatcher) execute(parent context.Context, t *task) {
	defer d.workers.Done()
	defer close(t.exited)
	r := t.run
	if t.after != nil {
		<-t.after // the earlier run on this node returns promptly once cancelled
	}
	if h := d.cfg.Hooks.OnStart; h != nil {
		h(r, r.Wait())
	}
	ctx := t.ctx
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.Timeout, errTimeout)
		defer cancel()
	}
	start := time.Now()
	var out Outcome
	var print string
	var printErr error
	if ctx.Err() == nil { // it may have been lost while it waited
		live, o := d.out.start(r)
		out = d.safeExecute(ctx, r, o)
		d.out.done(live) // before the completion, which deletes its chunks
		if out.OK && r.Fingerprint != "" && ctx.Err() == nil {
			// On the run's own context: within its timeout, stopped with it.
			if print, printErr = d.fingerprint(ctx, r, out); printErr != nil {
				print = ""
			}
		}
	}
	runTime := time.Since(start)
	timedOut := errors.Is(context.Cause(ctx), errTimeout)
	cancelled := errors.Is(context.Cause(ctx), errCancelRequested)
	t.cancel(nil)
	d.cap.Finish(1)

	d.mu.Lock()
	if d.byNode[r.Node] == t {
		delete(d.byNode, r.Node)
	}
	if t.lost || parent.Err() != nil {
		// Not ours to report: rescued elsewhere, lease run out, released
		// at shutdown, or an abrupt stop.
		if d.tasks[r.ID] == t {
			delete(d.tasks, r.ID)
		}
		d.mu.Unlock()
		d.log.Debug("run stopped without being reported", "run", r.ID, "node", r.Node, "attempt", r.Attempt,
			"cause", context.Cause(t.ctx))
		signal(d.kick)
		return
	}
	t.finished = true
	d.mu.Unlock()

	var why *muster.Error
	switch {
	case timedOut:
		why = muster.Errorf(muster.KindTimeout, "run %d on %s timed out after %s", r.ID, r.Node, r.Timeout)
	case cancelled && !out.OK: // an attempt that succeeded first stays a success
		// Named with its cause, like the executor's own result: a run can
		// be cancelled after its claim but before it starts, with no
		// result of its own.
		why = muster.ContextError(ctx, fmt.Sprintf("job %d's run on %s", r.JobID, r.Node))
	}
	if why != nil {
		f := Failure(why)
		out.OK, out.Error = false, f.Error
		if len(out.Result) == 0 {
			out.Result = f.Result
		}
		if out.ExitCode == 0 {
			out.ExitCode = f.ExitCode
		}
	}
	if len(out.Result) > 0 && !json.Valid(out.Result) {
		out.Result, _ = json.Marshal(string(out.Result))
	}
	if out.OK && printErr != nil {
		// The run did its work but its result cannot be compared: it
		// fails, saying why, rather than pass as "unchanged".
		f := Failure(muster.Errorf(muster.KindFingerprint, "run %d: fingerprint %v", r.ID, printErr))
		out.OK, out.Error = false, f.Error
		if out.ExitCode == 0 {
			out.ExitCode = f.ExitCode
		}
	}
	if h := d.cfg.Hooks.OnFinish; h != nil {
		h(r, runTime, out)
	}
	p := muster.CompleteParams{RunID: r.ID, Server: d.cfg.Server, Attempt: r.Attempt, Outcome: muster.OutcomeSucceeded,
		ExitCode: out.ExitCode, Error: out.Error, Result: out.Result, Fingerprint: print}
	if !out.OK {
		p.Fingerprint = ""
		p.Outcome = muster.OutcomeFailed
	}
	d.mu.Lock()
	d.pending = append(d.pending, pendingDone{t: t, p: p, at: time.Now()})
	n := len(d.pending)
	d.mu.Unlock()
	if n == 1 || n >= d.cfg.CompleteBatch {
		signal(d.flushSig)
	}
}

// safeExecute calls the executor, turning a panic into a failed outcome.
func (d *Dispatcher) safeExecute(ctx context.Context, r muster.Run, o Output) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("executor panicked", "run", r.ID, "node", r.Node, "panic", p, "stack", string(debug.Stack()))
			out = Failure(muster.Errorf(muster.KindInternal, "executor panicked: %v", p))
		}
	}()
	return d.cfg.Executor.Execute(ctx, r, o)
}

// completer writes queued completions with Store.CompleteRuns: group
// commit. A completion waits at most CompleteDelay for others to join it,
// and completions that arrive while a batch is being written go into the
// next one, so batches grow with the load. Once d.drain is closed it
// writes everything left, within d.final, and exits.
func (d *Dispatcher) completer(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	drain, draining := d.drain, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.flushSig:
		case <-timer.C:
		case <-drain:
			draining, drain = true, nil
			ctx = d.final
		}
		for {
			d.mu.Lock()
			n := len(d.pending)
			if n == 0 {
				d.mu.Unlock()
				if draining {
					return
				}
				break
			}
			if age := time.Since(d.pending[0].at); !draining && n < d.cfg.CompleteBatch && age < d.cfg.CompleteDelay {
				d.mu.Unlock()
				timer.Reset(d.cfg.CompleteDelay - age)
				break
			}
			k := min(n, d.cfg.CompleteBatch)
			batch := make([]pendingDone, k)
			copy(batch, d.pending)
			d.pending = append(d.pending[:0], d.pending[k:]...)
			d.mu.Unlock()
			if !d.flush(ctx, batch) {
				d.mu.Lock()
				d.pending = append(batch, d.pending...) // for the shutdown report
				d.mu.Unlock()
				return
			}
		}
	}
}

// flush writes one batch, retrying with backoff while the store fails as
// a whole (the database restarting). It returns false if ctx ended first.
func (d *Dispatcher) flush(ctx context.Context, batch []pendingDone) bool {
	ps := make([]muster.CompleteParams, len(batch))
	for i, b := range batch {
		ps[i] = b.p
	}
	bo := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	var res []muster.CompleteResult
	for {
		var err error
		cctx, cancel := context.WithTimeout(ctx, d.cfg.LeaseTTL)
		res, err = d.queue.CompleteRuns(cctx, ps)
		cancel()
		if err == nil && len(res) != len(ps) {
			err = fmt.Errorf("store answered %d results for %d completions", len(res), len(ps))
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		delay := bo.next()
		d.log.Warn("recording completions failed; will retry", "runs", len(ps), "err", err, "retry_in", delay)
		if !sleep(ctx, delay, nil) {
			return false
		}
	}
	d.mu.Lock()
	for _, b := range batch {
		if d.tasks[b.p.RunID] == b.t {
			delete(d.tasks, b.p.RunID)
		}
	}
	d.mu.Unlock()
	for i, r := range res {
		switch p := ps[i]; {
		case r.Err == nil:
		case errors.Is(r.Err, muster.ErrLeaseLost):
			d.log.Warn("run was taken over by another server; its outcome is dropped",
				"run", p.RunID, "attempt", p.Attempt, "outcome", p.Outcome)
		default:
			d.log.Error("recording a completion failed", "run", p.RunID, "attempt", p.Attempt, "err", r.Err)
		}
	}
	if h := d.cfg.Hooks.OnResultChange; h != nil {
		for i, r := range res {
			if r.Err == nil && r.Change != nil {
				h(batch[i].t.run, *r.Change)
			}
		}
	}
	done := make([]muster.Run, len(batch))
	for i, b := range batch {
		done[i] = b.t.run
	}
	d.stored(done...)
	signal(d.kick) // nodes and slots were freed: claim again
	return true
}
