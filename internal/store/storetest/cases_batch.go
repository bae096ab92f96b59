package storetest

// cases_batch.go: batched completion, released leases and Wake.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

func testCompleteRunsBatch(e *env) {
	if res, err := e.s.CompleteRuns(e.ctx, nil); err != nil || len(res) != 0 {
		e.t.Fatalf("CompleteRuns(nil) = %v, %v", res, err)
	}
	e.submit(muster.Job{Targets: []string{"a", "b", "c", "d"}, MaxRetries: 1})
	loop := e.submit(muster.Job{Targets: []string{"e"}, Continuous: true})
	rs := e.claim("s1", 10, 0)
	e.wantNodes(rs, "a", "b", "c", "d", "e")
	a, b, c, d, loopRun := rs[0], rs[1], rs[2], rs[3], rs[4]
	e.clk.Advance(time.Second)
	done := func(r muster.Run, o muster.Outcome) muster.CompleteParams {
		return muster.CompleteParams{RunID: r.ID, Server: r.LeaseOwner, Attempt: r.Attempt, Outcome: o}
	}
	cases := []struct {
		name  string
		p     muster.CompleteParams
		err   error // nil: success, with state
		state muster.RunState
	}{
		{"success", done(a, muster.OutcomeSucceeded), nil, muster.RunSucceeded},
		{"failure with a retry left", done(b, muster.OutcomeFailed), nil, muster.RunRetrying},
		{"another server", muster.CompleteParams{RunID: c.ID, Server: "s2", Attempt: 1, Outcome: muster.OutcomeSucceeded}, muster.ErrLeaseLost, ""},
		{"unknown run", muster.CompleteParams{RunID: 1 << 40, Server: "s1", Attempt: 1, Outcome: muster.OutcomeSucceeded}, muster.ErrNotFound, ""},
		{"repeat in the same batch", done(a, muster.OutcomeFailed), nil, muster.RunSucceeded},
		{"invalid outcome", muster.CompleteParams{RunID: d.ID, Server: "s1", Attempt: 1, Outcome: "maybe"}, muster.ErrInvalid, ""},
		{"invalid result", muster.CompleteParams{RunID: d.ID, Server: "s1", Attempt: 1, Outcome: muster.OutcomeSucceeded, Result: []byte("{")}, muster.ErrInvalid, ""},
		{"another attempt", muster.CompleteParams{RunID: d.ID, Server: "s1", Attempt: 2, Outcome: muster.OutcomeSucceeded}, muster.ErrLeaseLost, ""},
		{"continuous job", done(loopRun, muster.OutcomeSucceeded), nil, muster.RunSucceeded},
	}
	var ps []muster.CompleteParams
	for _, tc := range cases {
		ps = append(ps, tc.p)
	}
	res, err := e.s.CompleteRuns(e.ctx, ps)
	if err != nil || len(res) != len(cases) {
		e.t.Fatalf("CompleteRuns = %d results, %v", len(res), err)
	}
	for i, tc := range cases {
		got := res[i]
		switch {
		case tc.err != nil && !errors.Is(got.Err, tc.err):
			e.t.Errorf("%s: err %v, want %v", tc.name, got.Err, tc.err)
		case tc.err == nil && got.Err != nil:
			e.t.Errorf("%s: err %v", tc.name, got.Err)
		case tc.err == nil && (got.Run.ID != tc.p.RunID || got.Run.State != tc.state):
			e.t.Errorf("%s: run %d in state %s, want run %d in %s", tc.name, got.Run.ID, got.Run.State, tc.p.RunID, tc.state)
		}
	}
	// The batch's results are what the store now holds.
	if r := e.run(a.ID); r.State != muster.RunSucceeded || !r.FinishedAt.Equal(e.clk.Now()) || r.LeaseOwner != "" {
		e.t.Errorf("a after the batch: %+v", r)
	}
	retry := e.run(b.ID)
	if retry.State != muster.RunRetrying || !retry.RunAt.Equal(e.clk.Now().Add(7500*time.Millisecond)) || !retry.RunAt.Equal(res[1].Run.RunAt) {
		e.t.Errorf("b after the batch: %+v", retry)
	}
	for _, r := range []muster.Run{c, d} {
		if got := e.run(r.ID); got.State != muster.RunRunning || got.LeaseOwner != "s1" {
			e.t.Errorf("%s after the batch: %s held by %q, want still running on s1", r.Node, got.State, got.LeaseOwner)
		}
	}
	next := e.runs(muster.RunFilter{JobID: loop.Job.ID, States: []muster.RunState{muster.RunPending}})
	if len(next) != 1 || next[0].Node != "e" || !next[0].RunAt.Equal(e.clk.Now()) {
		e.t.Errorf("the continuous job's next run: %+v", next)
	}
	// A second batch: a repeated failure report changes nothing, and the
	// runs still held complete normally.
	e.clk.Advance(time.Second)
	res, err = e.s.CompleteRuns(e.ctx, []muster.CompleteParams{done(b, muster.OutcomeFailed), done(c, muster.OutcomeSucceeded), done(d, muster.OutcomeFailed)})
	if err != nil {
		e.t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Run.State != muster.RunRetrying || !res[0].Run.RunAt.Equal(retry.RunAt) {
		e.t.Errorf("repeated failure: %+v", res[0])
	}
	if res[1].Err != nil || res[1].Run.State != muster.RunSucceeded || res[2].Err != nil || res[2].Run.State != muster.RunRetrying {
		e.t.Errorf("second batch: %+v", res[1:])
	}
	// CompleteRun is the same thing, one at a time.
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: 1 << 40, Server: "s1", Attempt: 1, Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("CompleteRun(unknown) = %v", err)
	}
}

