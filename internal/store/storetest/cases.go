package storetest

// cases.go: the conformance cases that Run runs.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func testSubmitClaimComplete(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a", "b", "c"}, CreatedBy: "alice", Timeout: time.Minute, MaxRetries: 1})
	if len(res.Runs) != 3 || len(res.Coalesced) != 0 || res.Job.ID == 0 {
		e.t.Fatalf("submit result %+v", res)
	}
	j := e.job(res.Job.ID)
	if j.State() != muster.JobPending || j.Counts[muster.RunPending] != 3 || j.CreatedBy != "alice" ||
		!slices.Equal(j.Targets, []string{"a", "b", "c"}) || j.OnLeaseExpiry != muster.LeaseRetry || !j.CreatedAt.Equal(e.clk.Now()) {
		e.t.Fatalf("job %+v", j)
	}
	runs := e.claim("s1", 10, 0)
	e.wantNodes(runs, "a", "b", "c")
	for _, r := range runs {
		if r.State != muster.RunRunning || r.Attempt != 1 || r.LeaseOwner != "s1" || r.Timeout != time.Minute ||
			!r.LeaseExpires.Equal(e.clk.Now().Add(30*time.Second)) || string(r.Spec) != `{"command":"true"}` || r.JobID != j.ID {
			e.t.Fatalf("claimed run %+v", r)
		}
	}
	if j := e.job(j.ID); j.State() != muster.JobRunning {
		e.t.Fatalf("job state %s, want running", j.State())
	}
	if more := e.claim("s1", 10, 0); len(more) != 0 {
		e.t.Fatalf("claimed %d runs twice", len(more))
	}
	e.clk.Advance(time.Second)
	out, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: runs[0].ID, Server: "s1", Attempt: 1,
		Outcome: muster.OutcomeSucceeded, ExitCode: 0, Result: json.RawMessage(`{"stdout":"ok"}`)})
	if err != nil || out.State != muster.RunSucceeded || string(out.Result) != `{"stdout":"ok"}` ||
		!out.FinishedAt.Equal(e.clk.Now()) || out.LeaseOwner != "" {
		e.t.Fatalf("complete: %+v, %v", out, err)
	}
	e.complete(runs[1], muster.OutcomeSucceeded)
	e.complete(runs[2], muster.OutcomeSucceeded)
	if j := e.job(j.ID); j.State() != muster.JobSucceeded || j.Counts[muster.RunSucceeded] != 3 {
		e.t.Fatalf("job %s %v", j.State(), j.Counts)
	}
	if rs := e.runs(muster.RunFilter{JobID: j.ID, States: []muster.RunState{muster.RunSucceeded}}); len(rs) != 3 {
		e.t.Fatalf("ListRuns: %d runs", len(rs))
	}
	if rs := e.runs(muster.RunFilter{Node: "b"}); len(rs) != 1 || rs[0].Node != "b" {
		e.t.Fatalf("ListRuns(node b): %+v", rs)
	}
}

func testInvalid(e *env) {
	bad := []muster.Job{
		{Kind: "bogus", Targets: []string{"a"}},
		{Kind: muster.JobTask},
		{Kind: muster.JobTask, Targets: []string{"a", "a"}},
		{Kind: muster.JobTask, Targets: []string{"a"}, Spec: json.RawMessage(`{`)},
		{Kind: muster.JobTask, Targets: []string{"a"}, Every: time.Hour, Continuous: true},
		{Kind: muster.JobTask, Targets: []string{"a"}, OnLeaseExpiry: "maybe"},
	}
	for _, j := range bad {
		if _, err := e.s.SubmitJob(e.ctx, j); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("SubmitJob(%+v) = %v, want ErrInvalid", j, err)
		}
	}
	if _, err := e.s.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 0, LeaseTTL: time.Second}); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("ClaimRuns(limit 0) = %v", err)
	}
	if _, err := e.s.GetJob(e.ctx, 999); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("GetJob(999) = %v", err)
	}
	if _, err := e.s.GetRun(e.ctx, 999); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("GetRun(999) = %v", err)
	}
	if _, err := e.s.CancelJob(e.ctx, 999); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("CancelJob(999) = %v", err)
	}
	if err := e.s.BumpJob(e.ctx, 999); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("BumpJob(999) = %v", err)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: 999, Server: "s", Attempt: 1, Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("CompleteRun(999) = %v", err)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: 1, Server: "s", Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("CompleteRun(attempt 0) = %v", err)
	}
}

