package dispatch_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// TestManyNodes runs several jobs on many nodes through one or two
// dispatchers sharing a SQLite file, and checks that every run completes
// exactly once, one run per node at a time, within the slot and global
// limits.
func TestManyNodes(t *testing.T) {
	tests := []struct {
		name        string
		dispatchers int
		slots       int
		batch       int
		maxRunning  int
		jobs, nodes int
	}{
		{name: "defaults", dispatchers: 1, jobs: 3, nodes: 80},
		{name: "few slots", dispatchers: 1, slots: 6, jobs: 3, nodes: 40},
		{name: "claims of one", dispatchers: 1, slots: 10, batch: 1, jobs: 2, nodes: 20},
		{name: "global cap across two servers", dispatchers: 2, slots: 50, maxRunning: 7, jobs: 3, nodes: 40},
		{name: "two servers", dispatchers: 2, slots: 20, jobs: 4, nodes: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			store := openSQLite(t, path)
			f := newFake(sleepUpTo(time.Millisecond))
			var starts, finishes atomic.Int64
			var ds []*running
			var timers []*timed
			for i := range tt.dispatchers {
				s := newTimed(store)
				if i > 0 {
					s = newTimed(openSQLite(t, path)) // another server on the same database
				}
				timers = append(timers, s)
				ds = append(ds, start(t, dispatch.Config{Queue: s, Rescuer: s, Executor: f, Slots: tt.slots,
					BatchSize: tt.batch, MaxRunning: tt.maxRunning, Hooks: dispatch.Hooks{
						OnStart:  func(muster.Run, time.Duration) { starts.Add(1) },
						OnFinish: func(muster.Run, time.Duration, dispatch.Outcome) { finishes.Add(1) },
					}}))
			}
			var jobs []int64
			for j := range tt.jobs {
				jobs = append(jobs, submit(t, store, fmt.Sprint("job", j), nodeNames("n", tt.nodes), nil).Job.ID)
			}
			want := tt.jobs * tt.nodes
			waitFor(t, "every run to succeed", func() bool {
				if f.finished.Load() < int64(want) {
					return false // cheaper than asking the store
				}
				st, err := store.Stats(context.Background())
				return err == nil && st.Counts[muster.RunSucceeded] == want
			})
			for _, d := range ds {
				d.shutdown(t, 5*time.Second)
			}

			f.check(t)
			if got := f.total(); got != want {
				t.Errorf("%d executions, want %d", got, want)
			}
			if starts.Load() != int64(want) || finishes.Load() != int64(want) {
				t.Errorf("hooks saw %d starts and %d finishes, want %d", starts.Load(), finishes.Load(), want)
			}
			limit := int64(max(tt.slots, 0))
			if limit == 0 {
				limit = 100
			}
			limit *= int64(tt.dispatchers)
			if tt.maxRunning > 0 {
				limit = min(limit, int64(tt.maxRunning))
			}
			if m := f.maxInFlight.Load(); m > limit {
				t.Errorf("%d runs in flight at once, limit %d", m, limit)
			}
			var all []muster.Run
			for _, id := range jobs {
				for _, r := range jobRuns(t, store, id) {
					if r.State != muster.RunSucceeded || r.Attempt != 1 || f.execCount(r.ID, 1) != 1 {
						t.Errorf("run %d on %s: %s attempt %d, executed %d times", r.ID, r.Node, r.State, r.Attempt, f.execCount(r.ID, 1))
					}
					all = append(all, r)
				}
			}
			if len(all) != want {
				t.Errorf("%d runs in the store, want %d", len(all), want)
			}
			checkNodeIntervals(t, all, claimTook(timers...))
		})
	}
}

// BenchmarkSQLiteNoop measures end-to-end throughput on SQLite with an
// executor that does nothing: b.N node-runs (jobs of up to 1,000 nodes)
// are submitted, then one dispatcher works through them.
func BenchmarkSQLiteNoop(b *testing.B) {
	store := openSQLite(b, "")
	for i := 0; i < b.N; i += 1000 {
		submit(b, store, fmt.Sprint("bench", i), nodeNames("n", min(1000, b.N-i)), nil)
	}
	var done atomic.Int64
	exec := dispatch.ExecutorFunc(func(context.Context, muster.Run, dispatch.Output) dispatch.Outcome {
		done.Add(1)
		return dispatch.Outcome{OK: true}
	})
	b.ResetTimer()
	began := time.Now()
	d := start(b, dispatch.Config{Queue: store, Rescuer: store, Executor: exec})
	waitFor(b, "every run to finish", func() bool { return done.Load() == int64(b.N) })
	d.shutdown(b, 5*time.Second)
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "runs/s")
}

