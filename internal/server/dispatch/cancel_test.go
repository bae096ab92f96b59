package dispatch_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// noWake hides the store's Wake: only heartbeats find cancel requests.
type noWake struct{ muster.Store }

func (noWake) Wake() <-chan struct{} { return nil } // a nil channel never delivers

// countCancelChecks counts CancelRequested calls.
type countCancelChecks struct {
	muster.Store
	n atomic.Int64
}

func (c *countCancelChecks) CancelRequested(ctx context.Context, server string) ([]int64, error) {
	c.n.Add(1)
	return c.Store.CancelRequested(ctx, server)
}

func cancelJob(t testing.TB, s muster.Store, id int64, want muster.CancelResult) {
	t.Helper()
	got, err := s.CancelJob(context.Background(), id)
	if err != nil || got != want {
		t.Fatalf("CancelJob(%d) = %+v, %v; want %+v", id, got, err, want)
	}
}

// TestCancelStopsRunningRuns: cancelling a job through the store stops its
// running runs here, found through the store's Wake or through the next
// heartbeat. Each stopped attempt is reported and ends cancelled, without
// a retry; another job's run, and a run still shared with a live job, keep
// running.
func TestCancelStopsRunningRuns(t *testing.T) {
	tests := []struct {
		name string
		wake bool
	}{
		{name: "wake notices", wake: true},
		{name: "heartbeat notices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openSQLite(t, "")
			cfg := dispatch.Config{Queue: store, Rescuer: store, Server: "web", LeaseTTL: 3 * time.Minute, HeartbeatInterval: time.Minute}
			if !tt.wake {
				cfg.Queue, cfg.HeartbeatInterval = noWake{store}, 50*time.Millisecond
			}
			shared1 := submit(t, store, "shared", []string{"n1"}, nil)
			shared2 := submit(t, store, "shared", []string{"n1"}, nil)
			if len(shared2.Coalesced) != 1 {
				t.Fatalf("the second job did not share the first one's run: %+v", shared2)
			}
			victim := submit(t, store, "victim", []string{"n2", "n3"}, func(j *muster.Job) { j.MaxRetries = 3 })
			other := submit(t, store, "other", []string{"n4"}, nil)
			sharedRun, otherRun := shared1.Runs["n1"], other.Runs["n4"]
			victimRuns := []int64{victim.Runs["n2"], victim.Runs["n3"]}
			f := newFake(blockUntilCancelled)
			cfg.Executor = f
			d := start(t, cfg)
			for _, id := range append([]int64{sharedRun, otherRun}, victimRuns...) {
				waitFor(t, fmt.Sprintf("run %d to execute", id), func() bool { return f.execCount(id, 1) == 1 })
			}

			// The shared run still serves job 2: it goes on. Then the victim
			// is cancelled, so the dispatcher's look that stops the victim's
			// runs comes after the shared run's first cancel.
			cancelJob(t, store, shared1.Job.ID, muster.CancelResult{})
			cancelJob(t, store, victim.Job.ID, muster.CancelResult{Stopping: 2})
			for i, id := range victimRuns {
				waitFor(t, "the victim's run to end", func() bool { return getRun(t, store, id).State.Final() })
				r := getRun(t, store, id)
				want := fmt.Sprintf("muster/cancelled: job %d's run on n%d was cancelled: job cancelled by request", victim.Job.ID, i+2)
				if r.State != muster.RunCancelled || r.Error != want || r.Attempt != 1 {
					t.Errorf("victim's run %d: %s attempt %d (%q); want cancelled at attempt 1 with %q", id, r.State, r.Attempt, r.Error, want)
				}
				if cause := f.cancelCause(id, 1); cause == nil || !strings.Contains(cause.Error(), "cancelled by request") {
					t.Errorf("victim's run %d: execution's cancellation cause %v, want the cancel request", id, cause)
				}
			}
			if ids, err := store.CancelRequested(context.Background(), "web"); err != nil || len(ids) != 0 {
				t.Errorf("CancelRequested = %v, %v; want nothing (the shared run serves a live job)", ids, err)
			}
			for _, id := range []int64{sharedRun, otherRun} {
				if r := getRun(t, store, id); r.State != muster.RunRunning || f.cancelCause(id, 1) != nil {
					t.Errorf("run %d: %s (cancelled: %v), want still running", id, r.State, f.cancelCause(id, 1))
				}
			}
			if r := getRun(t, store, sharedRun); r.JobID != shared2.Job.ID {
				t.Errorf("the shared run belongs to job %d, want %d (the live one)", r.JobID, shared2.Job.ID)
			}
			if j, _ := store.GetJob(context.Background(), victim.Job.ID); j.State() != muster.JobCancelled || j.Counts[muster.RunCancelled] != 2 {
				t.Errorf("victim job: %s %v", j.State(), j.Counts)
			}

			// Cancelling its last live job stops the shared run too.
			cancelJob(t, store, shared2.Job.ID, muster.CancelResult{Stopping: 1})
			waitFor(t, "the shared run to end", func() bool { return getRun(t, store, sharedRun).State.Final() })
			if r := getRun(t, store, sharedRun); r.State != muster.RunCancelled {
				t.Errorf("shared run: %s (%s), want cancelled", r.State, r.Error)
			}
			if r := getRun(t, store, otherRun); r.State != muster.RunRunning || f.cancelCause(otherRun, 1) != nil {
				t.Errorf("the other job's run: %s, want still running", r.State)
			}
			d.shutdown(t, 50*time.Millisecond) // releases the other job's run
			if r := getRun(t, store, otherRun); r.State != muster.RunPending {
				t.Errorf("the other job's run after shutdown: %s, want pending (released)", r.State)
			}
			f.check(t)
		})
	}
}