func testPriorityAgeAndBump(e *env) {
	e.submit(muster.Job{Targets: []string{"old"}})
	e.clk.Advance(time.Second)
	e.submit(muster.Job{Targets: []string{"young"}})
	e.submit(muster.Job{Targets: []string{"urgent"}, Priority: 5})
	e.submit(muster.Job{Targets: []string{"low"}, Priority: -1})
	bumped := e.submit(muster.Job{Targets: []string{"bumped"}, Priority: -3})
	if err := e.s.BumpJob(e.ctx, bumped.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	var order []string
	for range 5 {
		rs := e.claim("s", 1, 0)
		order = append(order, nodes(rs)...)
	}
	if want := []string{"bumped", "urgent", "old", "young", "low"}; !slices.Equal(order, want) {
		e.t.Fatalf("claim order %v, want %v", order, want)
	}
}

func testScheduled(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a"}, RunAt: e.clk.Now().Add(time.Hour)})
	if r := e.run(res.Runs["a"]); r.State != muster.RunScheduled {
		e.t.Fatalf("state %s, want scheduled", r.State)
	}
	if j := e.job(res.Job.ID); j.State() != muster.JobScheduled {
		e.t.Fatalf("job state %s", j.State())
	}
	e.clk.Advance(time.Hour - time.Second)
	if rs := e.claim("s", 5, 0); len(rs) != 0 {
		e.t.Fatal("claimed a run before its run_at")
	}
	e.clk.Advance(time.Second)
	e.wantNodes(e.claim("s", 5, 0), "a")
}

func testCoalescing(e *env) {
	j1 := e.submit(muster.Job{Targets: []string{"a", "b"}, Priority: 1, Spec: spec("x"), RunAt: e.clk.Now().Add(time.Hour)})
	j2 := e.submit(muster.Job{Targets: []string{"a", "c"}, Priority: 5, Spec: spec("x")})
	if !slices.Equal(j2.Coalesced, []string{"a"}) || j2.Runs["a"] != j1.Runs["a"] {
		e.t.Fatalf("coalesce: %+v vs %+v", j2, j1)
	}
	r := e.run(j1.Runs["a"])
	if r.Priority != 5 || r.State != muster.RunPending || !r.RunAt.Equal(e.clk.Now()) {
		e.t.Fatalf("merged run: priority %d state %s run_at %v", r.Priority, r.State, r.RunAt)
	}
	if rs := e.runs(muster.RunFilter{JobID: j2.Job.ID}); len(rs) != 2 {
		e.t.Fatalf("job 2 is served by %d runs, want 2", len(rs))
	}
	// A merge never lowers the priority, and other specs, kinds and
	// repeating jobs never merge.
	j3 := e.submit(muster.Job{Targets: []string{"a"}, Priority: 0, Spec: spec("x")})
	other := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("y")})
	kind := e.submit(muster.Job{Targets: []string{"a"}, Kind: muster.JobScript, Spec: spec("x")})
	loop := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("x"), Continuous: true})
	if len(j3.Coalesced) != 1 || e.run(j3.Runs["a"]).Priority != 5 || len(other.Coalesced)+len(kind.Coalesced)+len(loop.Coalesced) != 0 {
		e.t.Fatalf("coalescing too much or too little")
	}
	// A running run is not merged into.
	e.wantNodes(e.claim("s", 1, 0), "a")
	if e.run(j1.Runs["a"]).State != muster.RunRunning {
		e.t.Fatal("the merged, higher-priority run was not claimed first")
	}
	// A running run is never merged into: the next request merges into the
	// loop's waiting run (a one-shot may merge into a repeating job's run).
	if res := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("x"), Priority: 9}); len(res.Coalesced) != 1 || res.Runs["a"] != loop.Runs["a"] {
		e.t.Fatalf("merged into %d, want the loop's run %d", res.Runs["a"], loop.Runs["a"])
	}
}

