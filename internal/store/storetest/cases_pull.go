package storetest

// cases_pull.go: pull runs, on the same queue as push runs. Servers claim
// push runs (ClaimRuns), a node's agent its own pull runs (ClaimNodeRun),
// and the database keeps one running run per node across both.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/muster-run/muster"
)

// agentTTL is the lease the agents' claims take in these cases.
const agentTTL = 30 * time.Second

func owner(certname string) string { return "agent:" + certname }

func (e *env) pull(targets []string, mod func(*muster.Job)) muster.SubmitResult {
	e.t.Helper()
	j := muster.Job{Kind: muster.JobPull, Targets: targets, Spec: json.RawMessage(`{}`)}
	if mod != nil {
		mod(&j)
	}
	return e.submit(j)
}

// claimNode claims certname's next pull run and checks whether it got one.
func (e *env) claimNode(certname string, want bool) muster.Run {
	e.t.Helper()
	r, ok, err := e.s.ClaimNodeRun(e.ctx, muster.NodeClaim{Certname: certname, Owner: owner(certname), LeaseTTL: agentTTL, Now: e.clk.Now()})
	if err != nil || ok != want {
		e.t.Fatalf("ClaimNodeRun(%s) = %+v, %v, %v; want a run: %v", certname, r, ok, err, want)
	}
	return r
}