// TestRateLimit checks the token bucket from the times the runs were
// claimed: over any stretch of time, no more runs are claimed than the
// burst plus the rate allows. This only bounds how fast runs start, never
// how slow.
func TestRateLimit(t *testing.T) {
	const rate, burst, n = 20.0, 2, 12
	store := newTimed(openSQLite(t, ""))
	f := newFake(nil)
	var mu sync.Mutex
	var reasons []string
	d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, Rate: rate, Burst: burst,
		Hooks: dispatch.Hooks{OnAdmission: func(open bool, why string) {
			mu.Lock()
			defer mu.Unlock()
			if !open {
				reasons = append(reasons, why)
			}
		}}})
	job := submit(t, store, "rated", nodeNames("r", n), nil).Job.ID
	waitFor(t, "every run to finish", func() bool { return f.finished.Load() == n })
	d.shutdown(t, 5*time.Second)

	store.mu.Lock()
	starts := store.starts
	store.mu.Unlock()
	if len(starts) != n {
		t.Fatalf("%d runs claimed, want %d", len(starts), n)
	}
	// A claim begins a moment after the limiter admitted it: one token of
	// slack covers that.
	const slack = 1
	for i := range starts {
		for j := i + 1; j < len(starts); j++ {
			allowed := burst + slack + rate*starts[j].Sub(starts[i]).Seconds()
			if float64(j-i+1) > allowed {
				t.Fatalf("%d runs claimed within %v; the limit allows %.1f", j-i+1, starts[j].Sub(starts[i]), allowed)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !containsReason(reasons, "rate limit 20/s") {
		t.Errorf("admission reasons %q lack the rate limit", reasons)
	}
	for _, r := range jobRuns(t, store, job) {
		if r.State != muster.RunSucceeded {
			t.Errorf("run %d: %s", r.ID, r.State)
		}
	}
}

func containsReason(reasons []string, s string) bool {
	for _, r := range reasons {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// TestTimeout checks that a run past its job's timeout is cancelled and
// recorded as a failure of kind muster/timeout-error, retried per
// MaxRetries.
func TestTimeout(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration
		do         func(ctx context.Context, r muster.Run) dispatch.Outcome
		state      muster.RunState
		attempts   int
		errPrefix  string
		resultHas  string
		maxRetries int
	}{
		{name: "honours cancellation", timeout: 30 * time.Millisecond, maxRetries: 2, do: blockUntilCancelled,
			state: muster.RunFailed, attempts: 3, errPrefix: "muster/timeout-error: ", resultHas: `"kind":"muster/timeout-error"`},
		{name: "ignores cancellation, succeeds late", timeout: 20 * time.Millisecond, maxRetries: 1,
			do: func(ctx context.Context, r muster.Run) dispatch.Outcome {
				time.Sleep(60 * time.Millisecond)
				return dispatch.Outcome{OK: true}
			},
			state: muster.RunFailed, attempts: 2, errPrefix: "muster/timeout-error: ", resultHas: `"kind":"muster/timeout-error"`},
		{name: "within the timeout", timeout: time.Minute, maxRetries: 2, do: nil,
			state: muster.RunSucceeded, attempts: 1},
		{name: "succeeds on retry", timeout: 30 * time.Millisecond, maxRetries: 3,
			do: func(ctx context.Context, r muster.Run) dispatch.Outcome {
				if r.Attempt < 3 {
					return blockUntilCancelled(ctx, r)
				}
				return dispatch.Outcome{OK: true}
			},
			state: muster.RunSucceeded, attempts: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openSQLite(t, "", fastRetries)
			f := newFake(tt.do)
			d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, PollInterval: 5 * time.Millisecond})
			res := submit(t, store, "slow", []string{"a", "b"}, func(j *muster.Job) {
				j.Timeout, j.MaxRetries = tt.timeout, tt.maxRetries
			})
			waitFor(t, "the runs to end", func() bool {
				for _, r := range jobRuns(t, store, res.Job.ID) {
					if !r.State.Final() {
						return false
					}
				}
				return true
			})
			d.shutdown(t, 5*time.Second)
			f.check(t)
			for _, r := range jobRuns(t, store, res.Job.ID) {
				if r.State != tt.state || r.Attempt != tt.attempts {
					t.Errorf("run %d: %s after %d attempts, want %s after %d", r.ID, r.State, r.Attempt, tt.state, tt.attempts)
				}
				if !strings.HasPrefix(r.Error, tt.errPrefix) || tt.errPrefix == "" && r.Error != "" {
					t.Errorf("run %d: error %q, want prefix %q", r.ID, r.Error, tt.errPrefix)
				}
				if !strings.Contains(string(r.Result), tt.resultHas) {
					t.Errorf("run %d: result %s lacks %s", r.ID, r.Result, tt.resultHas)
				}
				for a := 1; a <= tt.attempts; a++ {
					if n := f.execCount(r.ID, a); n != 1 {
						t.Errorf("run %d attempt %d executed %d times", r.ID, a, n)
					}
				}
			}
		})
	}
}

