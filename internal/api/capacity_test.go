package api

import (
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// TestComputeCapacity checks the formula of capacity.go, case by case.
func TestComputeCapacity(t *testing.T) {
	tests := []struct {
		name string
		in   capacityInput
		// want
		current, needed, additional int
		source                      string
		capped, met                 bool
		explains                    []string
	}{
		{name: "idle",
			in:      capacityInput{Slots: 100},
			current: 0, needed: 0, additional: 0, source: SourceNone, met: true,
			explains: []string{"idle"}},
		{name: "empty backlog, runs running",
			in:      capacityInput{Running: 150, Finished: 300, Slots: 100},
			current: 2, needed: 2, additional: 0, source: SourceObserved, met: true,
			explains: []string{"No run is waiting", "150 running runs keep 2 worker(s)"}},
		{name: "no throughput yet, nothing running",
			in:      capacityInput{Backlog: 250, OldestReady: 5 * time.Second, Slots: 100},
			current: 0, needed: 3, additional: 3, source: SourceNone, met: true,
			explains: []string{"none finished", "start every ready run at once: 3", "Add 3 worker(s)"}},
		{name: "no throughput yet, long runs running",
			in:      capacityInput{Backlog: 50, Running: 100, Slots: 100},
			current: 1, needed: 2, additional: 1, source: SourceNone, met: true},
		{name: "run time when nothing runs now",
			// μ = 1/10s; 600 runs in 60s need 600/(60·0.1) = 100 slots.
			in:      capacityInput{Backlog: 600, Finished: 3, RunTimeP50: 10 * time.Second, Slots: 100},
			current: 0, needed: 1, additional: 1, source: SourceRunTime, met: true,
			explains: []string{"median run time of 10s"}},
		{name: "saturated",
			// T = 1200/60 = 20/s from 200 slots: μ = 0.1; 6000/(60·0.1) = 1000 slots.
			in:      capacityInput{Backlog: 6000, OldestReady: 90 * time.Second, Running: 200, Finished: 1200, Slots: 100},
			current: 2, needed: 10, additional: 8, source: SourceObserved,
			explains: []string{"6000 runs are ready (the oldest waiting 1m30s)", "takes 10 worker(s), and 2 are busy", "Add 8 worker(s)."}},
		{name: "saturated, 5m window",
			// T = 6000/300 = 20/s, the same μ.
			in:      capacityInput{Backlog: 6000, Running: 200, Finished: 6000, Window: 5 * time.Minute, Slots: 100},
			current: 2, needed: 10, additional: 8, source: SourceObserved, met: true},
		{name: "busy but keeping up",
			// 500/(60·0.1) = 84 slots < the 200 busy ones.
			in:      capacityInput{Backlog: 500, OldestReady: 20 * time.Second, Running: 200, Finished: 1200, Slots: 100},
			current: 2, needed: 2, additional: 0, source: SourceObserved, met: true,
			explains: []string{"No more workers are needed."}},
		{name: "capped by max-running",
			in:      capacityInput{Backlog: 6000, Running: 200, Finished: 1200, Slots: 100, MaxRunning: 300},
			current: 2, needed: 3, additional: 1, source: SourceObserved, capped: true, met: true,
			explains: []string{"--max-running 300 caps the useful workers at 3"}},
		{name: "cap reached",
			in:      capacityInput{Backlog: 6000, Running: 300, Finished: 1800, Slots: 100, MaxRunning: 300},
			current: 3, needed: 3, additional: 0, source: SourceObserved, capped: true, met: true},
		{name: "target missed with free slots",
			// μ = 5/s/5 = 1; 10 runs need 1 slot; the wait is not for workers.
			in:      capacityInput{Backlog: 10, OldestReady: 2 * time.Minute, Running: 5, Finished: 300, Slots: 100},
			current: 1, needed: 1, additional: 0, source: SourceObserved,
			explains: []string{"waited past the 1m0s target although the workers suffice"}},
		{name: "small slots",
			// T = 2/s from 4 slots: μ = 0.5; 100/(30·0.5) = 7 slots, 4 workers of 2.
			in:      capacityInput{Backlog: 100, Running: 4, Finished: 120, Slots: 2, TargetAge: 30 * time.Second},
			current: 2, needed: 4, additional: 2, source: SourceObserved, met: true},
		{name: "a trickle does not overflow",
			in:      capacityInput{Backlog: 1 << 30, Running: 1 << 20, Finished: 1, Window: 15 * time.Minute, Slots: 1, TargetAge: time.Second},
			current: 1 << 20, needed: 1<<31 - 1, additional: 1<<31 - 1 - 1<<20, source: SourceObserved, met: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.Window == 0 {
				in.Window = time.Minute
			}
			if in.TargetAge == 0 {
				in.TargetAge = time.Minute
			}
			v := computeCapacity(in)
			if v.CurrentWorkers != tc.current || v.WorkersNeeded != tc.needed || v.AdditionalWorkers != tc.additional ||
				v.ThroughputSource != tc.source || v.CappedByMaxRunning != tc.capped || v.TargetMet != tc.met {
				t.Errorf("current %d needed %d additional %d source %s capped %v met %v; want %d %d %d %s %v %v\n%s",
					v.CurrentWorkers, v.WorkersNeeded, v.AdditionalWorkers, v.ThroughputSource, v.CappedByMaxRunning, v.TargetMet,
					tc.current, tc.needed, tc.additional, tc.source, tc.capped, tc.met, v.Explanation)
			}
			if v.AdditionalWorkers < 0 || v.WorkersNeeded < v.CurrentWorkers {
				t.Errorf("needed %d below the busy %d", v.WorkersNeeded, v.CurrentWorkers)
			}
			for _, want := range tc.explains {
				if !strings.Contains(v.Explanation, want) {
					t.Errorf("explanation lacks %q:\n%s", want, v.Explanation)
				}
			}
		})
	}
}

