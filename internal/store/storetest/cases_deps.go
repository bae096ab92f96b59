package storetest

// cases_deps.go: job dependencies (Job.After) and Jobs.RetryJob.

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// wantState checks the state of the run serving node in res.
func (e *env) wantState(res muster.SubmitResult, node string, want muster.RunState) muster.Run {
	e.t.Helper()
	r := e.run(res.Runs[node])
	if r.State != want {
		e.t.Fatalf("job %d's run on %s is %s (%q), want %s", res.Job.ID, node, r.State, r.Error, want)
	}
	return r
}

// claimAll claims every ready run, as server s.
func (e *env) claimAll(s string) map[string]muster.Run {
	e.t.Helper()
	out := map[string]muster.Run{}
	for _, r := range e.claim(s, 100, 0) {
		out[r.Node] = r
	}
	return out
}

func testAfterJob(e *env) {
	a := e.submit(muster.Job{Targets: []string{"a1", "a2"}, Spec: spec("a")})
	b := e.submit(muster.Job{Targets: []string{"b1", "b2"}, Spec: spec("b"), After: []muster.Dependency{{JobID: a.Job.ID}}})
	if len(b.Coalesced) != 0 {
		e.t.Fatalf("a dependent job coalesced: %+v", b)
	}
	j := e.job(b.Job.ID)
	if j.State() != muster.JobWaiting || j.Counts[muster.RunWaiting] != 2 ||
		!slices.Equal(j.After, []muster.Dependency{{JobID: a.Job.ID}}) {
		e.t.Fatalf("dependent job %s %v after %v", j.State(), j.Counts, j.After)
	}
	got := e.claimAll("s")
	if len(got) != 2 || got["a1"].ID == 0 || got["a2"].ID == 0 {
		e.t.Fatalf("claimed %v, want only job %d's runs", got, a.Job.ID)
	}
	e.complete(got["a1"], muster.OutcomeSucceeded)
	e.wantState(b, "b1", muster.RunWaiting) // a2 still runs
	if more := e.claimAll("s"); len(more) != 0 {
		e.t.Fatalf("claimed %v while a dependency runs", more)
	}
	e.clk.Advance(time.Minute)
	e.complete(got["a2"], muster.OutcomeSucceeded)
	r := e.wantState(b, "b1", muster.RunPending)
	if !r.RunAt.Equal(e.clk.Now()) || r.Error != "" {
		e.t.Fatalf("ready dependent %+v: want RunAt %v (ready since its dependency ended)", r, e.clk.Now())
	}
	if j := e.job(b.Job.ID); j.State() != muster.JobPending {
		e.t.Fatalf("job %s, want pending", j.State())
	}
	if got := e.claimAll("s"); len(got) != 2 || got["b1"].ID == 0 || got["b2"].ID == 0 {
		e.t.Fatalf("claimed %v, want the dependent's runs", got)
	}
	// A job after one that already succeeded need not wait.
	c := e.submit(muster.Job{Targets: []string{"c1"}, After: []muster.Dependency{{JobID: a.Job.ID}}})
	e.wantState(c, "c1", muster.RunPending)
	// A scheduled dependent becomes scheduled, not pending.
	d := e.submit(muster.Job{Targets: []string{"d1"}, Spec: spec("d")})
	later := e.submit(muster.Job{Targets: []string{"d2"}, RunAt: e.clk.Now().Add(time.Hour),
		After: []muster.Dependency{{JobID: d.Job.ID}}})
	e.complete(e.claimAll("s")["d1"], muster.OutcomeSucceeded)
	e.wantState(later, "d2", muster.RunScheduled)
}