// TestFailureAndPanic checks failed outcomes, executor panics and invalid
// JSON results are all recorded.
func TestFailureAndPanic(t *testing.T) {
	store := openSQLite(t, "")
	f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
		switch r.Node {
		case "panics":
			panic("boom")
		case "fails":
			return dispatch.Failure(muster.Errorf(muster.KindCommand, "exit 3"))
		case "garbage":
			return dispatch.Outcome{OK: true, Result: []byte("not json")}
		}
		return dispatch.Outcome{OK: true}
	})
	d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f})
	res := submit(t, store, "mixed", []string{"panics", "fails", "garbage", "fine"}, nil)
	waitFor(t, "the runs to end", func() bool { return f.finished.Load() == 4 })
	waitFor(t, "the runs to be recorded", func() bool {
		st, err := store.Stats(context.Background())
		return err == nil && st.Counts[muster.RunRunning] == 0
	})
	d.shutdown(t, 5*time.Second)
	want := map[string]struct {
		state  muster.RunState
		err    string
		result string
	}{
		"panics":  {muster.RunFailed, "muster/exception-error: executor panicked: boom", `"_error"`},
		"fails":   {muster.RunFailed, "muster/command-error: exit 3", `"kind":"muster/command-error"`},
		"garbage": {muster.RunSucceeded, "", `"not json"`},
		"fine":    {muster.RunSucceeded, "", ""},
	}
	for _, r := range jobRuns(t, store, res.Job.ID) {
		w := want[r.Node]
		if r.State != w.state || r.Error != w.err || !strings.Contains(string(r.Result), w.result) {
			t.Errorf("%s: %s %q %s; want %s %q containing %s", r.Node, r.State, r.Error, r.Result, w.state, w.err, w.result)
		}
	}
}

// TestConfig checks New's validation and defaults.
func TestConfig(t *testing.T) {
	store := openSQLite(t, "")
	exec := dispatch.ExecutorFunc(func(context.Context, muster.Run, dispatch.Output) dispatch.Outcome { return dispatch.Outcome{OK: true} })
	for _, tt := range []struct {
		name string
		cfg  dispatch.Config
		ok   bool
	}{
		{"complete", dispatch.Config{Queue: store, Rescuer: store, Executor: exec}, true},
		{"no queue", dispatch.Config{Executor: exec}, false},
		{"no executor", dispatch.Config{Queue: store, Rescuer: store}, false},
		{"negative slots", dispatch.Config{Queue: store, Rescuer: store, Executor: exec, Slots: -1}, false},
	} {
		d, err := dispatch.New(tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New error %v", tt.name, err)
		}
		if d != nil && !strings.Contains(d.Server(), "-") {
			t.Errorf("%s: server name %q", tt.name, d.Server())
		}
	}
	a, b := dispatch.ServerName(), dispatch.ServerName()
	if a == b {
		t.Errorf("ServerName twice gave %q", a)
	}
	// Shutdown before Run: Run returns at once.
	d, _ := dispatch.New(dispatch.Config{Queue: store, Rescuer: store, Executor: exec})
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
