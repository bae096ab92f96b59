// Package storetest is the conformance suite every muster.Store must pass.
// An adapter's test calls Run with a factory that returns a fresh, empty,
// migrated store built with the given options (the suite injects a manual
// clock and a fixed jitter source).
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// Factory returns a fresh store for t, closed by t.Cleanup.
type Factory func(t testing.TB, opts ...muster.StoreOption) muster.Store

// Clock is a manual clock for StoreOptions.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one test's store and clock.
type env struct {
	t        *testing.T
	s        muster.Store
	clk      *Clock
	ctx      context.Context
	newStore Factory // for subtests that need a store of their own (see fresh)
}

func setup(t *testing.T, newStore Factory, opts ...muster.StoreOption) *env {
	clk := NewClock()
	opts = append([]muster.StoreOption{muster.WithNow(clk.Now), muster.WithRand(func() float64 { return 0.5 }),
		muster.WithRetryBackoff(10*time.Second, time.Minute)}, opts...)
	return &env{t: t, s: newStore(t, opts...), clk: clk, ctx: context.Background(), newStore: newStore}
}

// fresh returns a new env, with an empty store of its own, for the subtest t.
func (e *env) fresh(t *testing.T) *env { return setup(t, e.newStore) }

// testCase is one case of the suite.
type testCase struct {
	name string
	fn   func(e *env)
}

// suite lists the cases by the part of the Store whose promises they check
// (most use other parts too: every case submits jobs, say). Subtests are
// named part/case, e.g. WorkQueue/OneRunningPerNode.
var suite = []struct {
	part  string
	cases []testCase
}{
	{"WorkQueue", []testCase{
		{"SubmitClaimComplete", testSubmitClaimComplete},
		{"OneRunningPerNode", testOneRunningPerNode},
		{"DeepBacklogOnOneNode", testDeepBacklog},
		{"DatabaseRejectsSecondRunning", testDatabaseRejectsSecondRunning},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"GlobalLimit", testGlobalLimit},
		{"RetryBackoff", testRetryBackoff},
		{"Continuous", testContinuous},
		{"Recurring", testRecurring},
		{"IdempotentCompletion", testIdempotentCompletion},
		{"CancelledCompletion", testCancelledCompletion},
		{"CompleteRunsBatch", testCompleteRunsBatch},
		{"ConcurrentBatches", testConcurrentBatches},
		{"ReleaseRuns", testReleaseRuns},
		{"Wake", testWake},
		{"OutputAppendList", testOutputAppendList},
		{"OutputDropped", testOutputDropped},
		{"OutputDeletedWhenAttemptEnds", testOutputDeleted},
		{"OutputInvalid", testOutputInvalid},
		{"OutputBinary", testOutputBinary},
		{"OutputConcurrent", testOutputConcurrent},
	}},
	{"Rescuer", []testCase{
		{"LeaseRescue", testLeaseRescue},
		{"LeaseFailPolicy", testLeaseFailPolicy},
		{"CancelRescueAndRelease", testCancelRescueAndRelease},
	}},
	{"Jobs", []testCase{
		{"Invalid", testInvalid},
		{"OnceKey", testOnceKey},
		{"OnceKeyConcurrent", testOnceKeyConcurrent},
		{"PriorityAgeAndBump", testPriorityAgeAndBump},
		{"Scheduled", testScheduled},
		{"Coalescing", testCoalescing},
		{"Cancel", testCancel},
		{"CancelHandsOverSharedRun", testCancelHandsOver},
		{"CancelRunning", testCancelRunning},
		{"Stats", testStats},
		{"ListJobs", testListJobs},
		{"OutputPaging", testOutputPaging},
		{"OutputCancelWaiting", testOutputCancelWaiting},
		{"OutputCoalesced", testOutputCoalesced},
		{"AfterJob", testAfterJob},
		{"AfterEach", testAfterEach},
		{"AfterFailureBlocksRetryUnblocks", testFailureBlocksRetryUnblocks},
		{"AfterRefused", testAfterRefused},
		{"AfterCancelBlocks", testCancelBlocksDependents},
		{"AfterConcurrent", testDepsConcurrent},
	}},
	{"Changes", []testCase{
		{"FingerprintChange", testFingerprintChange},
		{"FingerprintAgentRun", testFingerprintAgentRun},
		{"FingerprintRefused", testFingerprintRefused},
		{"FactsChangedBumpsNode", testFactsChangedBumpsNode},
		{"DependsOnResult", testDependsOnResult},
	}},
	{"AuthStore", []testCase{
		{"Tokens", testTokens},
		{"TokenLastUsedThrottled", testTokenLastUsed},
		{"Audit", testAudit},
	}},
	{"Nodes", []testCase{
		{"EnrollTokens", testEnrollTokens},
		{"EnrollRefused", testEnrollRefused},
		{"EnrollConcurrent", testEnrollConcurrent},
		{"EnrollReplaces", testEnrollReplaces},
		{"SignAndSerials", testSignAndSerials},
		{"ListAndNoteRuns", testNodesListAndRuns},
		{"PullNotClaimedByServers", testPullNotClaimedByServers},
		{"ClaimNodeRun", testClaimNodeRun},
		{"PullLease", testPullLease},
		{"PullRetry", testPullRetry},
		{"PullCoalescing", testPullCoalescing},
		{"BackendMaxRunning", testBackendMaxRunning},
		{"BackendRate", testBackendRate},
		{"BackendConcurrent", testBackendConcurrent},
		{"NodeFacts", testNodeFacts},
	}},
}

