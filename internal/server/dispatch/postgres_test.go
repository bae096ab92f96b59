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
	"github.com/muster-run/muster/internal/store/postgres"
	"github.com/muster-run/muster/internal/testkit/pgtest"
)

func openPostgres(t testing.TB, dsn string) muster.Store {
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPostgresTwoServers: two dispatchers, each with its own connection
// pool as if in two processes, work through 10,000 node-runs on 500 nodes
// sharing one database. No node ever runs two runs at once (by the
// executor's own count, and afterwards by the runs' recorded intervals),
// and every run completes exactly once.
func TestPostgresTwoServers(t *testing.T) {
	const jobs, nodes = 20, 500
	dsn := pgtest.Schema(t, "")
	sa, sb := newTimed(openPostgres(t, dsn)), newTimed(openPostgres(t, dsn))
	var ids []int64
	for j := range jobs {
		ids = append(ids, submit(t, sa, fmt.Sprint("pg", j), nodeNames("node", nodes), nil).Job.ID)
	}
	f := newFake(sleepUpTo(2 * time.Millisecond))
	began := time.Now()
	var byA, byB atomic.Int64
	count := func(n *atomic.Int64) dispatch.Hooks {
		return dispatch.Hooks{OnStart: func(muster.Run, time.Duration) { n.Add(1) }}
	}
	a := start(t, dispatch.Config{Queue: sa, Rescuer: sa, Executor: f, Server: "A", Hooks: count(&byA)})
	b := start(t, dispatch.Config{Queue: sb, Rescuer: sb, Executor: f, Server: "B", Hooks: count(&byB)})
	const want = jobs * nodes
	waitFor(t, "every run to succeed", func() bool {
		if f.finished.Load() < want {
			return false
		}
		st, err := sa.Stats(context.Background())
		return err == nil && st.Counts[muster.RunSucceeded] == want
	})
	elapsed := time.Since(began)
	t.Logf("%d runs on %d nodes through two dispatchers in %v: %.0f runs/s (A ran %d, B %d; max %d in flight)",
		want, nodes, elapsed.Round(time.Millisecond), want/elapsed.Seconds(), byA.Load(), byB.Load(), f.maxInFlight.Load())
	a.shutdown(t, 5*time.Second)
	b.shutdown(t, 5*time.Second)

	f.check(t)
	if got := f.total(); got != want {
		t.Errorf("%d executions, want %d", got, want)
	}
	var all []muster.Run
	for _, id := range ids {
		for _, r := range jobRuns(t, sa, id) {
			if r.State != muster.RunSucceeded || r.Attempt != 1 || f.execCount(r.ID, 1) != 1 {
				t.Errorf("run %d on %s: %s attempt %d, executed %d times", r.ID, r.Node, r.State, r.Attempt, f.execCount(r.ID, 1))
			}
			all = append(all, r)
		}
	}
	if len(all) != want {
		t.Errorf("%d runs in the store, want %d", len(all), want)
	}
	checkNodeIntervals(t, all, claimTook(sa, sb))
}

// TestPostgresCancelAcrossServers: a job cancelled through another
// server's store stops the runs this server executes, told through
// LISTEN/NOTIFY (the heartbeat is far off), and they end cancelled.
func TestPostgresCancelAcrossServers(t *testing.T) {
	dsn := pgtest.Schema(t, "")
	sa, sb := openPostgres(t, dsn), openPostgres(t, dsn)
	f := newFake(blockUntilCancelled)
	a := start(t, dispatch.Config{Queue: sa, Rescuer: sa, Executor: f, Server: "A", LeaseTTL: 3 * time.Minute, HeartbeatInterval: time.Minute})
	victim := submit(t, sb, "victim", []string{"n1", "n2"}, func(j *muster.Job) { j.MaxRetries = 2 })
	other := submit(t, sb, "other", []string{"n3"}, nil)
	for _, id := range []int64{victim.Runs["n1"], victim.Runs["n2"], other.Runs["n3"]} {
		waitFor(t, fmt.Sprintf("run %d to execute on A", id), func() bool { return f.execCount(id, 1) == 1 })
	}
	cancelJob(t, sb, victim.Job.ID, muster.CancelResult{Stopping: 2})
	for _, id := range []int64{victim.Runs["n1"], victim.Runs["n2"]} {
		waitFor(t, "the cancelled run to end", func() bool { return getRun(t, sb, id).State.Final() })
		if r := getRun(t, sb, id); r.State != muster.RunCancelled || r.Attempt != 1 || !strings.Contains(r.Error, "muster/cancelled") {
			t.Errorf("run %d: %s attempt %d (%s), want cancelled at attempt 1", id, r.State, r.Attempt, r.Error)
		}
	}
	if r := getRun(t, sb, other.Runs["n3"]); r.State != muster.RunRunning || f.cancelCause(r.ID, 1) != nil {
		t.Errorf("the other job's run: %s, want still running", r.State)
	}
	a.shutdown(t, 50*time.Millisecond)
	f.check(t)
}