// TestCancelAfterSuccess: an attempt that succeeds although its job was
// cancelled meanwhile is recorded as a success.
func TestCancelAfterSuccess(t *testing.T) {
	store := openSQLite(t, "")
	f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
		<-ctx.Done()
		return dispatch.Outcome{OK: true, Result: []byte(`{"done":true}`)}
	})
	start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, LeaseTTL: 3 * time.Minute, HeartbeatInterval: time.Minute})
	res := submit(t, store, "finishes", []string{"n1"}, nil)
	id := res.Runs["n1"]
	waitFor(t, "the run to execute", func() bool { return f.execCount(id, 1) == 1 })
	cancelJob(t, store, res.Job.ID, muster.CancelResult{Stopping: 1})
	waitFor(t, "the run to end", func() bool { return getRun(t, store, id).State.Final() })
	if r := getRun(t, store, id); r.State != muster.RunSucceeded || r.Error != "" {
		t.Errorf("run: %s (%q), want succeeded", r.State, r.Error)
	}
}

// TestCancelChecksAreRateLimited: a stream of wake-ups (submissions) while
// a run executes costs at most one look for cancel requests per 200ms,
// plus one per heartbeat; and a cancel still lands.
func TestCancelChecksAreRateLimited(t *testing.T) {
	store := &countCancelChecks{Store: openSQLite(t, "")}
	f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
		if r.Node == "slow" {
			return blockUntilCancelled(ctx, r)
		}
		return dispatch.Outcome{OK: true}
	})
	began := time.Now()
	start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, LeaseTTL: 3 * time.Minute, HeartbeatInterval: time.Minute})
	slow := submit(t, store, "slow", []string{"slow"}, nil)
	waitFor(t, "the slow run to execute", func() bool { return f.execCount(slow.Runs["slow"], 1) == 1 })
	for i := range 100 {
		submit(t, store, fmt.Sprint("quick", i), []string{fmt.Sprint("q", i%10)}, nil)
	}
	cancelJob(t, store, slow.Job.ID, muster.CancelResult{Stopping: 1})
	waitFor(t, "the slow run to be cancelled", func() bool { return getRun(t, store, slow.Runs["slow"]).State == muster.RunCancelled })
	elapsed := time.Since(began)
	n, limit := store.n.Load(), int64(elapsed/(200*time.Millisecond))+2
	if n > limit {
		t.Errorf("%d looks for cancel requests in %v, want at most %d", n, elapsed, limit)
	}
	t.Logf("%d looks for cancel requests in %v", n, elapsed)
}