func testAfterEach(e *env) {
	a := e.submit(muster.Job{Targets: []string{"x", "y"}, Spec: spec("a")})
	b := e.submit(muster.Job{Targets: []string{"x", "y", "z"}, Spec: spec("b"),
		After: []muster.Dependency{{JobID: a.Job.ID, Each: true}}})
	e.wantState(b, "x", muster.RunWaiting)
	e.wantState(b, "y", muster.RunWaiting)
	e.wantState(b, "z", muster.RunPending) // job a has no run on z: nothing to wait for
	got := e.claimAll("s")
	if len(got) != 3 || got["x"].JobID != a.Job.ID || got["y"].JobID != a.Job.ID || got["z"].JobID != b.Job.ID {
		e.t.Fatalf("claimed %v", got)
	}
	e.complete(got["x"], muster.OutcomeSucceeded)
	e.wantState(b, "x", muster.RunPending) // x's own dependency succeeded
	e.wantState(b, "y", muster.RunWaiting) // y's still runs
	if more := e.claimAll("s"); len(more) != 1 || more["x"].JobID != b.Job.ID {
		e.t.Fatalf("claimed %v, want job %d's run on x", more, b.Job.ID)
	}
	e.complete(got["y"], muster.OutcomeFailed)
	r := e.wantState(b, "y", muster.RunBlocked)
	if want := fmt.Sprintf("job %d's run %d on y failed", a.Job.ID, got["y"].ID); !strings.Contains(r.Error, want) {
		e.t.Fatalf("blocked run's reason %q does not say %q", r.Error, want)
	}
	// Two dependencies, one per node and one job-wide.
	c := e.submit(muster.Job{Targets: []string{"p"}, Spec: spec("c")})
	d := e.submit(muster.Job{Targets: []string{"q"}, Spec: spec("d")})
	both := e.submit(muster.Job{Targets: []string{"p", "r"}, Spec: spec("both"),
		After: []muster.Dependency{{JobID: c.Job.ID, Each: true}, {JobID: d.Job.ID}}})
	e.wantState(both, "p", muster.RunWaiting)
	e.wantState(both, "r", muster.RunWaiting) // d is job-wide
	got = e.claimAll("s")
	e.complete(got["q"], muster.OutcomeSucceeded)
	e.wantState(both, "r", muster.RunPending)
	e.wantState(both, "p", muster.RunWaiting)
	e.complete(got["p"], muster.OutcomeSucceeded)
	e.wantState(both, "p", muster.RunPending)
}