func testReleaseRuns(e *env) {
	if _, err := e.s.ReleaseRuns(e.ctx, "", nil); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("ReleaseRuns without a server = %v, want ErrInvalid", err)
	}
	e.submit(muster.Job{Targets: []string{"a", "b"}, MaxRetries: 1})
	e.submit(muster.Job{Targets: []string{"c", "d"}})
	mine := e.claim("s1", 3, 0)
	e.wantNodes(mine, "a", "b", "c")
	theirs := e.claim("s2", 10, 0)
	e.wantNodes(theirs, "d")
	e.clk.Advance(time.Second)
	e.submit(muster.Job{Targets: []string{"x"}}) // queued after a, b and c

	// Nothing of another server's is released, even by id.
	if ids, err := e.s.ReleaseRuns(e.ctx, "s1", []int64{theirs[0].ID}); err != nil || len(ids) != 0 {
		e.t.Fatalf("ReleaseRuns(s1, s2's run) = %v, %v", ids, err)
	}
	// By id, then all the rest.
	ids, err := e.s.ReleaseRuns(e.ctx, "s1", []int64{mine[2].ID})
	if err != nil || !slices.Equal(ids, []int64{mine[2].ID}) {
		e.t.Fatalf("ReleaseRuns(s1, c) = %v, %v", ids, err)
	}
	ids, err = e.s.ReleaseRuns(e.ctx, "s1", nil)
	if err != nil || !slices.Equal(ids, []int64{mine[0].ID, mine[1].ID}) {
		e.t.Fatalf("ReleaseRuns(s1) = %v, %v; want a and b", ids, err)
	}
	for _, r := range mine {
		got := e.run(r.ID)
		if got.State != muster.RunPending || got.LeaseOwner != "" || !got.LeaseExpires.IsZero() || !got.RunAt.Equal(r.RunAt) {
			e.t.Errorf("released %s: %+v", r.Node, got)
		}
	}
	if got := e.run(theirs[0].ID); got.State != muster.RunRunning || got.LeaseOwner != "s2" {
		e.t.Errorf("s2's run after s1 released: %s held by %q", got.State, got.LeaseOwner)
	}
	if ids, _ := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: "s1", LeaseTTL: time.Minute}); len(ids) != 0 {
		e.t.Errorf("s1 still holds %v", ids)
	}
	if _, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: mine[0].ID, Server: "s1", Attempt: 1, Outcome: muster.OutcomeSucceeded}); !errors.Is(err, muster.ErrLeaseLost) {
		e.t.Errorf("completing a released run: %v, want ErrLeaseLost", err)
	}
	// Released runs keep their place (ahead of x) and the claim is not a
	// retry: the first attempt is still the first.
	again := e.claim("s3", 3, 0)
	e.wantNodes(again, "a", "b", "c")
	for _, r := range again {
		if r.Attempt != 1 || r.LeaseOwner != "s3" {
			e.t.Errorf("reclaimed %s: attempt %d owner %q, want attempt 1 on s3", r.Node, r.Attempt, r.LeaseOwner)
		}
	}
	if r := e.complete(again[0], muster.OutcomeFailed); r.State != muster.RunRetrying {
		e.t.Errorf("a failed after its release: %s, want retrying (the release spent no retry)", r.State)
	}
	e.wantNodes(e.claim("s3", 3, 0), "x")
}