func testOneRunningPerNode(e *env) {
	e.submit(muster.Job{Targets: []string{"a", "b"}, Spec: spec("1")})
	e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("2"), Priority: 10})
	first := e.claim("s1", 10, 0)
	e.wantNodes(first, "a", "b")
	if string(first[0].Spec) != string(spec("2")) {
		e.t.Fatalf("node a ran %s first, want the priority-10 run", first[0].Spec)
	}
	if rs := e.claim("s2", 10, 0); len(rs) != 0 {
		e.t.Fatalf("a second server claimed %v while a is busy", nodes(rs))
	}
	e.complete(first[0], muster.OutcomeSucceeded)
	e.wantNodes(e.claim("s2", 10, 0), "a")
}

// testDeepBacklog puts many better runs of one node ahead of another
// node's run: a claim must still find both nodes.
func testDeepBacklog(e *env) {
	for i := range 60 {
		e.submit(muster.Job{Targets: []string{"a"}, Spec: spec(fmt.Sprint(i)), Priority: 5})
	}
	e.submit(muster.Job{Targets: []string{"b"}})
	e.wantNodes(e.claim("s", 2, 0), "a", "b")
	e.wantNodes(e.claim("s", 2, 0))
}

// testDatabaseRejectsSecondRunning goes around the Store through the
// adapter's DB() to show that the database itself refuses a second running
// run on a node.
func testDatabaseRejectsSecondRunning(e *env) {
	h, ok := e.s.(interface{ DB() *sql.DB })
	if !ok {
		e.t.Fatal("the store has no DB() test hook")
	}
	db := h.DB()
	res := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("1")})
	other := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("2")})
	e.wantNodes(e.claim("s", 10, 0), "a")
	_, err := db.ExecContext(e.ctx, `UPDATE runs SET state='running' WHERE id=$1`, other.Runs["a"])
	wantUnique(e.t, "UPDATE", err)
	_, err = db.ExecContext(e.ctx, `INSERT INTO runs (job_id, node, kind, spec_hash, priority, state, max_retries,
		timeout_us, on_lease_expiry, run_at, created_at) VALUES ($1,'a','command','h',0,'running',0,0,'retry',0,0)`, res.Job.ID)
	wantUnique(e.t, "INSERT", err)
	if rs := e.runs(muster.RunFilter{Node: "a", States: []muster.RunState{muster.RunRunning}}); len(rs) != 1 {
		e.t.Fatalf("%d running runs on a", len(rs))
	}
}

func wantUnique(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unique") {
		t.Fatalf("%s of a second running run on a node: err = %v, want a unique violation", what, err)
	}
}