func testPullNotClaimedByServers(e *env) {
	e.signedNodes("p1", "p2")
	pulls := e.pull([]string{"p1", "p2"}, func(j *muster.Job) { j.Priority = 9 })
	if err := e.s.BumpJob(e.ctx, pulls.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	e.submit(muster.Job{Targets: []string{"a", "b"}})
	e.wantNodes(e.claim("s", 10, 0), "a", "b")
	if more := e.claim("s", 10, 0); len(more) != 0 {
		e.t.Fatalf("a server claimed %v", nodes(more))
	}
	// The exact path: a window of the ready order that holds too few nodes
	// (one node's deep backlog ahead of another's run) sorts every ready run.
	for i := range 30 {
		e.submit(muster.Job{Targets: []string{"deep"}, Spec: spec(fmt.Sprint(i)), Priority: 1})
	}
	e.submit(muster.Job{Targets: []string{"c"}})
	e.pull([]string{"p3"}, func(j *muster.Job) { j.Priority = 5 })
	e.wantNodes(e.claim("s", 2, 0), "deep", "c")
	for _, r := range e.runs(muster.RunFilter{JobID: pulls.Job.ID}) {
		if r.State != muster.RunPending || r.Kind != muster.JobPull || r.Attempt != 0 {
			e.t.Errorf("pull run after the servers' claims: %+v", r)
		}
	}
	if st := e.job(pulls.Job.ID).State(); st != muster.JobPending {
		e.t.Errorf("pull job state %s, want pending", st)
	}
}

func testClaimNodeRun(e *env) {
	e.signedNodes("web1", "web2", "web3")
	pulls := e.pull([]string{"web1", "web2"}, nil)
	push := e.submit(muster.Job{Targets: []string{"web1"}})
	e.clk.Advance(time.Second)

	// Only the node's own pull run, under the agent's lease.
	r := e.claimNode("web2", true)
	if r.ID != pulls.Runs["web2"] || r.Node != "web2" || r.Kind != muster.JobPull || r.State != muster.RunRunning ||
		r.Attempt != 1 || r.LeaseOwner != "agent:web2" || !r.LeaseExpires.Equal(e.clk.Now().Add(agentTTL)) ||
		!r.StartedAt.Equal(e.clk.Now()) || string(r.Spec) != `{}` || r.JobID != pulls.Job.ID {
		e.t.Fatalf("claimed %+v", r)
	}
	if n := e.node("web2"); n.LastRunID != r.ID || !n.LastRunAt.Equal(e.clk.Now()) || !n.LastCheckIn.Equal(e.clk.Now()) {
		e.t.Errorf("web2 after its claim: %+v", n)
	}
	e.claimNode("web2", false) // one running run per node
	e.claimNode("web3", false) // nothing ready
	if e.run(pulls.Runs["web1"]).State != muster.RunPending {
		e.t.Fatal("web2's claim took web1's run")
	}

	// A running push run keeps the node's agent waiting, and the other way
	// round.
	pr := e.claim("s1", 10, 0)
	e.wantNodes(pr, "web1")
	if pr[0].ID != push.Runs["web1"] {
		e.t.Fatalf("the server claimed run %d, want the push run %d", pr[0].ID, push.Runs["web1"])
	}
	e.claimNode("web1", false)
	e.complete(pr[0], muster.OutcomeSucceeded)
	r1 := e.claimNode("web1", true)
	if r1.ID != pulls.Runs["web1"] {
		e.t.Fatalf("web1 claimed run %d, want its pull run %d", r1.ID, pulls.Runs["web1"])
	}
	e.submit(muster.Job{Targets: []string{"web1"}, Spec: spec("later")})
	if rs := e.claim("s1", 10, 0); len(rs) != 0 {
		e.t.Fatalf("a server claimed %v while web1's agent runs", nodes(rs))
	}
	if h, ok := e.s.(interface{ DB() *sql.DB }); ok {
		waiting := e.runs(muster.RunFilter{Node: "web1", States: []muster.RunState{muster.RunPending}})
		_, err := h.DB().ExecContext(e.ctx, `UPDATE runs SET state='running' WHERE id=$1`, waiting[0].ID)
		wantUnique(e.t, "UPDATE of a push run beside a running pull run", err)
	}

	// The node's best ready run first: bumped, then priority, then oldest.
	low := e.pull([]string{"web3"}, func(j *muster.Job) { j.Spec = json.RawMessage(`{"command":"low"}`) })
	high := e.pull([]string{"web3"}, func(j *muster.Job) {
		j.Spec, j.Priority = json.RawMessage(`{"command":"high","success_codes":[0,2]}`), 3
	})
	later := e.pull([]string{"web3"}, func(j *muster.Job) {
		j.Spec, j.Priority, j.RunAt = json.RawMessage(`{"command":"later"}`), 9, e.clk.Now().Add(time.Hour)
	})
	var order []int64
	for range 2 {
		r := e.claimNode("web3", true)
		order = append(order, r.ID)
		e.complete(r, muster.OutcomeSucceeded)
	}
	if want := []int64{high.Runs["web3"], low.Runs["web3"]}; !slices.Equal(order, want) {
		e.t.Fatalf("web3's claims took runs %v, want %v", order, want)
	}
	e.claimNode("web3", false) // the scheduled one is not due
	e.clk.Advance(time.Hour)
	if r := e.claimNode("web3", true); r.ID != later.Runs["web3"] || string(r.Spec) != `{"command":"later"}` {
		e.t.Fatalf("the due scheduled run: %+v", r)
	}

	bad := []struct {
		name            string
		certname, owner string
		ttl             time.Duration
		want            error
		prepare         func()
	}{
		{"an unknown node", "nobody", "agent:nobody", agentTTL, muster.ErrNotFound, nil},
		{"no owner", "web2", "", agentTTL, muster.ErrInvalid, nil},
		{"no lease", "web2", "agent:web2", 0, muster.ErrInvalid, nil},
		{"a pending node", "new1", "agent:new1", agentTTL, muster.ErrInvalid, func() { e.enroll("fleet secret", "new1") }},
		{"a revoked node", "web2", "agent:web2", agentTTL, muster.ErrInvalid, func() {
			e.pull([]string{"web2"}, func(j *muster.Job) { j.Spec = json.RawMessage(`{"command":"x"}`) })
			if _, err := e.s.RevokeNode(e.ctx, "web2"); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tc := range bad {
		if tc.prepare != nil {
			tc.prepare()
		}
		if _, ok, err := e.s.ClaimNodeRun(e.ctx, muster.NodeClaim{Certname: tc.certname, Owner: tc.owner, LeaseTTL: tc.ttl, Now: e.clk.Now()}); ok || !errors.Is(err, tc.want) {
			e.t.Errorf("ClaimNodeRun of %s = %v, %v; want %v", tc.name, ok, err, tc.want)
		}
	}
}

func testPullLease(e *env) {
	e.signedNodes("web1", "web2")
	res := e.pull([]string{"web1", "web2"}, func(j *muster.Job) { j.MaxRetries = 1 })
	r1 := e.claimNode("web1", true)
	r2 := e.claimNode("web2", true)

	// The agent's lease is a lease like a server's: Heartbeat by owner
	// extends it, CompleteRuns by owner and attempt ends it.
	e.clk.Advance(20 * time.Second)
	ids, err := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: owner("web1"), LeaseTTL: agentTTL})
	if err != nil || !slices.Equal(ids, []int64{r1.ID}) {
		e.t.Fatalf("Heartbeat(agent:web1) = %v, %v; want [%d]", ids, err, r1.ID)
	}
	if got := e.run(r1.ID); !got.LeaseExpires.Equal(e.clk.Now().Add(agentTTL)) {
		e.t.Fatalf("lease after the heartbeat: %v", got.LeaseExpires)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r1.ID, Server: owner("web2"), Attempt: 1,
		Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrLeaseLost) {
		e.t.Fatalf("completion by another agent: %v, want ErrLeaseLost", err)
	}
	report := muster.CompleteParams{RunID: r1.ID, Server: owner("web1"), Attempt: 1, Outcome: muster.OutcomeSucceeded,
		ExitCode: 2, Result: json.RawMessage(`{"stdout":"changed"}`)}
	for range 2 { // a repeated report changes nothing
		done, err := muster.CompleteRun(e.ctx, e.s, report)
		if err != nil || done.State != muster.RunSucceeded || done.ExitCode != 2 || done.LeaseOwner != "" {
			e.t.Fatalf("the agent's report: %+v, %v", done, err)
		}
	}

	// An agent that stops reporting loses its lease to the rescuer; the
	// run waits for its agent again, never for a server.
	e.clk.Advance(agentTTL + time.Millisecond)
	ids, err = e.s.RescueExpired(e.ctx)
	if err != nil || !slices.Equal(ids, []int64{r2.ID}) {
		e.t.Fatalf("RescueExpired = %v, %v; want [%d]", ids, err, r2.ID)
	}
	if got := e.run(r2.ID); got.State != muster.RunPending || got.LeaseOwner != "" {
		e.t.Fatalf("rescued run: %+v", got)
	}
	if rs := e.claim("s1", 10, 0); len(rs) != 0 {
		e.t.Fatalf("a server claimed the rescued pull run: %+v", rs)
	}
	again := e.claimNode("web2", true)
	if again.ID != r2.ID || again.Attempt != 2 {
		e.t.Fatalf("reclaimed %+v, want run %d attempt 2", again, r2.ID)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r2.ID, Server: owner("web2"), Attempt: 1,
		Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrLeaseLost) {
		e.t.Fatalf("a report of the lost attempt: %v, want ErrLeaseLost", err)
	}
	// Its last attempt's failure is final.
	failed := e.complete(again, muster.OutcomeFailed)
	if failed.State != muster.RunFailed {
		e.t.Fatalf("a failed second attempt of a run with one retry: %+v", failed)
	}
	if j := e.job(res.Job.ID); j.State() != muster.JobFailed {
		e.t.Fatalf("pull job state %s, want failed", j.State())
	}
}

func testPullRetry(e *env) {
	e.signedNodes("web1")
	e.pull([]string{"web1"}, func(j *muster.Job) { j.MaxRetries = 1 })
	r := e.claimNode("web1", true)
	if got := e.complete(r, muster.OutcomeFailed); got.State != muster.RunRetrying {
		e.t.Fatalf("first failure: %+v", got)
	}
	e.claimNode("web1", false) // backing off
	e.clk.Advance(10 * time.Second)
	if got := e.claimNode("web1", true); got.ID != r.ID || got.Attempt != 2 {
		e.t.Fatalf("retry: %+v", got)
	}
}

func testPullCoalescing(e *env) {
	e.signedNodes("web1", "web2")
	first := e.pull([]string{"web1"}, nil)
	second := e.pull([]string{"web1", "web2"}, func(j *muster.Job) { j.Priority = 4 })
	if !slices.Equal(second.Coalesced, []string{"web1"}) || second.Runs["web1"] != first.Runs["web1"] {
		e.t.Fatalf("second pull submission: %+v, want web1 coalesced into run %d", second, first.Runs["web1"])
	}
	if got := e.runs(muster.RunFilter{Node: "web1"}); len(got) != 1 || got[0].Priority != 4 {
		e.t.Fatalf("web1's runs: %+v", got)
	}
	// A pull run never coalesces with a push run of the node.
	push := e.submit(muster.Job{Targets: []string{"web1"}, Spec: json.RawMessage(`{}`)})
	if len(push.Coalesced) != 0 {
		e.t.Fatalf("a push job coalesced into a pull run: %+v", push)
	}
	r := e.claimNode("web1", true)
	e.complete(r, muster.OutcomeSucceeded)
	if st := e.job(first.Job.ID).State(); st != muster.JobSucceeded {
		e.t.Errorf("first pull job: %s, want succeeded", st)
	}
	if j := e.job(second.Job.ID); j.Counts[muster.RunSucceeded] != 1 || j.Counts[muster.RunPending] != 1 {
		e.t.Errorf("second pull job's runs: %v, want web1's succeeded and web2's pending", j.Counts)
	}
}
