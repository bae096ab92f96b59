package dispatch_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// attemptLog records the attempts OnFinish reported.
type attemptLog struct {
	mu       sync.Mutex
	attempts []int
}

func (l *attemptLog) hook(r muster.Run, _ time.Duration, _ dispatch.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, r.Attempt)
}

func (l *attemptLog) get() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts)
}

// firstAttemptBlocks blocks attempt 1 until cancelled; later ones succeed.
func firstAttemptBlocks(ctx context.Context, r muster.Run) dispatch.Outcome {
	if r.Attempt == 1 {
		return blockUntilCancelled(ctx, r)
	}
	return dispatch.Outcome{OK: true}
}

// TestRescueAfterDeath: server A claims a run and dies without a word to
// the database; server B rescues the run once A's lease expires, and
// completes it.
func TestRescueAfterDeath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	sa := openSQLite(t, path)
	fa := newFake(blockUntilCancelled)
	a := start(t, dispatch.Config{Queue: sa, Rescuer: sa, Executor: fa, Server: "A", LeaseTTL: 300 * time.Millisecond})
	id := submit(t, sa, "rescue-me", []string{"n1"}, nil).Runs["n1"]
	waitFor(t, "A to execute the run", func() bool { return fa.execCount(id, 1) == 1 })
	a.kill(t)
	if fa.cancelCause(id, 1) == nil {
		t.Error("A's execution was not cancelled when A stopped")
	}
	if r := getRun(t, sa, id); r.State != muster.RunRunning || r.LeaseOwner != "A" {
		t.Fatalf("after A died: %s, lease owner %q; want running under A's lease", r.State, r.LeaseOwner)
	}

	sb := openSQLite(t, path)
	fb := newFake(nil)
	b := start(t, dispatch.Config{Queue: sb, Rescuer: sb, Executor: fb, Server: "B", LeaseTTL: 200 * time.Millisecond})
	waitFor(t, "B to rescue and complete the run", func() bool { return getRun(t, sb, id).State == muster.RunSucceeded })
	b.shutdown(t, 5*time.Second)
	fa.check(t)
	fb.check(t)
	if r := getRun(t, sb, id); r.Attempt != 2 || fb.execCount(id, 2) != 1 {
		t.Errorf("run ended at attempt %d, B executed attempt 2 %d times; want attempt 2, once", r.Attempt, fb.execCount(id, 2))
	}
}

// TestRescuedWhileRunning: a run is rescued while its server is alive and
// still executing it (the server was cut off long enough for its lease to
// expire elsewhere). The server must stop the old attempt and never report
// it, whether its heartbeat notices first or the run comes back to it in a
// claim first.
func TestRescuedWhileRunning(t *testing.T) {
	tests := []struct {
		name            string
		heartbeat, poll time.Duration
	}{
		{name: "heartbeat notices", heartbeat: 20 * time.Millisecond, poll: time.Minute},
		{name: "claimed again first", heartbeat: time.Minute, poll: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			store := openSQLite(t, path)
			// Another server whose clock runs an hour ahead sees every
			// lease as expired.
			ahead := openSQLite(t, path, muster.WithNow(func() time.Time { return time.Now().Add(time.Hour) }))
			f := newFake(firstAttemptBlocks)
			var finished attemptLog
			d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, LeaseTTL: 3 * time.Minute,
				HeartbeatInterval: tt.heartbeat, PollInterval: tt.poll, Hooks: dispatch.Hooks{OnFinish: finished.hook}})
			id := submit(t, store, "cut-off", []string{"n1"}, nil).Runs["n1"]
			waitFor(t, "the first attempt to start", func() bool { return f.execCount(id, 1) == 1 })
			ids, err := ahead.RescueExpired(context.Background())
			if err != nil || !slices.Equal(ids, []int64{id}) {
				t.Fatalf("RescueExpired = %v, %v; want [%d]", ids, err, id)
			}
			waitFor(t, "the second attempt to succeed", func() bool { return getRun(t, store, id).State == muster.RunSucceeded })
			d.shutdown(t, 5*time.Second)
			f.check(t)
			if cause := f.cancelCause(id, 1); cause == nil || !strings.Contains(cause.Error(), "rescued") {
				t.Errorf("first attempt's cancellation cause = %v, want a rescue", cause)
			}
			if got := finished.get(); !slices.Equal(got, []int{2}) {
				t.Errorf("OnFinish saw attempts %v, want only [2]", got)
			}
			if r := getRun(t, store, id); r.Attempt != 2 || f.execCount(id, 2) != 1 {
				t.Errorf("run ended at attempt %d (attempt 2 executed %d times)", r.Attempt, f.execCount(id, 2))
			}
		})
	}
}