func testConcurrentClaimers(e *env) {
	const nodesN, perNode, workers = 8, 6, 4
	for i := range perNode {
		var ts []string
		for n := range nodesN {
			ts = append(ts, fmt.Sprintf("n%d", n))
		}
		e.submit(muster.Job{Targets: ts, Spec: spec(fmt.Sprint(i))})
	}
	var mu sync.Mutex
	held := map[string]int64{}
	done := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			server := fmt.Sprintf("s%d", w)
			for idle := 0; idle < 50; {
				rs, err := e.s.ClaimRuns(e.ctx, muster.ClaimParams{Server: server, Limit: 3, LeaseTTL: time.Minute})
				if err != nil {
					errs <- fmt.Errorf("claim: %w", err)
					return
				}
				if len(rs) == 0 {
					idle++
					time.Sleep(time.Millisecond)
					continue
				}
				idle = 0
				mu.Lock()
				for _, r := range rs {
					if other, busy := held[r.Node]; busy {
						mu.Unlock()
						errs <- fmt.Errorf("node %s: run %d claimed while run %d is running", r.Node, r.ID, other)
						return
					}
					held[r.Node] = r.ID
				}
				mu.Unlock()
				for _, r := range rs {
					mu.Lock()
					delete(held, r.Node) // before completing: a claim after this point is legitimate
					done[r.ID]++
					mu.Unlock()
					if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r.ID, Server: server, Attempt: r.Attempt, Outcome: muster.OutcomeSucceeded}); err != nil {
						errs <- fmt.Errorf("complete: %w", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	if len(done) != nodesN*perNode {
		e.t.Fatalf("%d runs done, want %d", len(done), nodesN*perNode)
	}
	for id, n := range done {
		if n != 1 {
			e.t.Fatalf("run %d claimed %d times", id, n)
		}
	}
}

func testGlobalLimit(e *env) {
	e.submit(muster.Job{Targets: []string{"a", "b", "c", "d", "e"}})
	got := e.claim("s1", 10, 2)
	if len(got) != 2 {
		e.t.Fatalf("claimed %d, want 2", len(got))
	}
	if rs := e.claim("s2", 10, 2); len(rs) != 0 {
		e.t.Fatalf("a second server went over the global limit: %v", nodes(rs))
	}
	e.complete(got[0], muster.OutcomeSucceeded)
	if rs := e.claim("s2", 10, 2); len(rs) != 1 {
		e.t.Fatalf("claimed %d after one finished, want 1", len(rs))
	}
}

func testRetryBackoff(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a"}, MaxRetries: 2})
	// Backoff base 10s, so attempt 1 waits 10s/2 + 0.5*10s/2 = 7.5s and
	// attempt 2 waits 20s/2 + 0.5*20s/2 = 15s (jitter fixed at 0.5).
	waits := []time.Duration{7500 * time.Millisecond, 15 * time.Second}
	for i, wait := range waits {
		rs := e.claim("s", 1, 0)
		if len(rs) != 1 || rs[0].Attempt != i+1 {
			e.t.Fatalf("attempt %d: claimed %+v", i+1, rs)
		}
		r := e.complete(rs[0], muster.OutcomeFailed)
		if r.State != muster.RunRetrying || !r.RunAt.Equal(e.clk.Now().Add(wait)) {
			e.t.Fatalf("after attempt %d: state %s run_at +%v, want retrying +%v", i+1, r.State, r.RunAt.Sub(e.clk.Now()), wait)
		}
		e.clk.Advance(wait - time.Millisecond)
		if rs := e.claim("s", 1, 0); len(rs) != 0 {
			e.t.Fatal("retried before the backoff elapsed")
		}
		e.clk.Advance(time.Millisecond)
	}
	rs := e.claim("s", 1, 0)
	if len(rs) != 1 || rs[0].Attempt != 3 {
		e.t.Fatalf("attempt 3: %+v", rs)
	}
	if r := e.complete(rs[0], muster.OutcomeFailed); r.State != muster.RunFailed {
		e.t.Fatalf("after the last retry: %s", r.State)
	}
	if j := e.job(res.Job.ID); j.State() != muster.JobFailed {
		e.t.Fatalf("job %s", j.State())
	}
	// The delay doubles and is capped.
	o := muster.NewStoreOptions(muster.WithRand(func() float64 { return 0.999 }), muster.WithRetryBackoff(time.Second, 8*time.Second))
	for a, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: 8 * time.Second} {
		if d := o.RetryDelay(a); d < max/2 || d > max {
			e.t.Errorf("RetryDelay(%d) = %v, want in [%v, %v]", a, d, max/2, max)
		}
	}
}

func testContinuous(e *env) {
	loop := e.submit(muster.Job{Targets: []string{"a"}, Continuous: true, Priority: 1})
	rs := e.claim("s", 1, 0)
	e.clk.Advance(time.Second)
	e.submit(muster.Job{Targets: []string{"b"}, Priority: 1}) // queued before a finishes
	e.clk.Advance(time.Second)
	e.complete(rs[0], muster.OutcomeSucceeded)
	next := e.runs(muster.RunFilter{JobID: loop.Job.ID, States: []muster.RunState{muster.RunPending}})
	if len(next) != 1 || next[0].Node != "a" || !next[0].RunAt.Equal(e.clk.Now()) {
		e.t.Fatalf("next run of the loop: %+v", next)
	}
	// a's next run went to the back: b, queued earlier, goes first.
	e.wantNodes(e.claim("s", 1, 0), "b")
	rs = e.claim("s", 1, 0)
	e.wantNodes(rs, "a")
	// A failed final run repeats too; a cancelled job does not.
	if _, err := e.s.CancelJob(e.ctx, loop.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	e.complete(rs[0], muster.OutcomeFailed)
	if got := e.runs(muster.RunFilter{JobID: loop.Job.ID}); len(got) != 2 {
		e.t.Fatalf("cancelled loop has %d runs, want 2", len(got))
	}
}

func testRecurring(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a"}, Every: time.Hour})
	start := e.clk.Now()
	rs := e.claim("s", 1, 0)
	e.clk.Advance(10 * time.Minute)
	e.complete(rs[0], muster.OutcomeSucceeded)
	next := e.runs(muster.RunFilter{JobID: res.Job.ID, States: []muster.RunState{muster.RunScheduled}})
	if len(next) != 1 || !next[0].RunAt.Equal(start.Add(time.Hour)) {
		e.t.Fatalf("next run: %+v", next)
	}
	e.clk.Advance(50 * time.Minute)
	rs = e.claim("s", 1, 0)
	e.wantNodes(rs, "a")
	e.clk.Advance(3 * time.Hour) // overran: the next run is due now
	e.complete(rs[0], muster.OutcomeSucceeded)
	if next := e.runs(muster.RunFilter{JobID: res.Job.ID, States: []muster.RunState{muster.RunPending}}); len(next) != 1 || !next[0].RunAt.Equal(e.clk.Now()) {
		e.t.Fatalf("next run after an overrun: %+v", next)
	}
}

func testLeaseRescue(e *env) {
	e.submit(muster.Job{Targets: []string{"a", "b"}})
	rs := e.claim("s1", 10, 0) // lease 30s
	rescue := func(want int) {
		e.t.Helper()
		ids, err := e.s.RescueExpired(e.ctx)
		if err != nil || len(ids) != want {
			e.t.Fatalf("RescueExpired = %v, %v; want %d runs", ids, err, want)
		}
	}
	e.clk.Advance(29 * time.Second)
	rescue(0)
	ids, err := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: "s1", LeaseTTL: 30 * time.Second})
	if err != nil || len(ids) != 2 {
		e.t.Fatalf("Heartbeat = %v, %v", ids, err)
	}
	e.clk.Advance(30 * time.Second)
	rescue(0) // exactly at expiry the lease is still live
	if rs := e.claim("s2", 10, 0); len(rs) != 0 {
		e.t.Fatal("claimed runs whose lease is live")
	}
	e.complete(rs[0], muster.OutcomeSucceeded) // s1 finishes a, then dies
	e.clk.Advance(time.Millisecond)
	rescue(1)
	r := e.run(rs[1].ID)
	if r.State != muster.RunPending || r.LeaseOwner != "" || !strings.Contains(r.Error, "lease") {
		e.t.Fatalf("rescued run: %+v", r)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r.ID, Server: "s1", Attempt: 1, Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrLeaseLost) {
		e.t.Fatalf("late completion by the dead server: %v, want ErrLeaseLost", err)
	}
	again := e.claim("s2", 10, 0)
	if len(again) != 1 || again[0].ID != r.ID || again[0].Attempt != 2 || again[0].LeaseOwner != "s2" {
		e.t.Fatalf("reclaim: %+v", again)
	}
	if ids, _ := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: "s1", LeaseTTL: time.Minute}); len(ids) != 0 {
		e.t.Fatalf("s1 still holds %v", ids)
	}
}

