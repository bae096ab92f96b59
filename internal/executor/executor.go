// Package executor fans one action out over many targets with a sliding
// window: a new target starts as soon as any running one finishes, never
// in fixed batches. It owns per-target timeouts, cancellation and panic
// containment, and reports results in completion order.
package executor

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// DefaultConcurrency is the window size when Options.Concurrency is zero,
// as in Bolt.
const DefaultConcurrency = 100

// Options configure one fan-out.
type Options struct {
	// Concurrency is the most targets acted on at once (the window).
	Concurrency int
	// Timeout bounds each target's action; zero means no limit.
	Timeout time.Duration
	// Rolling, when set, runs the targets in rolling batches.
	Rolling *Rolling
	// Started, when set, is called as each target starts.
	Started func(t *muster.Target)
	// Finished, when set, is called with each result as it completes.
	// Calls to Started and Finished never overlap, so observers need no
	// locking of their own.
	Finished func(r *muster.Result)
}

// Func performs the action on one target. It must honour ctx.
type Func func(ctx context.Context, t *muster.Target) *muster.Result

// Run calls fn for every target, at most opts.Concurrency at a time, and
// returns the results in completion order. It returns after every started
// call has returned. When ctx is cancelled, targets that have not started
// get a cancelled result without being touched.
func Run(ctx context.Context, targets []*muster.Target, opts Options, action, object string, fn Func) []*muster.Result {
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	var (
		mu       sync.Mutex
		results  = make([]*muster.Result, 0, len(targets))
		wg       sync.WaitGroup
		failures int
		rolling  = opts.Rolling
		limit    = -1
		canary   = 0
	)
	if rolling.Active() {
		if w := rolling.window(len(targets)); w > 0 && w < n {
			n = w
		}
		limit = rolling.limit(len(targets))
		canary = min(rolling.Canary, len(targets))
	} else {
		rolling = nil
	}
	window := make(chan struct{}, n)
	finish := func(r *muster.Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		if !r.OK() {
			failures++
		}
		if opts.Finished != nil {
			opts.Finished(r)
		}
	}
	// stopped reports why no new target may start, or "".
	stopped := func(i int) string {
		if ctx.Err() != nil {
			return "the run was cancelled before it started"
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case canary > 0 && i >= canary && failures > 0:
			return fmt.Sprintf("a canary target failed, so the remaining %d targets were not started", len(targets)-i)
		case limit >= 0 && failures > limit:
			return fmt.Sprintf("the failure limit was reached (%d failed, %d tolerated)", failures, limit)
		}
		return ""
	}
	skipRest := func(i int, why string) {
		for _, skipped := range targets[i:] {
			finish(notStarted(skipped, action, object, why))
		}
	}
	for i, t := range targets {
		if rolling != nil && i > 0 && (i == canary || (i > canary && n > 0 && (i-canary)%n == 0)) {
			if i == canary {
				wg.Wait() // the canaries finish before anything else starts
			}
			if why := stopped(i); why != "" {
				skipRest(i, why)
				break
			}
			if rolling.Pause > 0 {
				select {
				case <-time.After(rolling.Pause):
				case <-ctx.Done():
				}
			}
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
		}
		if why := stopped(i); why != "" {
			if ctx.Err() == nil {
				<-window
			}
			skipRest(i, why)
			break
		}
		if opts.Started != nil {
			mu.Lock()
			opts.Started(t)
			mu.Unlock()
		}
		wg.Add(1)
		go func(t *muster.Target) {
			defer wg.Done()
			defer func() { <-window }()
			finish(runOne(ctx, t, opts.Timeout, action, object, fn))
		}(t)
	}
	wg.Wait()
	return results
}

func runOne(ctx context.Context, t *muster.Target, timeout time.Duration, action, object string, fn Func) (r *muster.Result) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the time limit of %s per target was reached", timeout))
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			r = &muster.Result{Target: t.Name, Action: action, Object: object,
				Error: muster.Errorf(muster.KindInternal, "internal error acting on %s: %v", t.Name, p).
					WithCode("EXCEPTION").WithDetail("stack_trace", string(debug.Stack()))}
		}
	}()
	r = fn(ctx, t)
	if r == nil {
		r = &muster.Result{Target: t.Name, Action: action, Object: object,
			Error: muster.Errorf(muster.KindInternal, "internal error: no result for %s", t.Name)}
	}
	return r
}

func notStarted(t *muster.Target, action, object, why string) *muster.Result {
	kind := muster.KindNotRun
	if strings.Contains(why, "cancelled") {
		kind = muster.KindCancelled
	}
	return &muster.Result{Target: t.Name, Action: action, Object: object,
		Error: &muster.Error{Kind: kind, Msg: fmt.Sprintf("not run on %s: %s", t.Name, why),
			Details: map[string]any{"started": false}}}
}
