package storetest

// cases_cancel.go: cancelling jobs, waiting and running runs.

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

func (e *env) cancel(id int64) muster.CancelResult {
	e.t.Helper()
	res, err := e.s.CancelJob(e.ctx, id)
	if err != nil {
		e.t.Fatalf("CancelJob(%d): %v", id, err)
	}
	return res
}

func (e *env) cancelRequested(server string, want ...int64) {
	e.t.Helper()
	ids, err := e.s.CancelRequested(e.ctx, server)
	if err != nil || !slices.Equal(ids, want) {
		e.t.Fatalf("CancelRequested(%s) = %v, %v; want %v", server, ids, err, want)
	}
}

func testCancel(e *env) {
	res := e.submit(muster.Job{Targets: []string{"a", "b", "c"}})
	rs := e.claim("s", 1, 0)
	if got := e.cancel(res.Job.ID); got != (muster.CancelResult{Cancelled: 2, Stopping: 1}) {
		e.t.Fatalf("CancelJob = %+v; want 2 cancelled, 1 stopping", got)
	}
	if more := e.claim("s", 10, 0); len(more) != 0 {
		e.t.Fatalf("claimed cancelled runs %v", nodes(more))
	}
	// The running one finished before its server heard of the cancel: it
	// stays succeeded, the truth.
	if r := e.complete(rs[0], muster.OutcomeSucceeded); r.State != muster.RunSucceeded {
		e.t.Fatalf("a run that succeeded after its cancel was requested: %s, want succeeded", r.State)
	}
	j := e.job(res.Job.ID)
	if j.State() != muster.JobCancelled || j.Counts[muster.RunCancelled] != 2 || j.Counts[muster.RunSucceeded] != 1 || j.CancelledAt.IsZero() {
		e.t.Fatalf("job %s %v", j.State(), j.Counts)
	}
	if got := e.cancel(res.Job.ID); got != (muster.CancelResult{}) {
		e.t.Fatalf("second cancel = %+v", got)
	}
}

func testCancelHandsOver(e *env) {
	j1 := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("x")})
	j2 := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("x"), Priority: 3})
	if got := e.cancel(j1.Job.ID); got != (muster.CancelResult{}) {
		e.t.Fatalf("CancelJob = %+v; want nothing cancelled (the run still serves job 2)", got)
	}
	r := e.run(j1.Runs["a"])
	if r.State != muster.RunPending || r.JobID != j2.Job.ID {
		e.t.Fatalf("shared run after cancel: %+v", r)
	}
	if got := e.cancel(j2.Job.ID); got != (muster.CancelResult{Cancelled: 1}) {
		e.t.Fatalf("CancelJob(j2) = %+v; want 1 cancelled", got)
	}
}

// testCancelRunning: cancelling a job asks only its unshared running runs
// to stop, and CancelRequested tells each server its own.
func testCancelRunning(e *env) {
	if _, err := e.s.CancelRequested(e.ctx, ""); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("CancelRequested without a server = %v, want ErrInvalid", err)
	}
	j1 := e.submit(muster.Job{Targets: []string{"a", "b", "d"}, Spec: spec("x"), MaxRetries: 2})
	j2 := e.submit(muster.Job{Targets: []string{"b"}, Spec: spec("x")}) // coalesced into j1's run on b
	other := e.submit(muster.Job{Targets: []string{"e"}, Spec: spec("y"), Priority: 1})
	if !slices.Equal(j2.Coalesced, []string{"b"}) {
		e.t.Fatalf("job 2 did not share job 1's run on b: %+v", j2)
	}
	e.wantNodes(e.claim("s2", 1, 0), "e")
	a := e.claim("s1", 1, 0)
	e.wantNodes(a, "a")
	b := e.claim("s2", 1, 0)
	e.wantNodes(b, "b") // d still waits
	e.cancelRequested("s1")

	if got := e.cancel(j1.Job.ID); got != (muster.CancelResult{Cancelled: 1, Stopping: 1}) {
		e.t.Fatalf("CancelJob(j1) = %+v; want d cancelled and a stopping (b still serves job 2)", got)
	}
	e.cancelRequested("s1", a[0].ID)
	e.cancelRequested("s2") // b serves a live job; e is another job's
	if r := e.run(b[0].ID); r.State != muster.RunRunning || r.JobID != j2.Job.ID {
		e.t.Fatalf("shared running run after job 1's cancel: %s, job %d; want running for job %d", r.State, r.JobID, j2.Job.ID)
	}
	if r := e.run(other.Runs["e"]); r.State != muster.RunRunning {
		e.t.Fatalf("another job's run: %s", r.State)
	}
	// Once its last live job is cancelled, the shared run is asked to stop.
	if got := e.cancel(j2.Job.ID); got != (muster.CancelResult{Stopping: 1}) {
		e.t.Fatalf("CancelJob(j2) = %+v; want b stopping", got)
	}
	e.cancelRequested("s2", b[0].ID)
	if got := e.cancel(j1.Job.ID); got != (muster.CancelResult{}) {
		e.t.Fatalf("cancelling job 1 again = %+v", got)
	}
	// The stopped attempt fails: the run ends cancelled with the reported
	// error, without a retry though its job allows two.
	e.clk.Advance(time.Second)
	res, err := e.s.CompleteRuns(e.ctx, []muster.CompleteParams{{RunID: a[0].ID, Server: "s1", Attempt: 1,
		Outcome: muster.OutcomeFailed, ExitCode: -1, Error: "muster/cancelled: stopped"}})
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("completing the stopped run: %v, %v", err, res)
	}
	r := e.run(a[0].ID)
	if r.State != muster.RunCancelled || r.Error != "muster/cancelled: stopped" || r.ExitCode != -1 ||
		!r.FinishedAt.Equal(e.clk.Now()) || r.LeaseOwner != "" || res[0].Run.State != muster.RunCancelled {
		e.t.Fatalf("stopped run: %+v", r)
	}
	e.cancelRequested("s1")
	e.clk.Advance(time.Hour)
	if rs := e.claim("s1", 10, 0); len(rs) != 0 {
		e.t.Fatalf("claimed %v after the cancel", nodes(rs))
	}
	if j := e.job(j1.Job.ID); j.State() != muster.JobCancelled || j.Counts[muster.RunCancelled] != 2 {
		e.t.Fatalf("job 1: %s %v", j.State(), j.Counts)
	}
}