func testFailureBlocksRetryUnblocks(e *env) {
	a := e.submit(muster.Job{Targets: []string{"a1", "a2"}, Spec: spec("a"), MaxRetries: 1})
	b := e.submit(muster.Job{Targets: []string{"b1"}, Spec: spec("b"), After: []muster.Dependency{{JobID: a.Job.ID}}})
	got := e.claimAll("s")
	e.complete(got["a2"], muster.OutcomeSucceeded)
	_, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: got["a1"].ID, Server: "s", Attempt: 1,
		Outcome: muster.OutcomeFailed, ExitCode: 3, Error: "exit code 3\nmore"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.wantState(b, "b1", muster.RunWaiting) // a retry is coming: not failed for good
	e.clk.Advance(time.Minute)
	again := e.claimAll("s")["a1"]
	if again.Attempt != 2 {
		e.t.Fatalf("retry %+v", again)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: again.ID, Server: "s", Attempt: 2,
		Outcome: muster.OutcomeFailed, ExitCode: 3, Error: "exit code 3"}); err != nil {
		e.t.Fatal(err)
	}
	r := e.wantState(b, "b1", muster.RunBlocked)
	if want := fmt.Sprintf("job %d's run %d on a1 failed (exit code 3)", a.Job.ID, again.ID); !strings.Contains(r.Error, want) {
		e.t.Fatalf("blocked run's reason %q does not say %q", r.Error, want)
	}
	if j := e.job(b.Job.ID); j.State() != muster.JobBlocked {
		e.t.Fatalf("dependent job %s, want blocked", j.State())
	}
	st, err := e.s.Stats(e.ctx)
	if err != nil || st.Counts[muster.RunBlocked] != 1 || st.Ready != 0 {
		e.t.Fatalf("stats %+v, %v: want 1 blocked, none ready", st, err)
	}
	if more := e.claimAll("s"); len(more) != 0 {
		e.t.Fatalf("claimed %v while the dependency failed", more)
	}
	// Retrying the dependent itself does nothing: it did not fail.
	if _, err := e.s.RetryJob(e.ctx, b.Job.ID, ""); !errors.Is(err, muster.ErrInvalid) || !strings.Contains(err.Error(), "blocked") {
		e.t.Fatalf("RetryJob(blocked job) = %v, want ErrInvalid saying its runs are blocked", err)
	}
	if _, err := e.s.RetryJob(e.ctx, a.Job.ID, "a2"); !errors.Is(err, muster.ErrInvalid) {
		e.t.Fatalf("RetryJob(node without a failed run) = %v", err)
	}
	if _, err := e.s.RetryJob(e.ctx, 9999, ""); !errors.Is(err, muster.ErrNotFound) {
		e.t.Fatalf("RetryJob(unknown) = %v", err)
	}
	res, err := e.s.RetryJob(e.ctx, a.Job.ID, "a1")
	if err != nil || !slices.Equal(res.Retried, []int64{again.ID}) || res.Unblocked != 1 {
		e.t.Fatalf("RetryJob = %+v, %v", res, err)
	}
	r = e.wantState(b, "b1", muster.RunWaiting)
	if r.Error != "" {
		e.t.Fatalf("unblocked run keeps its reason %q", r.Error)
	}
	retried := e.wantState(a, "a1", muster.RunPending)
	if retried.Error != "" || retried.MaxRetries != 3 || !retried.RunAt.Equal(e.clk.Now()) {
		e.t.Fatalf("retried run %+v: want no error, its retries again (max 3 after 2 attempts), ready now", retried)
	}
	third := e.claimAll("s")["a1"]
	if third.Attempt != 3 || third.ID != again.ID {
		e.t.Fatalf("claimed %+v, want the retried run's third attempt", third)
	}
	e.complete(third, muster.OutcomeSucceeded)
	e.wantState(b, "b1", muster.RunPending)
	if j := e.job(a.Job.ID); j.State() != muster.JobSucceeded {
		e.t.Fatalf("retried job %s", j.State())
	}
}