// countRescues wraps a Store and counts its heartbeats and rescues.
type countRescues struct {
	muster.Store
	beats, rescues atomic.Int64
}

func (c *countRescues) Heartbeat(ctx context.Context, p muster.HeartbeatParams) ([]int64, error) {
	c.beats.Add(1)
	return c.Store.Heartbeat(ctx, p)
}

func (c *countRescues) RescueExpired(ctx context.Context) ([]int64, error) {
	c.rescues.Add(1)
	return c.Store.RescueExpired(ctx)
}

// TestRescuerOptional: the dispatcher rescues through Config.Rescuer, and
// only through it. With none (a worker on a remote queue), it never asks
// its Queue to rescue, even a Queue that could.
func TestRescuerOptional(t *testing.T) {
	tests := []struct {
		name   string
		rescue bool
	}{
		{"with a rescuer", true},
		{"without", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &countRescues{Store: openSQLite(t, "")}
			cfg := dispatch.Config{Queue: c, Executor: newFake(nil), LeaseTTL: time.Minute,
				HeartbeatInterval: 20 * time.Millisecond, RescueInterval: time.Millisecond}
			if tt.rescue {
				cfg.Rescuer = c
			}
			d := start(t, cfg)
			// A rescuer would tick twenty times between two heartbeats.
			waitFor(t, "five heartbeats", func() bool {
				return c.beats.Load() >= 5 && (!tt.rescue || c.rescues.Load() > 0)
			})
			d.shutdown(t, 5*time.Second)
			if got := c.rescues.Load(); (got > 0) != tt.rescue {
				t.Errorf("%d rescues, want rescues: %v", got, tt.rescue)
			}
		})
	}
}

// TestDatabaseOutage: while the database is unreachable for longer than a
// lease, the runs are stopped (a rescuer elsewhere may hand them out
// again); the dispatcher keeps retrying, and when the database is back it
// gives the leases it still holds back and runs them again.
func TestDatabaseOutage(t *testing.T) {
	store := openSQLite(t, "")
	fl := &flaky{Store: store, noRescue: true} // only the heartbeat may recover the runs
	// The first execution of each run blocks until cancelled; the next
	// one succeeds. (The release undoes the claim, so the run comes back
	// with the same attempt number.)
	var seen sync.Map
	f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
		if _, again := seen.LoadOrStore(r.ID, true); !again {
			return blockUntilCancelled(ctx, r)
		}
		return dispatch.Outcome{OK: true}
	})
	var finished attemptLog
	d := start(t, dispatch.Config{Queue: fl, Rescuer: fl, Executor: f, LeaseTTL: 300 * time.Millisecond,
		HeartbeatInterval: 30 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		Hooks: dispatch.Hooks{OnFinish: finished.hook}})
	res := submit(t, store, "outage", []string{"a", "b"}, nil)
	waitFor(t, "both runs to start", func() bool { return f.inFlight.Load() == 2 })
	fl.down.Store(true)
	waitFor(t, "both runs to be stopped", func() bool { return f.inFlight.Load() == 0 })
	for node, id := range res.Runs {
		if cause := f.cancelCause(id, 1); cause == nil || !strings.Contains(cause.Error(), "lease") {
			t.Errorf("%s: cancellation cause %v, want the lease", node, cause)
		}
		if r := getRun(t, store, id); r.State != muster.RunRunning || r.Attempt != 1 {
			t.Errorf("%s during the outage: %s attempt %d; want still running, unreported", node, r.State, r.Attempt)
		}
	}
	if got := finished.get(); len(got) != 0 {
		t.Errorf("OnFinish reported stopped attempts %v", got)
	}
	fl.down.Store(false)
	waitFor(t, "the runs to succeed", func() bool {
		for _, r := range jobRuns(t, store, res.Job.ID) {
			if r.State != muster.RunSucceeded {
				return false
			}
		}
		return true
	})
	d.shutdown(t, 5*time.Second)
	f.checkNodes(t)
	if got := finished.get(); len(got) != 2 {
		t.Errorf("OnFinish saw attempts %v; want the two successful ones", got)
	}
	for _, r := range jobRuns(t, store, res.Job.ID) {
		if r.Attempt != 1 || f.execCount(r.ID, 1) != 2 {
			t.Errorf("run %d ended at attempt %d after %d executions; want attempt 1 (released, not spent), 2 executions",
				r.ID, r.Attempt, f.execCount(r.ID, 1))
		}
	}
}