func testWake(e *env) {
	w := e.s.Wake()
	if cap(w) != 1 || e.s.Wake() != w {
		e.t.Fatalf("Wake: capacity %d, same channel %v; want one channel with a buffer of 1", cap(w), e.s.Wake() == w)
	}
	drain := func() {
		for {
			select {
			case <-w:
			default:
				return
			}
		}
	}
	want := func(what string) {
		e.t.Helper()
		select {
		case <-w:
		case <-time.After(10 * time.Second):
			e.t.Fatalf("no wake-up after %s", what)
		}
	}
	drain()
	res := e.submit(muster.Job{Targets: []string{"a", "b"}})
	want("SubmitJob")
	drain()
	if err := e.s.BumpJob(e.ctx, res.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	want("BumpJob")
	e.submit(muster.Job{Targets: []string{"c"}, Continuous: true})
	rs := e.claim("s", 10, 0)
	drain()
	for _, r := range rs {
		if r.Node == "c" {
			e.complete(r, muster.OutcomeSucceeded)
		}
	}
	want("a completion that queued the next run of a continuous job")
	drain()
	if got, err := e.s.CancelJob(e.ctx, res.Job.ID); err != nil || got.Stopping == 0 {
		e.t.Fatalf("CancelJob = %+v, %v; want running runs asked to stop", got, err)
	}
	want("CancelJob that asked running runs to stop")
}

// testConcurrentBatches runs servers that each complete a claim in two
// concurrent, overlapping batches (the overlap is an idempotent repeat),
// while every server heartbeats: no completion may fail or deadlock, and
// every run ends once.
func testConcurrentBatches(e *env) {
	const nodesN, perNode, servers = 12, 5, 3
	for i := range perNode {
		var ts []string
		for n := range nodesN {
			ts = append(ts, fmt.Sprintf("n%d", n))
		}
		e.submit(muster.Job{Targets: ts, Spec: spec(fmt.Sprint(i))})
	}
	stop := make(chan struct{})
	errs := make(chan error, 4*servers)
	var beats, workers sync.WaitGroup
	for w := range servers {
		server := fmt.Sprintf("s%d", w)
		beats.Add(1)
		go func() {
			defer beats.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.s.Heartbeat(e.ctx, muster.HeartbeatParams{Server: server, LeaseTTL: time.Minute}); err != nil {
					errs <- fmt.Errorf("heartbeat: %w", err)
					return
				}
			}
		}()
		workers.Add(1)
		go func() {
			defer workers.Done()
			for idle := 0; idle < 50; {
				rs, err := e.s.ClaimRuns(e.ctx, muster.ClaimParams{Server: server, Limit: 6, LeaseTTL: time.Minute})
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
				var ps []muster.CompleteParams
				for _, r := range rs {
					ps = append(ps, muster.CompleteParams{RunID: r.ID, Server: server, Attempt: r.Attempt, Outcome: muster.OutcomeSucceeded})
				}
				half := len(ps) / 2
				// Two batches in flight, each repeating the other's first run.
				batches := [][]muster.CompleteParams{append(slices.Clone(ps[:half]), ps[len(ps)-1]), append(slices.Clone(ps[half:]), ps[0])}
				var wg sync.WaitGroup
				for _, batch := range batches {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := e.s.CompleteRuns(e.ctx, batch)
						if err != nil {
							errs <- fmt.Errorf("complete: %w", err)
							return
						}
						for _, r := range res {
							if r.Err != nil || r.Run.State != muster.RunSucceeded {
								errs <- fmt.Errorf("completion of run %d: %s, %v", r.Run.ID, r.Run.State, r.Err)
							}
						}
					}()
				}
				wg.Wait()
			}
		}()
	}
	workers.Wait()
	close(stop)
	beats.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	rs := e.runs(muster.RunFilter{})
	if len(rs) != nodesN*perNode {
		e.t.Fatalf("%d runs, want %d", len(rs), nodesN*perNode)
	}
	for _, r := range rs {
		if r.State != muster.RunSucceeded || r.Attempt != 1 {
			e.t.Fatalf("run %d on %s: %s after %d attempts, want succeeded after 1", r.ID, r.Node, r.State, r.Attempt)
		}
	}
}