// capacityEnv queues work on a real store: job A on all five nodes, all
// claimed, four finished and one still running; then job B on all five,
// ready. So B = 5, R = 1, 4 finished in the last minute.
func capacityEnv(t *testing.T, opts ...envOption) *env {
	e := newEnv(t, opts...)
	a := e.submit(commandJob("web*,db*", "uptime")).Job.ID
	runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s1", Limit: 10, LeaseTTL: time.Minute})
	if err != nil || len(runs) != 5 {
		t.Fatalf("claimed %d runs of job %d: %v", len(runs), a, err)
	}
	var done []muster.CompleteParams
	for _, r := range runs[1:] {
		done = append(done, completion(r, muster.OutcomeSucceeded))
	}
	if _, err := e.store.CompleteRuns(e.ctx, done); err != nil {
		t.Fatal(err)
	}
	e.submit(commandJob("web*,db*", "hostname"))
	return e
}

func TestCapacityEndpoint(t *testing.T) {
	e := capacityEnv(t, func(c *Config) { c.Capacity = CapacityConfig{Slots: 2, TargetAge: 30 * time.Second} })
	c := e.client(muster.RoleViewer)
	// T = 4/60 from R = 1: μ = 1/15; 5/(30/15) = 2.5, so 3 slots: 2
	// workers of 2 slots, of which 1 is busy.
	v, err := c.Capacity(e.ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Backlog != 5 || v.Running != 1 || v.Finished != 4 || v.Window != "1m" || v.TargetAgeSeconds != 30 ||
		v.SlotsPerWorker != 2 || v.ThroughputSource != SourceObserved || v.ThroughputPerSecond != 4.0/60 ||
		v.CurrentWorkers != 1 || v.WorkersNeeded != 2 || v.AdditionalWorkers != 1 || v.OldestReadyAgeSeconds <= 0 {
		t.Fatalf("capacity %+v", v)
	}
	if !strings.Contains(v.Explanation, "Add 1 worker(s)") {
		t.Errorf("explanation: %s", v.Explanation)
	}
	// A longer target needs fewer workers: 5/(600/15) slots = 1, the busy one.
	if v, err = c.Capacity(e.ctx, 10*time.Minute, "5m"); err != nil || v.WorkersNeeded != 1 || v.AdditionalWorkers != 0 ||
		v.Window != "5m" || v.ThroughputPerSecond != 4.0/300 {
		t.Fatalf("capacity with a 10m target over 5m: %+v %v", v, err)
	}
	// The gauges show the same numbers for the configured target age.
	body := e.metricsBody()
	for _, want := range []string{
		"muster_capacity_workers_needed 2\n",
		"muster_capacity_additional_workers 1\n",
		"muster_capacity_current_workers 1\n",
		"muster_capacity_target_age_seconds 30\n",
		"muster_capacity_worker_throughput_per_second 0.1333",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Bad parameters are named.
	for _, tc := range []struct{ query, want string }{
		{"target_age=soon", "target_age: \"soon\""},
		{"target_age=500ms", "at least 1s"},
		{"target_age=-1m", "target_age"},
		{"window=2m", "window: \"2m\" is not one of 1m, 5m, 15m"},
		{"targetage=1m", "unknown query parameter \"targetage\""},
	} {
		r := e.do("GET", "/api/v1/capacity?"+tc.query, e.tokens[muster.RoleViewer], "", nil)
		if r.status != 400 || !strings.Contains(errorOf(t, r).Error.Message, tc.want) {
			t.Errorf("%s: %d %s, want 400 %q", tc.query, r.status, r.body, tc.want)
		}
	}
}

// TestCapacityIdle: an empty queue needs no worker, and the default
// configuration (100 slots, 60s) is shown.
func TestCapacityIdle(t *testing.T) {
	e := newEnv(t)
	v, err := e.client(muster.RoleViewer).Capacity(e.ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Backlog != 0 || v.WorkersNeeded != 0 || v.AdditionalWorkers != 0 || v.SlotsPerWorker != 100 ||
		v.TargetAgeSeconds != 60 || !v.TargetMet || v.ThroughputSource != SourceNone {
		t.Fatalf("idle capacity %+v", v)
	}
	body := e.metricsBody()
	for _, want := range []string{"muster_capacity_workers_needed 0\n", "muster_capacity_target_age_seconds 60\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// FuzzCapacity: whatever the queue looks like, the formula answers
// without panicking, never asks to stop busy workers, and keeps to
// --max-running.
func FuzzCapacity(f *testing.F) {
	f.Add(0, int64(0), 0, 0, uint8(0), int64(0), 100, 0, int64(60))
	f.Add(6000, int64(90e9), 200, 1200, uint8(0), int64(0), 100, 300, int64(60))
	f.Add(250, int64(5e9), 0, 0, uint8(1), int64(10e9), 100, 0, int64(1))
	f.Add(1<<30, int64(0), 1<<20, 1, uint8(2), int64(1), 1, 0, int64(1))
	f.Fuzz(func(t *testing.T, backlog int, oldest int64, running, finished int, window uint8, p50 int64, slots, maxRunning int, targetSecs int64) {
		abs := func(n int) int { return max(0, n) % (1 << 40) }
		in := capacityInput{
			Backlog: abs(backlog), OldestReady: time.Duration(max(0, oldest)), Running: abs(running), Finished: abs(finished),
			Window:     []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}[window%3],
			RunTimeP50: time.Duration(max(0, p50)), Slots: 1 + abs(slots)%10000, MaxRunning: abs(maxRunning),
			TargetAge: time.Duration(1+max(0, targetSecs)%86400) * time.Second,
		}
		v := computeCapacity(in)
		if v.AdditionalWorkers < 0 || v.WorkersNeeded < v.CurrentWorkers || v.AdditionalWorkers != v.WorkersNeeded-v.CurrentWorkers {
			t.Fatalf("%+v: needed %d current %d additional %d", in, v.WorkersNeeded, v.CurrentWorkers, v.AdditionalWorkers)
		}
		if in.Backlog == 0 && v.WorkersNeeded != v.CurrentWorkers {
			t.Fatalf("%+v: no backlog, yet %d workers needed of %d busy", in, v.WorkersNeeded, v.CurrentWorkers)
		}
		if in.Backlog > 0 && v.WorkersNeeded == 0 {
			t.Fatalf("%+v: a backlog needs no worker", in)
		}
		if limit := ceilDiv(in.MaxRunning, in.Slots); in.MaxRunning > 0 && v.WorkersNeeded > max(limit, v.CurrentWorkers) {
			t.Fatalf("%+v: %d workers needed beyond --max-running's %d", in, v.WorkersNeeded, limit)
		}
		if v.Explanation == "" {
			t.Fatal("no explanation")
		}
	})
}
