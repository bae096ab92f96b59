package storetest

// cases_change.go: change-driven continuous jobs (Job.Fingerprint,
// OnChange, FactsUsed, DependsOnResult) and muster.Changes.

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// completePrint completes r as succeeded with a fingerprint.
func (e *env) completePrint(r muster.Run, print string) muster.CompleteResult {
	e.t.Helper()
	res, err := e.s.CompleteRuns(e.ctx, []muster.CompleteParams{{RunID: r.ID, Server: r.LeaseOwner, Attempt: r.Attempt,
		Outcome: muster.OutcomeSucceeded, Fingerprint: print}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		e.t.Fatalf("CompleteRuns(%d): %v %+v", r.ID, err, res)
	}
	return res[0]
}

// claimOne claims every ready run and returns the one on node of job
// (failing if there is none).
func (e *env) claimOf(job int64, node string) muster.Run {
	e.t.Helper()
	for _, r := range e.claim("s", 100, 0) {
		if r.JobID == job && r.Node == node {
			return r
		}
	}
	e.t.Fatalf("no run of job %d on %s was ready", job, node)
	return muster.Run{}
}

// pendingOf returns the pending or scheduled runs on node, by job.
func (e *env) pendingOf(node string) map[int64][]muster.Run {
	e.t.Helper()
	out := map[int64][]muster.Run{}
	for _, r := range e.runs(muster.RunFilter{Node: node, States: []muster.RunState{muster.RunPending, muster.RunScheduled}}) {
		out[r.JobID] = append(out[r.JobID], r)
	}
	return out
}

func testFingerprintChange(e *env) {
	act := json.RawMessage(`{"command":"echo changed"}`)
	j := e.submit(muster.Job{Targets: []string{"n1", "n2"}, Spec: spec("cat /etc/x"), Continuous: true,
		Fingerprint: "stdout", OnChange: &muster.OnChange{Kind: muster.JobCommand, Spec: act}})
	got := e.job(j.Job.ID)
	if got.Fingerprint != "stdout" || got.OnChange == nil || got.OnChange.Kind != muster.JobCommand ||
		string(got.OnChange.Spec) != string(act) {
		e.t.Fatalf("stored job: fingerprint %q on-change %+v", got.Fingerprint, got.OnChange)
	}
	runs := e.claimAll("s")
	if runs["n1"].Fingerprint != "stdout" {
		e.t.Fatalf("claimed run's fingerprint spec %q, want stdout", runs["n1"].Fingerprint)
	}
	onChange := func(node string) []muster.Run {
		var out []muster.Run
		for _, r := range e.runs(muster.RunFilter{Node: node}) {
			if r.JobID != j.Job.ID {
				out = append(out, r)
			}
		}
		return out
	}
	// The first fingerprint is a change: there was no previous result.
	c1 := e.completePrint(runs["n1"], "A").Change
	c2 := e.completePrint(runs["n2"], "B").Change
	if c1 == nil || c1.Previous != "" || c1.Current != "A" || c1.OnChangeJob == 0 || c2 == nil || c2.OnChangeJob == c1.OnChangeJob {
		e.t.Fatalf("first fingerprints: %+v %+v", c1, c2)
	}
	action := e.job(c1.OnChangeJob)
	if action.CreatedBy != muster.OnChangeCreator(j.Job.ID) || !slices.Equal(action.Targets, []string{"n1"}) ||
		action.Kind != muster.JobCommand || string(action.Spec) != string(act) {
		e.t.Fatalf("on-change job %+v", action)
	}
	// The action goes to the front of the queue: before the node's next run.
	next := e.claimAll("s")
	if next["n1"].JobID != c1.OnChangeJob || next["n2"].JobID != c2.OnChangeJob {
		e.t.Fatalf("claimed %+v first, want the on-change actions", next)
	}
	e.complete(next["n1"], muster.OutcomeSucceeded)
	e.complete(next["n2"], muster.OutcomeSucceeded)

	// Unchanged: nothing is enqueued.
	runs = e.claimAll("s")
	if c := e.completePrint(runs["n1"], "A").Change; c != nil {
		e.t.Fatalf("an unchanged fingerprint was a change: %+v", c)
	}
	if n := len(onChange("n1")); n != 1 {
		e.t.Fatalf("n1 has %d runs of other jobs after an unchanged result, want 1", n)
	}
	// Changed on n2 only: exactly n2's action is enqueued.
	c := e.completePrint(runs["n2"], "B2").Change
	if c == nil || c.Previous != "B" || c.Current != "B2" || c.Node != "n2" {
		e.t.Fatalf("changed fingerprint: %+v", c)
	}
	if n1, n2 := len(onChange("n1")), len(onChange("n2")); n1 != 1 || n2 != 2 {
		e.t.Fatalf("runs of actions: n1 %d (want 1), n2 %d (want 2)", n1, n2)
	}
	// A failed run and a run without a fingerprint change nothing.
	runs = e.claimAll("s")
	e.complete(runs["n1"], muster.OutcomeFailed)
	fs, err := e.s.ListFingerprints(e.ctx, j.Job.ID)
	if err != nil || len(fs) != 2 || fs[0].Node != "n1" || fs[0].Value != "A" || fs[0].Changes != 1 ||
		fs[1].Value != "B2" || fs[1].Changes != 2 {
		e.t.Fatalf("ListFingerprints: %+v %v", fs, err)
	}
	// Each change is audited.
	audit, err := e.s.ListAudit(e.ctx, muster.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	changes := 0
	for _, a := range audit {
		if a.Action == "job.result-changed" {
			changes++
			if !strings.HasPrefix(a.Object, "job/") || !strings.Contains(a.Detail, `"current"`) {
				e.t.Fatalf("audit entry %+v", a)
			}
		}
	}
	if changes != 3 {
		e.t.Fatalf("%d result changes audited, want 3", changes)
	}
}

func testFingerprintAgentRun(e *env) {
	j := e.submit(muster.Job{Targets: []string{"n1"}, Spec: spec("x"), Continuous: true, Fingerprint: "json:version",
		OnChange: &muster.OnChange{Kind: muster.JobPull, Spec: json.RawMessage(`{}`)}})
	c := e.completePrint(e.claimOf(j.Job.ID, "n1"), "v1").Change
	if c == nil || c.OnChangeKind != muster.JobPull {
		e.t.Fatalf("change %+v", c)
	}
	// The pull run waits for the node's agent, not a server.
	r := e.claimAll("s")["n1"]
	if r.JobID != j.Job.ID {
		e.t.Fatalf("claimed job %d's run on n1, want the continuous job's next run (a server never claims the agent-run)", r.JobID)
	}
	// Coalescing: a second change before the agent ran joins the same run.
	c2 := e.completePrint(r, "v2").Change
	pulls := e.runs(muster.RunFilter{Node: "n1", States: []muster.RunState{muster.RunPending}})
	n := 0
	for _, p := range pulls {
		if p.Kind == muster.JobPull {
			n++
		}
	}
	if c2 == nil || n != 1 {
		e.t.Fatalf("after two changes: %d pending pull runs on n1 (want 1), change %+v", n, c2)
	}
}

func testFingerprintRefused(e *env) {
	for _, j := range []muster.Job{
		{Targets: []string{"n"}, Fingerprint: "stdout"},                               // not continuous
		{Targets: []string{"n"}, Continuous: true, Fingerprint: "sha1"},               // unknown kind
		{Targets: []string{"n"}, Continuous: true, Fingerprint: "file:relative/path"}, // not absolute
		{Targets: []string{"n"}, Continuous: true, OnChange: &muster.OnChange{Kind: muster.JobCommand, Spec: spec("x")}},
		{Targets: []string{"n"}, Continuous: true, FactsUsed: []string{"os..release"}},
		{Targets: []string{"n"}, Continuous: true, DependsOnResult: 999999},
	} {
		j.Kind, j.Spec = muster.JobCommand, spec("x")
		if _, err := e.s.SubmitJob(e.ctx, j); !errors.Is(err, muster.ErrInvalid) {
			e.t.Fatalf("SubmitJob(%+v) = %v, want ErrInvalid", j, err)
		}
	}
}

func testFactsChangedBumpsNode(e *env) {
	other := e.submit(muster.Job{Targets: []string{"n1", "n2"}, Spec: spec("other"), Continuous: true, Priority: 5})
	j := e.submit(muster.Job{Targets: []string{"n1", "n2"}, Spec: spec("facts"), Continuous: true,
		FactsUsed: []string{"os.release", "networking.ip"}})
	if got := e.job(j.Job.ID).FactsUsed; !slices.Equal(got, []string{"os.release", "networking.ip"}) {
		e.t.Fatalf("stored facts_used %v", got)
	}
	// A fact it does not use: nothing moves.
	if jobs, err := e.s.FactsChanged(e.ctx, "n1", []string{"uptime", "os.family"}); err != nil || len(jobs) != 0 {
		e.t.Fatalf("FactsChanged(uptime) = %v, %v", jobs, err)
	}
	if r := e.claimAll("s"); r["n1"].JobID != other.Job.ID || r["n2"].JobID != other.Job.ID {
		e.t.Fatalf("without a bump the higher priority goes first: %+v", r)
	} else {
		e.complete(r["n1"], muster.OutcomeSucceeded)
		e.complete(r["n2"], muster.OutcomeSucceeded)
	}
	// other's next runs are pending again, at priority 5; a used fact
	// (or the object holding it) changing on n1 moves n1's run only.
	e.clk.Advance(time.Second)
	jobs, err := e.s.FactsChanged(e.ctx, "n1", []string{"os"})
	if err != nil || !slices.Equal(jobs, []int64{j.Job.ID}) {
		e.t.Fatalf("FactsChanged(os) = %v, %v; want [%d]", jobs, err, j.Job.ID)
	}
	r := e.claimAll("s")
	if r["n1"].JobID != j.Job.ID || r["n2"].JobID != other.Job.ID {
		e.t.Fatalf("after n1's facts changed: n1 ran job %d, n2 job %d; want %d and %d",
			r["n1"].JobID, r["n2"].JobID, j.Job.ID, other.Job.ID)
	}
	// Coalescing holds: a node never has two waiting runs of one job.
	e.complete(r["n1"], muster.OutcomeSucceeded)
	e.complete(r["n2"], muster.OutcomeSucceeded)
	for range 3 {
		if _, err := e.s.FactsChanged(e.ctx, "n1", []string{"networking.ip"}); err != nil {
			e.t.Fatal(err)
		}
	}
	for job, rs := range e.pendingOf("n1") {
		if len(rs) != 1 {
			e.t.Fatalf("n1 has %d waiting runs of job %d", len(rs), job)
		}
	}
	// A cancelled job is never bumped.
	if _, err := e.s.CancelJob(e.ctx, j.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	if jobs, err := e.s.FactsChanged(e.ctx, "n2", []string{"os.release"}); err != nil || len(jobs) != 0 {
		e.t.Fatalf("FactsChanged on a cancelled job = %v, %v", jobs, err)
	}
}

func testDependsOnResult(e *env) {
	src := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("export"), Continuous: true, Fingerprint: "stdout"})
	filler := e.submit(muster.Job{Targets: []string{"b1", "b2"}, Spec: spec("filler"), Continuous: true, Priority: 5})
	dep := e.submit(muster.Job{Targets: []string{"b1", "b2"}, Spec: spec("consume"), Continuous: true,
		DependsOnResult: src.Job.ID})
	if e.job(dep.Job.ID).DependsOnResult != src.Job.ID {
		e.t.Fatalf("depends_on_result not stored")
	}
	first := e.claimAll("s")
	if first["b1"].JobID != filler.Job.ID {
		e.t.Fatalf("b1 ran job %d first, want the filler %d", first["b1"].JobID, filler.Job.ID)
	}
	e.complete(first["b1"], muster.OutcomeSucceeded)
	e.complete(first["b2"], muster.OutcomeSucceeded)
	// a's result changes: every node of the dependent job moves ahead of
	// the higher-priority filler.
	c := e.completePrint(first["a"], "exported-1").Change
	if c == nil || c.Bumped != 2 {
		e.t.Fatalf("change %+v, want 2 runs bumped", c)
	}
	r := e.claimAll("s")
	if r["b1"].JobID != dep.Job.ID || r["b2"].JobID != dep.Job.ID {
		e.t.Fatalf("after a's result changed: b1 ran %d, b2 %d; want %d", r["b1"].JobID, r["b2"].JobID, dep.Job.ID)
	}
	// Unchanged: no bump.
	e.complete(r["b1"], muster.OutcomeSucceeded)
	e.complete(r["b2"], muster.OutcomeSucceeded)
	if c := e.completePrint(r["a"], "exported-1").Change; c != nil {
		e.t.Fatalf("unchanged result: %+v", c)
	}
	if r := e.claimAll("s"); r["b1"].JobID != filler.Job.ID {
		e.t.Fatalf("without a change b1 ran %d, want the filler", r["b1"].JobID)
	}
}