func testAfterRefused(e *env) {
	a := e.submit(muster.Job{Targets: []string{"a"}})
	cancelled := e.submit(muster.Job{Targets: []string{"c"}, Spec: spec("c")})
	if _, err := e.s.CancelJob(e.ctx, cancelled.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	loop := e.submit(muster.Job{Targets: []string{"l"}, Continuous: true})
	every := e.submit(muster.Job{Targets: []string{"e"}, Every: time.Hour})
	tests := []struct {
		name  string
		after []muster.Dependency
		want  string
	}{
		{"unknown", []muster.Dependency{{JobID: 9999}}, "no job 9999"},
		{"cancelled", []muster.Dependency{{JobID: cancelled.Job.ID}}, fmt.Sprintf("job %d was cancelled", cancelled.Job.ID)},
		{"continuous", []muster.Dependency{{JobID: loop.Job.ID}}, "never finishes"},
		{"recurring", []muster.Dependency{{JobID: every.Job.ID}}, "never finishes"},
		{"twice", []muster.Dependency{{JobID: a.Job.ID}, {JobID: a.Job.ID}}, "listed twice"},
		{"not positive", []muster.Dependency{{JobID: 0}}, "not positive"},
		// The id the new job itself gets (or, if ids skipped, one that
		// does not exist yet): either way no cycle can be made.
		{"itself", []muster.Dependency{{JobID: every.Job.ID + 1}}, ""},
	}
	for _, tc := range tests {
		_, err := e.s.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{"x"}, After: tc.after})
		if !errors.Is(err, muster.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			e.t.Errorf("%s: SubmitJob = %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
		if tc.name == "itself" && err != nil && !strings.Contains(err.Error(), "itself") && !strings.Contains(err.Error(), "no job") {
			e.t.Errorf("itself: %v", err)
		}
	}
	// A refused submission stored nothing.
	if rs := e.runs(muster.RunFilter{Node: "x"}); len(rs) != 0 {
		e.t.Fatalf("refused submissions left runs: %+v", rs)
	}
	// The database refuses a dependency on a newer job: no cycle.
	if h, ok := e.s.(interface{ DB() *sql.DB }); ok {
		if _, err := h.DB().ExecContext(e.ctx, `INSERT INTO job_deps (job_id, dep_job_id, per_node) VALUES ($1, $2, 0)`,
			a.Job.ID, every.Job.ID); err == nil {
			e.t.Fatal("the database took a dependency on a newer job")
		}
	}
	// After a job that already failed: blocked at once.
	failed := e.submit(muster.Job{Targets: []string{"f"}, Spec: spec("f")})
	e.complete(e.claimAll("s")["f"], muster.OutcomeFailed)
	b := e.submit(muster.Job{Targets: []string{"g"}, After: []muster.Dependency{{JobID: failed.Job.ID}}})
	if r := e.wantState(b, "g", muster.RunBlocked); !strings.Contains(r.Error, fmt.Sprintf("job %d's run", failed.Job.ID)) {
		e.t.Fatalf("reason %q", r.Error)
	}
}

func testCancelBlocksDependents(e *env) {
	a := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("a")})
	b := e.submit(muster.Job{Targets: []string{"b"}, Spec: spec("b"), After: []muster.Dependency{{JobID: a.Job.ID}}})
	c := e.submit(muster.Job{Targets: []string{"c"}, Spec: spec("c"), After: []muster.Dependency{{JobID: b.Job.ID}}})
	if _, err := e.s.CancelJob(e.ctx, a.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	r := e.wantState(b, "b", muster.RunBlocked)
	if !strings.Contains(r.Error, fmt.Sprintf("job %d's run %d on a was cancelled", a.Job.ID, a.Runs["a"])) {
		e.t.Fatalf("reason %q", r.Error)
	}
	e.wantState(c, "c", muster.RunWaiting) // it waits for b, which is blocked, not failed
	if _, err := e.s.RetryJob(e.ctx, a.Job.ID, ""); !errors.Is(err, muster.ErrInvalid) {
		e.t.Fatalf("RetryJob(cancelled job) = %v", err)
	}
	// Cancelling a waiting job cancels its waiting runs and blocks c.
	res, err := e.s.CancelJob(e.ctx, b.Job.ID)
	if err != nil || res.Cancelled != 1 {
		e.t.Fatalf("CancelJob(blocked job) = %+v, %v", res, err)
	}
	e.wantState(b, "b", muster.RunCancelled)
	e.wantState(c, "c", muster.RunBlocked)

	// A run failed by the rescuer (lease policy fail) blocks too, and
	// bumping a waiting job keeps it waiting.
	d := e.submit(muster.Job{Targets: []string{"d"}, Spec: spec("d"), OnLeaseExpiry: muster.LeaseFail})
	f := e.submit(muster.Job{Targets: []string{"f"}, Spec: spec("f"), After: []muster.Dependency{{JobID: d.Job.ID}}})
	if err := e.s.BumpJob(e.ctx, f.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	e.wantState(f, "f", muster.RunWaiting)
	e.claimAll("s1")
	e.clk.Advance(time.Hour)
	if _, err := e.s.RescueExpired(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.wantState(f, "f", muster.RunBlocked)
	// A release of a run whose job was cancelled ends it cancelled, and
	// blocks its dependents.
	k := e.submit(muster.Job{Targets: []string{"k"}, Spec: spec("k")})
	m := e.submit(muster.Job{Targets: []string{"m"}, Spec: spec("m"), After: []muster.Dependency{{JobID: k.Job.ID}}})
	if rs := e.claimAll("s3"); rs["k"].ID == 0 {
		e.t.Fatalf("claimed %v, want k's run", rs)
	}
	if _, err := e.s.CancelJob(e.ctx, k.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	e.wantState(m, "m", muster.RunWaiting) // k is still running, asked to stop
	if _, err := e.s.ReleaseRuns(e.ctx, "s3", nil); err != nil {
		e.t.Fatal(err)
	}
	e.wantState(m, "m", muster.RunBlocked)
}

// testDepsConcurrent: many completions of a dependency's runs, in
// concurrent transactions, while claimers poll: the dependent becomes
// ready exactly when the last one ended, and is never claimed before.
func testDepsConcurrent(e *env) {
	depsConcurrent(e.t, e.s, e.s, e.clk)
}

// depsConcurrent runs the concurrent-settle check over the stores a and b,
// which share one database (or are one store).
func depsConcurrent(t *testing.T, a, b muster.Store, clk *Clock) {
	e := &env{t: t, s: a, clk: clk, ctx: t.Context()}
	const n = 24
	var ts []string
	for i := range n {
		ts = append(ts, fmt.Sprintf("n%02d", i))
	}
	dep := e.submit(muster.Job{Targets: ts, Spec: spec("dep")})
	after := e.submit(muster.Job{Targets: []string{"late"}, Spec: spec("after"), After: []muster.Dependency{{JobID: dep.Job.ID}}})
	each := e.submit(muster.Job{Targets: ts, Spec: spec("each"), After: []muster.Dependency{{JobID: dep.Job.ID, Each: true}}})
	runs := e.claim("first", n, 0)
	if len(runs) != n {
		t.Fatalf("claimed %d of %d", len(runs), n)
	}
	stores := []muster.Store{a, b}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n+4)
	for i, r := range runs {
		wg.Go(func() {
			s := stores[i%2]
			_, err := s.CompleteRuns(t.Context(), []muster.CompleteParams{{RunID: r.ID, Server: "first", Attempt: r.Attempt,
				Outcome: muster.OutcomeSucceeded}})
			if err != nil {
				errs <- err
			}
		})
	}
	// Claimers on both stores: every dependent they get must find its
	// dependencies succeeded.
	stop := make(chan struct{})
	var cw sync.WaitGroup
	for i, s := range stores {
		cw.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rs, err := s.ClaimRuns(t.Context(), muster.ClaimParams{Server: fmt.Sprintf("c%d", i), Limit: 5, LeaseTTL: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				for _, r := range rs {
					switch r.JobID {
					case after.Job.ID:
						if j, err := s.GetJob(t.Context(), dep.Job.ID); err != nil || j.Counts[muster.RunSucceeded] != n {
							errs <- fmt.Errorf("job %d's run claimed while its dependency has %v (%v)", r.JobID, j.Counts, err)
						}
					case each.Job.ID:
						if d, err := s.GetRun(t.Context(), dep.Runs[r.Node]); err != nil || d.State != muster.RunSucceeded {
							errs <- fmt.Errorf("run %d on %s claimed while its dependency is %s (%v)", r.ID, r.Node, d.State, err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	cw.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for _, id := range append([]int64{after.Runs["late"]}, each.Runs["n00"], each.Runs[ts[n-1]]) {
		if r := e.run(id); r.State != muster.RunPending && r.State != muster.RunRunning {
			t.Fatalf("dependent run %d is %s after every dependency succeeded", id, r.State)
		}
	}
	if rs := e.runs(muster.RunFilter{States: []muster.RunState{muster.RunWaiting, muster.RunBlocked}}); len(rs) != 0 {
		t.Fatalf("%d dependents still wait: %+v", len(rs), rs[0])
	}
}

// RunShared runs the dependency checks that need two stores (two servers)
// on one database: concurrent completions and claims through both never
// start a dependent early, and never leave one waiting. open returns the
// two stores, both built with opts.
func RunShared(t *testing.T, open func(t *testing.T, opts ...muster.StoreOption) (muster.Store, muster.Store)) {
	clk := NewClock()
	a, b := open(t, muster.WithNow(clk.Now))
	depsConcurrent(t, a, b, clk)
}