// Run runs the whole suite against stores from newStore.
func Run(t *testing.T, newStore Factory) {
	for _, part := range suite {
		t.Run(part.part, func(t *testing.T) {
			for _, tc := range part.cases {
				t.Run(tc.name, func(t *testing.T) { tc.fn(setup(t, newStore)) })
			}
		})
	}
}

// helpers

func (e *env) submit(j muster.Job) muster.SubmitResult {
	e.t.Helper()
	if j.Kind == "" {
		j.Kind = muster.JobCommand
	}
	if j.Spec == nil {
		j.Spec = json.RawMessage(`{"command":"true"}`)
	}
	res, err := e.s.SubmitJob(e.ctx, j)
	if err != nil {
		e.t.Fatalf("SubmitJob: %v", err)
	}
	return res
}

func (e *env) claim(server string, limit, maxRunning int) []muster.Run {
	e.t.Helper()
	runs, err := e.s.ClaimRuns(e.ctx, muster.ClaimParams{Server: server, Limit: limit, LeaseTTL: 30 * time.Second, MaxRunning: maxRunning})
	if err != nil {
		e.t.Fatalf("ClaimRuns: %v", err)
	}
	return runs
}

func (e *env) complete(r muster.Run, o muster.Outcome) muster.Run {
	e.t.Helper()
	out, err := muster.CompleteRun(e.ctx, e.s, muster.CompleteParams{RunID: r.ID, Server: r.LeaseOwner, Attempt: r.Attempt, Outcome: o})
	if err != nil {
		e.t.Fatalf("CompleteRun(%d): %v", r.ID, err)
	}
	return out
}

func (e *env) job(id int64) muster.Job {
	e.t.Helper()
	j, err := e.s.GetJob(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetJob(%d): %v", id, err)
	}
	return j
}

func (e *env) run(id int64) muster.Run {
	e.t.Helper()
	r, err := e.s.GetRun(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetRun(%d): %v", id, err)
	}
	return r
}

func (e *env) runs(f muster.RunFilter) []muster.Run {
	e.t.Helper()
	rs, err := e.s.ListRuns(e.ctx, f)
	if err != nil {
		e.t.Fatalf("ListRuns: %v", err)
	}
	return rs
}

func nodes(rs []muster.Run) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Node)
	}
	return out
}

func (e *env) wantNodes(rs []muster.Run, want ...string) {
	e.t.Helper()
	if got := nodes(rs); !slices.Equal(got, want) {
		e.t.Fatalf("claimed nodes %v, want %v", got, want)
	}
}

func spec(s string) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"command":%q}`, s)) }

// fill submits n one-shot runs spread over 1000 nodes, in jobs of 1000.
func fill(b *testing.B, s muster.Store, n int) {
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		var ts []string
		for n := range min(1000, n-i) {
			ts = append(ts, fmt.Sprintf("node%04d", n))
		}
		if _, err := s.SubmitJob(ctx, muster.Job{Kind: muster.JobCommand, Targets: ts, Spec: spec(fmt.Sprint(i))}); err != nil {
			b.Fatal(err)
		}
	}
}

// Benchmark measures the dispatch cycle: claim batches of 10 ready runs
// spread over 1000 nodes, then complete each. b.N is the number of runs;
// it reports claims/s (each claim followed by its completion).
func Benchmark(b *testing.B, newStore Factory) {
	benchCycle(b, newStore, 10, "claims/s", func(ctx context.Context, s muster.Store, ps []muster.CompleteParams) {
		for _, p := range ps {
			if _, err := muster.CompleteRun(ctx, s, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBatch measures the dispatch cycle of a busy server: claim
// batches of 100 ready runs spread over 1000 nodes, then complete each
// batch with one CompleteRuns. b.N is the number of runs; it reports
// runs/s (each claimed and completed).
func BenchmarkBatch(b *testing.B, newStore Factory) {
	benchCycle(b, newStore, 100, "runs/s", func(ctx context.Context, s muster.Store, ps []muster.CompleteParams) {
		res, err := s.CompleteRuns(ctx, ps)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || r.Run.State != muster.RunSucceeded {
				b.Fatalf("completion: %+v", r)
			}
		}
	})
}

// benchCycle claims b.N filled runs in batches of limit, has complete
// record each batch's success, and reports the rate under unit.
func benchCycle(b *testing.B, newStore Factory, limit int, unit string,
	complete func(context.Context, muster.Store, []muster.CompleteParams)) {
	ctx := context.Background()
	s := newStore(b)
	fill(b, s, b.N)
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; {
		rs, err := s.ClaimRuns(ctx, muster.ClaimParams{Server: "bench", Limit: limit, LeaseTTL: time.Minute})
		if err != nil || len(rs) == 0 {
			b.Fatalf("claim after %d: %d runs, %v", done, len(rs), err)
		}
		ps := make([]muster.CompleteParams, len(rs))
		for i, r := range rs {
			ps[i] = muster.CompleteParams{RunID: r.ID, Server: "bench", Attempt: r.Attempt, Outcome: muster.OutcomeSucceeded}
		}
		complete(ctx, s, ps)
		done += len(rs)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}