// testCancelledCompletion: a failed attempt of a run asked to stop ends
// cancelled (a continuous job does not repeat it); a succeeded one stays
// succeeded; repeating the report changes nothing.
func testCancelledCompletion(e *env) {
	loop := e.submit(muster.Job{Targets: []string{"a", "b"}, Continuous: true, MaxRetries: 5})
	rs := e.claim("s", 10, 0)
	e.wantNodes(rs, "a", "b")
	if got := e.cancel(loop.Job.ID); got != (muster.CancelResult{Stopping: 2}) {
		e.t.Fatalf("CancelJob = %+v; want 2 stopping", got)
	}
	e.cancelRequested("s", rs[0].ID, rs[1].ID)
	e.clk.Advance(time.Second)
	ps := []muster.CompleteParams{
		{RunID: rs[0].ID, Server: "s", Attempt: 1, Outcome: muster.OutcomeFailed, Error: "muster/cancelled: job stopped"},
		{RunID: rs[1].ID, Server: "s", Attempt: 1, Outcome: muster.OutcomeSucceeded},
	}
	res, err := e.s.CompleteRuns(e.ctx, ps)
	if err != nil {
		e.t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Run.State != muster.RunCancelled || res[0].Run.Error != "muster/cancelled: job stopped" {
		e.t.Errorf("failed attempt after a cancel request: %+v", res[0])
	}
	if res[1].Err != nil || res[1].Run.State != muster.RunSucceeded {
		e.t.Errorf("succeeded attempt after a cancel request: %+v", res[1])
	}
	if again := e.complete(rs[0], muster.OutcomeFailed); again.State != muster.RunCancelled || !again.FinishedAt.Equal(res[0].Run.FinishedAt) {
		e.t.Errorf("repeated report: %+v", again)
	}
	if got := e.runs(muster.RunFilter{JobID: loop.Job.ID}); len(got) != 2 {
		e.t.Errorf("the cancelled loop has %d runs, want 2 (no repeat)", len(got))
	}
	e.cancelRequested("s")
	if j := e.job(loop.Job.ID); j.State() != muster.JobCancelled || j.Counts[muster.RunCancelled] != 1 || j.Counts[muster.RunSucceeded] != 1 {
		e.t.Errorf("job %s %v", j.State(), j.Counts)
	}
}

// testCancelRescueAndRelease: a run asked to stop whose lease expires, or
// whose server gives it back, ends cancelled instead of being requeued.
func testCancelRescueAndRelease(e *env) {
	stopped := e.submit(muster.Job{Targets: []string{"a", "b"}, Spec: spec("x"), MaxRetries: 3})
	live := e.submit(muster.Job{Targets: []string{"c"}, Spec: spec("y")})
	rs := e.claim("s1", 10, 0)
	e.wantNodes(rs, "a", "b", "c")
	e.cancel(stopped.Job.ID)
	// s1 releases b (say, at the end of its grace period), then dies.
	if ids, err := e.s.ReleaseRuns(e.ctx, "s1", []int64{rs[1].ID}); err != nil || !slices.Equal(ids, []int64{rs[1].ID}) {
		e.t.Fatalf("ReleaseRuns = %v, %v", ids, err)
	}
	if r := e.run(rs[1].ID); r.State != muster.RunCancelled || r.Attempt != 1 || r.LeaseOwner != "" || r.FinishedAt.IsZero() ||
		!strings.Contains(r.Error, muster.KindCancelled) {
		e.t.Fatalf("released run asked to stop: %+v", r)
	}
	e.clk.Advance(31 * time.Second)
	ids, err := e.s.RescueExpired(e.ctx)
	if err != nil || !slices.Equal(ids, []int64{rs[0].ID, rs[2].ID}) {
		e.t.Fatalf("RescueExpired = %v, %v; want a and c", ids, err)
	}
	r := e.run(rs[0].ID)
	if r.State != muster.RunCancelled || r.LeaseOwner != "" || !r.FinishedAt.Equal(e.clk.Now()) ||
		!strings.Contains(r.Error, "lease") || !strings.Contains(r.Error, muster.KindCancelled) {
		e.t.Fatalf("rescued run asked to stop: %+v", r)
	}
	if r := e.run(live.Runs["c"]); r.State != muster.RunPending {
		e.t.Fatalf("rescued run of a live job: %s, want pending", r.State)
	}
	e.cancelRequested("s1")
	e.wantNodes(e.claim("s2", 10, 0), "c")
	// The attempt's end is recorded: a late report changes nothing.
	if got, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: rs[0].ID, Server: "s1", Attempt: 1,
		Outcome: muster.OutcomeSucceeded}); err != nil || got.State != muster.RunCancelled {
		e.t.Fatalf("late report of the rescued run: %s, %v; want it still cancelled", got.State, err)
	}
	if j := e.job(stopped.Job.ID); j.State() != muster.JobCancelled || j.Counts[muster.RunCancelled] != 2 {
		e.t.Fatalf("job %s %v", j.State(), j.Counts)
	}
}
