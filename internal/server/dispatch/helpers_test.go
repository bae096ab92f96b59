package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
	"github.com/muster-run/muster/internal/store/sqlite"
)

// patience bounds every wait: a broken dispatcher fails the test instead
// of hanging it. No test asserts that anything is fast.
const patience = 60 * time.Second

// openSQLite opens a store on a file in dir (a fresh temp dir if empty).
func openSQLite(t testing.TB, path string, opts ...muster.StoreOption) muster.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "queue.db")
	}
	s, err := sqlite.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fastRetries makes retries wait milliseconds, not seconds.
var fastRetries = muster.WithRetryBackoff(time.Millisecond, 4*time.Millisecond)

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// testLogger logs warnings and errors into the test's output (everything
// with MUSTER_TEST_DEBUG=1).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("MUSTER_TEST_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

type execKey struct {
	run     int64
	attempt int
}

// fake is an Executor that checks the queue's promises as it goes: it
// counts executions per (run, attempt) and runs in flight per node and in
// total, and records every violation. Its behaviour comes from do
// (default: succeed at once).
type fake struct {
	do func(ctx context.Context, r muster.Run) dispatch.Outcome
	// doOut, when set, is do with the run's live output.
	doOut func(ctx context.Context, r muster.Run, out dispatch.Output) dispatch.Outcome

	mu         sync.Mutex
	perNode    map[string]int
	execs      map[execKey]int
	cancelled  map[execKey]error // cause, for executions whose ctx ended
	starts     []time.Time
	violations []string

	inFlight, maxInFlight, finished atomic.Int64
}

func newFake(do func(ctx context.Context, r muster.Run) dispatch.Outcome) *fake {
	return &fake{do: do, perNode: map[string]int{}, execs: map[execKey]int{}, cancelled: map[execKey]error{}}
}

func (f *fake) Execute(ctx context.Context, r muster.Run, out dispatch.Output) dispatch.Outcome {
	k := execKey{r.ID, r.Attempt}
	f.mu.Lock()
	f.perNode[r.Node]++
	if n := f.perNode[r.Node]; n > 1 {
		f.violations = append(f.violations, fmt.Sprintf("node %s: %d runs at once (run %d attempt %d)", r.Node, n, r.ID, r.Attempt))
	}
	f.execs[k]++
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	n := f.inFlight.Add(1)
	for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
	}

	defer func() { // also when do panics
		f.inFlight.Add(-1)
		f.mu.Lock()
		f.perNode[r.Node]--
		if ctx.Err() != nil {
			f.cancelled[k] = context.Cause(ctx)
		}
		f.mu.Unlock()
		f.finished.Add(1)
	}()
	switch {
	case f.doOut != nil:
		return f.doOut(ctx, r, out)
	case f.do != nil:
		return f.do(ctx, r)
	}
	return dispatch.Outcome{OK: true, Result: []byte(`{"ok":true}`)}
}

// check fails t if a node ever ran two runs at once, or if a run's
// attempt was executed twice. (Store.ReleaseRuns undoes a claim, so after
// a release the same attempt number runs again: tests that release use
// checkNodes.)
func (f *fake) check(t testing.TB) {
	t.Helper()
	f.checkNodes(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.execs {
		if n > 1 {
			t.Errorf("run %d attempt %d executed %d times", k.run, k.attempt, n)
		}
	}
}

// checkNodes fails t if a node ever ran two runs at once.
func (f *fake) checkNodes(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Error(v)
	}
}

func (f *fake) execCount(run int64, attempt int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.execs[execKey{run, attempt}]
}

func (f *fake) cancelCause(run int64, attempt int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled[execKey{run, attempt}]
}

func (f *fake) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.execs {
		n += c
	}
	return n
}

// blockUntilCancelled is an executor body that runs until cancelled.
func blockUntilCancelled(ctx context.Context, r muster.Run) dispatch.Outcome {
	<-ctx.Done()
	return dispatch.Outcome{Error: "muster/cancelled: " + context.Cause(ctx).Error()}
}

// sleepUpTo sleeps a random time up to max, then succeeds.
func sleepUpTo(max time.Duration) func(ctx context.Context, r muster.Run) dispatch.Outcome {
	return func(ctx context.Context, r muster.Run) dispatch.Outcome {
		select {
		case <-time.After(rand.N(max + 1)):
			return dispatch.Outcome{OK: true}
		case <-ctx.Done():
			return dispatch.Outcome{Error: "muster/cancelled: cancelled"}
		}
	}
}

// running is a started dispatcher.
type running struct {
	*dispatch.Dispatcher
	cancel context.CancelFunc // the abrupt stop
	err    chan error         // Run's result
}

// start builds a dispatcher from cfg (with test defaults) and runs it. At
// cleanup it is shut down if the test did not stop it.
func start(t testing.TB, cfg dispatch.Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	d, err := dispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Dispatcher: d, cancel: cancel, err: make(chan error, 1)}
	go func() { r.err <- d.Run(ctx) }()
	t.Cleanup(func() {
		ctx, cancelGrace := context.WithTimeout(context.Background(), time.Second)
		defer cancelGrace()
		_ = d.Shutdown(ctx)
		cancel()
	})
	return r
}

// shutdown stops r gracefully with the given grace period and checks
// that both Shutdown and Run return cleanly.
func (r *running) shutdown(t testing.TB, grace time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-r.err:
		if err != nil {
			t.Errorf("Run after Shutdown: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return after Shutdown")
	}
}