// TestLeaseLostOnCompletion: a completion that arrives after the run was
// rescued and claimed again is refused with ErrLeaseLost; the dispatcher
// logs it and carries on.
func TestLeaseLostOnCompletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	store := openSQLite(t, path)
	ahead := openSQLite(t, path, muster.WithNow(func() time.Time { return time.Now().Add(time.Hour) }))
	fl := &flaky{Store: store}
	fl.downComplete.Store(true)
	f := newFake(nil)
	var logs logBuffer
	d := start(t, dispatch.Config{Queue: fl, Rescuer: fl, Executor: f, PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	id := submit(t, store, "late", []string{"n1"}, nil).Runs["n1"]
	waitFor(t, "the first attempt to end", func() bool { return f.execCount(id, 1) == 1 && f.inFlight.Load() == 0 })
	waitFor(t, "a completion to fail", func() bool { return strings.Contains(logs.String(), "recording completions failed") })
	if ids, err := ahead.RescueExpired(context.Background()); err != nil || !slices.Equal(ids, []int64{id}) {
		t.Fatalf("RescueExpired = %v, %v; want [%d]", ids, err, id)
	}
	waitFor(t, "the run to be claimed again", func() bool { return f.execCount(id, 2) == 1 })
	fl.downComplete.Store(false)
	waitFor(t, "the second attempt to succeed", func() bool {
		r := getRun(t, store, id)
		return r.State == muster.RunSucceeded && r.Attempt == 2
	})
	d.shutdown(t, 5*time.Second)
	f.check(t)
	if !strings.Contains(logs.String(), "taken over by another server") {
		t.Errorf("the lost lease of attempt 1 was not logged:\n%s", logs.String())
	}
}

// TestShutdown: runs that end within the grace period are recorded; the
// rest are cancelled and released, pending again for any server to claim.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name     string
		grace    time.Duration
		slow     func(ctx context.Context, r muster.Run) dispatch.Outcome
		released bool
	}{
		{name: "slow runs released", grace: 50 * time.Millisecond, slow: blockUntilCancelled, released: true},
		{name: "slow runs finish within the grace", grace: time.Minute, released: false,
			slow: func(ctx context.Context, r muster.Run) dispatch.Outcome {
				time.Sleep(100 * time.Millisecond)
				return dispatch.Outcome{OK: true}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openSQLite(t, "")
			f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
				if strings.HasPrefix(r.Node, "slow") {
					return tt.slow(ctx, r)
				}
				return dispatch.Outcome{OK: true}
			})
			d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f})
			res := submit(t, store, "mixed", []string{"fast1", "fast2", "slow1", "slow2"}, nil)
			waitFor(t, "fast runs to be recorded and slow ones to start", func() bool {
				return getRun(t, store, res.Runs["fast1"]).State == muster.RunSucceeded &&
					getRun(t, store, res.Runs["fast2"]).State == muster.RunSucceeded && f.total() == 4
			})
			d.shutdown(t, tt.grace)
			f.check(t)
			for _, node := range []string{"slow1", "slow2"} {
				r := getRun(t, store, res.Runs[node])
				if !tt.released {
					if r.State != muster.RunSucceeded {
						t.Errorf("%s: %s, want succeeded within the grace period", node, r.State)
					}
					continue
				}
				if r.State != muster.RunPending || r.LeaseOwner != "" {
					t.Errorf("%s: %s, lease owner %q; want pending, released", node, r.State, r.LeaseOwner)
				}
				if cause := f.cancelCause(r.ID, 1); cause == nil || !strings.Contains(cause.Error(), "grace") {
					t.Errorf("%s: cancellation cause %v, want the grace period", node, cause)
				}
			}
			if !tt.released {
				return
			}
			// Another server picks the released runs up; the release did not
			// spend an attempt.
			f2 := newFake(nil)
			d2 := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f2})
			waitFor(t, "the released runs to succeed", func() bool {
				return getRun(t, store, res.Runs["slow1"]).State == muster.RunSucceeded &&
					getRun(t, store, res.Runs["slow2"]).State == muster.RunSucceeded
			})
			d2.shutdown(t, 5*time.Second)
			for _, node := range []string{"slow1", "slow2"} {
				r := getRun(t, store, res.Runs[node])
				if r.Attempt != 1 || f2.execCount(r.ID, 1) != 1 {
					t.Errorf("%s: finished at attempt %d (executed %d times as attempt 1); want attempt 1",
						node, r.Attempt, f2.execCount(r.ID, 1))
				}
			}
		})
	}
}