func testLeaseFailPolicy(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a"}, OnLeaseExpiry: muster.LeaseFail, MaxRetries: 3})
	rs := e.claim("s1", 1, 0)
	e.clk.Advance(31 * time.Second)
	if ids, err := e.s.RescueExpired(e.ctx); err != nil || len(ids) != 1 {
		e.t.Fatalf("RescueExpired = %v, %v", ids, err)
	}
	if r := e.run(rs[0].ID); r.State != muster.RunFailed || r.FinishedAt.IsZero() {
		e.t.Fatalf("run %+v, want failed", r)
	}
	if j := e.job(res.Job.ID); j.State() != muster.JobFailed {
		e.t.Fatalf("job %s", j.State())
	}
}

func testIdempotentCompletion(e *env) {
	e.submit(muster.Job{Targets: []string{"a"}})
	e.submit(muster.Job{Targets: []string{"b"}, MaxRetries: 1})
	rs := e.claim("s", 2, 0)
	first := e.complete(rs[0], muster.OutcomeSucceeded)
	e.clk.Advance(time.Second)
	second := e.complete(rs[0], muster.OutcomeFailed) // a repeated report changes nothing
	if second.State != muster.RunSucceeded || !second.FinishedAt.Equal(first.FinishedAt) {
		e.t.Fatalf("repeat completion changed the run: %+v", second)
	}
	retry := e.complete(rs[1], muster.OutcomeFailed)
	if again := e.complete(rs[1], muster.OutcomeFailed); again.State != muster.RunRetrying || !again.RunAt.Equal(retry.RunAt) {
		e.t.Fatalf("repeat failure changed the retry: %+v", again)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: rs[1].ID, Server: "other", Attempt: 2, Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrLeaseLost) {
		e.t.Fatalf("completion by a non-holder: %v", err)
	}
}