// kill stops r abruptly, as if its process died, and waits for Run.
func (r *running) kill(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.err:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// waitFor polls cond until it holds, failing t after patience.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// submit submits a command job on nodes; distinct names keep jobs from
// coalescing.
func submit(t testing.TB, s muster.Store, name string, nodes []string, mod func(*muster.Job)) muster.SubmitResult {
	t.Helper()
	j := muster.Job{Kind: muster.JobCommand, Spec: []byte(fmt.Sprintf(`{"command":"echo %s"}`, name)), Targets: nodes}
	if mod != nil {
		mod(&j)
	}
	res, err := s.SubmitJob(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// jobRuns returns every run of the job.
func jobRuns(t testing.TB, s muster.Store, job int64) []muster.Run {
	t.Helper()
	runs, err := s.ListRuns(context.Background(), muster.RunFilter{JobID: job, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func getRun(t testing.TB, s muster.Store, id int64) muster.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// timed wraps a Store and records when the ClaimRuns call that handed
// out each run began, and how long it took (by run id; the last claim
// wins).
type timed struct {
	muster.Store
	mu     sync.Mutex
	claim  map[int64]time.Duration
	starts []time.Time // one per claimed run
}

func newTimed(s muster.Store) *timed { return &timed{Store: s, claim: map[int64]time.Duration{}} }

func (s *timed) ClaimRuns(ctx context.Context, p muster.ClaimParams) ([]muster.Run, error) {
	t0 := time.Now()
	runs, err := s.Store.ClaimRuns(ctx, p)
	d := time.Since(t0)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range runs {
		s.claim[r.ID] = d
		s.starts = append(s.starts, t0)
	}
	return runs, err
}

// claimTook returns the claim durations recorded by every ts.
func claimTook(ts ...*timed) map[int64]time.Duration {
	out := map[int64]time.Duration{}
	for _, s := range ts {
		s.mu.Lock()
		for id, d := range s.claim {
			out[id] = d
		}
		s.mu.Unlock()
	}
	return out
}

// checkNodeIntervals checks from the store's own timestamps that no node
// ever had two runs at once.
//
// The stamps are not exact: the store stamps StartedAt when ClaimRuns is
// called, before the claim waits for the queue lock, and FinishedAt before
// the completion commits. So a run truly held the node from some moment
// in [StartedAt, StartedAt + its claim's duration] (claimTook) until some
// moment at or after FinishedAt. Two runs A and B certainly overlapped
// when each finished after the latest moment the other can have started:
// that is what this reports. (A claim that waited behind a completion can
// even carry an earlier stamp than the run it followed, so runs are
// compared pairwise, not just in stamp order.) A millisecond covers the
// stamps' microsecond truncation.
func checkNodeIntervals(t testing.TB, runs []muster.Run, claimTook map[int64]time.Duration) {
	t.Helper()
	byNode := map[string][]muster.Run{}
	for _, r := range runs {
		byNode[r.Node] = append(byNode[r.Node], r)
	}
	latestStart := func(r muster.Run) time.Time { return r.StartedAt.Add(claimTook[r.ID] + time.Millisecond) }
	bad, fuzzy := 0, 0
	for node, rs := range byNode {
		slices.SortFunc(rs, func(a, b muster.Run) int { return a.StartedAt.Compare(b.StartedAt) })
		for i, a := range rs {
			for _, b := range rs[i+1:] {
				if !a.FinishedAt.After(b.StartedAt) {
					break // b, and every later one, started after a finished
				}
				if !a.FinishedAt.After(latestStart(b)) || !b.FinishedAt.After(latestStart(a)) {
					fuzzy++
					continue
				}
				if bad++; bad <= 5 {
					t.Errorf("node %s: run %d [%s, %s] and run %d [%s, %s] overlap (claims took %v and %v)", node,
						a.ID, a.StartedAt.Format(time.StampMicro), a.FinishedAt.Format(time.StampMicro),
						b.ID, b.StartedAt.Format(time.StampMicro), b.FinishedAt.Format(time.StampMicro), claimTook[a.ID], claimTook[b.ID])
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d overlapping pairs in all", bad)
	}
	if fuzzy > 0 {
		t.Logf("%d pairs of runs on a node have overlapping stamps, each explained by a claim's lock wait", fuzzy)
	}
}

// settleGoroutines waits for the goroutine count to fall to before, and
// fails t with a dump of every stack if it does not.
func settleGoroutines(t testing.TB, before int) {
	t.Helper()
	var now int
	for range 300 {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("goroutines: %d before, %d after\n%s", before, now, buf[:runtime.Stack(buf, true)])
}

// flaky wraps a Store; while down is set, every call that writes fails as
// if the database were unreachable. With noRescue, RescueExpired always
// fails.
type flaky struct {
	muster.Store
	down         atomic.Bool
	downComplete atomic.Bool // only CompleteRuns fails
	noRescue     bool
}

var errDown = errors.New("connection refused (test: database down)")

func (f *flaky) ClaimRuns(ctx context.Context, p muster.ClaimParams) ([]muster.Run, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.ClaimRuns(ctx, p)
}

func (f *flaky) Heartbeat(ctx context.Context, p muster.HeartbeatParams) ([]int64, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Heartbeat(ctx, p)
}

func (f *flaky) CompleteRuns(ctx context.Context, ps []muster.CompleteParams) ([]muster.CompleteResult, error) {
	if f.down.Load() || f.downComplete.Load() {
		return nil, errDown
	}
	return f.Store.CompleteRuns(ctx, ps)
}

func (f *flaky) ReleaseRuns(ctx context.Context, server string, ids []int64) ([]int64, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.ReleaseRuns(ctx, server, ids)
}

func (f *flaky) RescueExpired(ctx context.Context) ([]int64, error) {
	if f.down.Load() || f.noRescue {
		return nil, errDown
	}
	return f.Store.RescueExpired(ctx)
}