func testStats(e *env) {
	e.submit(muster.Job{Targets: []string{"a", "b", "c"}})
	e.submit(muster.Job{Targets: []string{"d"}, RunAt: e.clk.Now().Add(time.Hour)})
	e.clk.Advance(10 * time.Second)
	rs := e.claim("s", 2, 0)
	e.clk.Advance(5 * time.Second)
	e.complete(rs[0], muster.OutcomeSucceeded)
	e.clk.Advance(5 * time.Second)
	e.complete(rs[1], muster.OutcomeSucceeded)
	st, err := e.s.Stats(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Counts[muster.RunSucceeded] != 2 || st.Counts[muster.RunPending] != 1 || st.Counts[muster.RunScheduled] != 1 {
		e.t.Errorf("counts %v", st.Counts)
	}
	if st.Ready != 1 || st.OldestReadyAge != 20*time.Second {
		e.t.Errorf("ready %d, oldest %v; want 1, 20s", st.Ready, st.OldestReadyAge)
	}
	if st.Wait != (muster.Percentiles{N: 2, P50: 10 * time.Second, P95: 10 * time.Second, P99: 10 * time.Second}) {
		e.t.Errorf("wait %+v", st.Wait)
	}
	if st.RunTime.N != 2 || st.RunTime.P50 != 5*time.Second || st.RunTime.P99 != 10*time.Second {
		e.t.Errorf("run time %+v", st.RunTime)
	}
	if st.Finished1m != 2 || st.Finished15m != 2 {
		e.t.Errorf("throughput %d/%d/%d", st.Finished1m, st.Finished5m, st.Finished15m)
	}
	e.clk.Advance(2 * time.Minute)
	if st, _ := e.s.Stats(e.ctx); st.Finished1m != 0 || st.Finished5m != 2 {
		e.t.Errorf("throughput later %d/%d", st.Finished1m, st.Finished5m)
	}
}

func testListJobs(e *env) {
	var ids []int64
	for i := range 5 {
		ids = append(ids, e.submit(muster.Job{Targets: []string{fmt.Sprintf("n%d", i)}}).Job.ID)
	}
	if _, err := e.s.CancelJob(e.ctx, ids[1]); err != nil {
		e.t.Fatal(err)
	}
	all, err := e.s.ListJobs(e.ctx, muster.JobFilter{})
	if err != nil || len(all) != 5 || all[0].ID != ids[4] {
		e.t.Fatalf("ListJobs = %d jobs, %v", len(all), err)
	}
	page, err := e.s.ListJobs(e.ctx, muster.JobFilter{Limit: 2, BeforeID: ids[3]})
	if err != nil || len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
		e.t.Fatalf("page = %+v, %v", page, err)
	}
	cancelled, err := e.s.ListJobs(e.ctx, muster.JobFilter{State: muster.JobCancelled, Limit: 1})
	if err != nil || len(cancelled) != 1 || cancelled[0].ID != ids[1] {
		e.t.Fatalf("cancelled = %+v, %v", cancelled, err)
	}
}
