package pull

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var testEpoch = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func mustParse(t testing.TB, y string) *Config {
	t.Helper()
	c, err := Parse("pull.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTest(t testing.TB, y string) *Scheduler {
	return New(mustParse(t, y), Options{Rand: rand.New(rand.NewPCG(1, 2))})
}

func TestControllerShrinksWhenIdle(t *testing.T) {
	s := newTest(t, "interval: 30m\nfloor: 10m\nceiling: 1h\nbackends: [{name: a, max_running: 100}]\n")
	prev := 30 * time.Minute
	for now := testEpoch; now.Before(testEpoch.Add(2 * time.Hour)); now = now.Add(5 * time.Second) {
		iv := s.Stats(now).Interval
		if iv < 10*time.Minute || iv > prev {
			t.Fatalf("at %s the interval is %s (was %s): want it falling to the 10m floor, never below", now.Sub(testEpoch), iv, prev)
		}
		prev = iv
	}
	if prev != 10*time.Minute {
		t.Errorf("after 2 idle hours the interval is %s, want the floor", prev)
	}
}

func TestControllerStretchesWhenSaturated(t *testing.T) {
	s := newTest(t, "interval: 30m\nfloor: 10m\nceiling: 1h\nbackends: [{name: a, max_running: 100}, {name: b, max_running: 50}]\n")
	prev := 30 * time.Minute
	for now := testEpoch; now.Before(testEpoch.Add(2 * time.Hour)); now = now.Add(5 * time.Second) {
		s.SetLoad(now, "a", 100)
		s.SetLoad(now, "b", 50)
		iv := s.Stats(now).Interval
		if iv > time.Hour || iv < prev {
			t.Fatalf("at %s the interval is %s (was %s): want it rising to the 1h ceiling, never above", now.Sub(testEpoch), iv, prev)
		}
		prev = iv
	}
	if prev != time.Hour {
		t.Errorf("after 2 saturated hours the interval is %s, want the ceiling", prev)
	}
	// All backends unhealthy counts as saturated too.
	s = newTest(t, "interval: 30m\nceiling: 1h\nbackends: [{name: a, max_running: 1, health: {url: x}}]\n")
	for now := testEpoch; now.Before(testEpoch.Add(2 * time.Hour)); now = now.Add(time.Minute) {
		s.Stats(now)
	}
	if iv := s.Stats(testEpoch.Add(2 * time.Hour)).Interval; iv != time.Hour {
		t.Errorf("with no healthy backend the interval is %s, want the ceiling", iv)
	}
}

// fleet is a small simulation for tests: nodes check in when told, runs
// last dur, and the test observes every decision.
type fleet struct {
	s       *Scheduler
	names   []string
	next    []time.Time
	last    []time.Time
	ends    []time.Time // zero: not running
	backend []string
	dur     func(i int) time.Duration
	observe func(now time.Time, i int, d Decision)
}

func newFleet(s *Scheduler, n int, dur func(int) time.Duration) *fleet {
	f := &fleet{s: s, dur: dur, names: make([]string, n), next: make([]time.Time, n), last: make([]time.Time, n),
		ends: make([]time.Time, n), backend: make([]string, n)}
	for i := range f.names {
		f.names[i] = fmt.Sprintf("node%05d", i)
		f.next[i] = testEpoch.Add(time.Duration(i) * time.Millisecond)
	}
	return f
}

// run steps the fleet from start to end in steps of step.
func (f *fleet) run(start, end time.Time, step time.Duration) {
	for now := start; now.Before(end); now = now.Add(step) {
		for i := range f.names {
			if !f.ends[i].IsZero() && !f.ends[i].After(now) {
				f.s.Finish(now, f.backend[i])
				f.ends[i] = time.Time{}
			}
		}
		for i := range f.names {
			if f.next[i].After(now) || !f.ends[i].IsZero() {
				continue
			}
			d := f.s.Decide(CheckIn{Node: f.names[i], Now: now, LastRun: f.last[i], LastFacts: now})
			if f.observe != nil {
				f.observe(now, i, d)
			}
			f.next[i] = d.NextCheckIn
			if d.RunNow {
				f.last[i], f.backend[i], f.ends[i] = now, d.Backend, now.Add(f.dur(i))
			}
		}
	}
}

// TestControllerSettles runs 3000 nodes whose runs take 30 s on 100 slots:
// 80% utilisation is 80 runs at once, 2.67 runs/s, an interval of 18m45s.
// The interval must get there from 30m and stay, without swinging.
func TestControllerSettles(t *testing.T) {
	s := newTest(t, "interval: 30m\nfloor: 5m\nceiling: 1h\nbackends: [{name: a, max_running: 60}, {name: b, max_running: 40}]\n")
	f := newFleet(s, 3000, func(int) time.Duration { return 30 * time.Second })
	var ivs []time.Duration
	for h := range 12 { // 3 hours in quarter-hour legs
		from := testEpoch.Add(time.Duration(h) * 15 * time.Minute)
		f.run(from, from.Add(15*time.Minute), time.Second)
		ivs = append(ivs, s.Stats(from.Add(15*time.Minute)).Interval)
	}
	want := 18*time.Minute + 45*time.Second
	final := ivs[len(ivs)-1]
	if math.Abs(float64(final-want))/float64(want) > 0.05 {
		t.Errorf("interval settled at %s, want %s within 5%% (every 15 min: %v)", final, want, ivs)
	}
	// Settling is monotone (no overshoot and swing back) outside the dead
	// band: once within 3% of the target it stays there.
	for i := 1; i < len(ivs); i++ {
		near := math.Abs(float64(ivs[i-1]-want))/float64(want) < 0.03
		if !near && ivs[i] > ivs[i-1] {
			t.Errorf("the interval turned back up while converging: %v", ivs)
			break
		}
		if near && math.Abs(float64(ivs[i]-want))/float64(want) >= 0.03 {
			t.Errorf("the interval left the target once there: %v", ivs)
			break
		}
	}
}

// TestAdmissionLimits drives many due nodes, slot and forced, for an hour
// against small backends, and checks that in flight never passes
// max_running and starts never pass the rate.
func TestAdmissionLimits(t *testing.T) {
	s := newTest(t, `interval: 5m
floor: 1m
ceiling: 10m
backends:
  - {name: a, max_running: 5, rate: 2}
  - {name: b, max_running: 3}
  - {name: c, max_running: 20, rate: 0.5}
`)
	rnd := rand.New(rand.NewPCG(3, 4))
	durs := make([]time.Duration, 400)
	for i := range durs {
		durs[i] = time.Duration(1+rnd.IntN(40)) * time.Second
	}
	f := newFleet(s, 400, func(i int) time.Duration { return durs[i] })
	limits := map[string]struct {
		max  int
		rate float64
	}{"a": {5, 2}, "b": {3, 0}, "c": {20, 0.5}}
	inFlight := map[string]int{}
	starts := map[string][]time.Time{}
	f.observe = func(now time.Time, i int, d Decision) {
		if !d.RunNow {
			if d.Reason == ReasonCapacity && (d.RetryAfter < 5*time.Second || d.RetryAfter > time.Minute) {
				t.Fatalf("retry-after %s outside [5s, 1m]", d.RetryAfter)
			}
			return
		}
		inFlight[d.Backend]++
		starts[d.Backend] = append(starts[d.Backend], now)
		for _, b := range s.Stats(now).Backends {
			if b.InFlight > limits[b.Name].max {
				t.Fatalf("backend %s has %d in flight, max_running %d", b.Name, b.InFlight, limits[b.Name].max)
			}
		}
	}
	// Forced runs on a random tenth of the check-ins: they go through the
	// same limits.
	end := testEpoch.Add(time.Hour)
	for now := testEpoch; now.Before(end); now = now.Add(100 * time.Millisecond) {
		f.run(now, now.Add(100*time.Millisecond), 100*time.Millisecond)
		if rnd.IntN(10) == 0 {
			i := rnd.IntN(len(f.names))
			if f.ends[i].IsZero() {
				d := s.Decide(CheckIn{Node: f.names[i], Now: now, LastRun: f.last[i], Force: true})
				f.observe(now, i, d)
				if d.RunNow {
					f.last[i], f.backend[i], f.ends[i] = now, d.Backend, now.Add(durs[i])
				}
			}
		}
	}
	for name, l := range limits {
		// Each backend is kept busy: at least 70% of what its tighter
		// limit allows (runs last 20.5 s on average).
		capacity := float64(l.max) / 20.5
		if l.rate > 0 {
			capacity = min(capacity, l.rate)
		}
		if n := len(starts[name]); float64(n) < 0.7*capacity*3600 {
			t.Errorf("backend %s started %d runs in an hour, capacity %.2f/s: admission is too timid", name, n, capacity)
		}
		if l.rate == 0 {
			continue
		}
		burst := math.Max(1, math.Ceil(l.rate/10))
		ts := starts[name]
		// Any window [ts[i], ts[j]] holds at most rate*window + burst starts.
		for i := range ts {
			for j := i; j < len(ts); j++ {
				if n, allowed := float64(j-i+1), l.rate*ts[j].Sub(ts[i]).Seconds()+burst; n > allowed+1e-9 {
					t.Fatalf("backend %s: %v starts in %s, rate %v/s allows %v", name, n, ts[j].Sub(ts[i]), l.rate, allowed)
				}
			}
		}
	}
	if st := s.Stats(end); st.Refused == 0 || st.Forced == 0 {
		t.Errorf("the test did not exercise refusals and forced runs: %+v", st)
	}
}

func TestBackendChoice(t *testing.T) {
	s := newTest(t, `backends:
  - {name: a, max_running: 10}
  - {name: b, max_running: 100}
  - {name: c, max_running: 10, health: {url: "http://c/status", max_load: 4}}
`)
	now := testEpoch
	decide := func() Decision {
		now = now.Add(time.Second)
		return s.Decide(CheckIn{Node: "n" + now.String(), Now: now})
	}
	s.SetLoad(now, "a", 5)  // 50%
	s.SetLoad(now, "b", 20) // 20%
	// c has a probe and no result yet: it is not used.
	if d := decide(); d.Backend != "b" {
		t.Errorf("chose %q, want b (least loaded; c unprobed)", d.Backend)
	}
	s.SetHealth("c", true, 1) // 25% of max_load, 0% of max_running
	if d := decide(); d.Backend != "b" {
		t.Errorf("chose %q, want b (21%%, c is at 25%% of its max_load)", d.Backend)
	}
	s.SetHealth("c", true, 0)
	if d := decide(); d.Backend != "c" {
		t.Errorf("chose %q, want c (idle)", d.Backend)
	}
	s.SetHealth("c", false, 0)
	s.SetHealth("b", true, 0) // b has no probe: a result changes nothing
	if d := decide(); d.Backend != "b" {
		t.Errorf("chose %q, want b (c unhealthy)", d.Backend)
	}
	s.SetHealth("c", true, 5) // above max_load: full
	s.SetLoad(now, "b", 90)   // slot runs may use 90 of 100
	if d := decide(); d.Backend != "a" {
		t.Errorf("chose %q, want a (b full for slot runs, c over max_load)", d.Backend)
	}
	if d := decide(); d.Backend != "a" || d.Env["MUSTER_BACKEND"] != "a" {
		t.Errorf("decision %+v, want a in Backend and MUSTER_BACKEND", d)
	}
}

func TestForcedRunsAheadOfSlotRuns(t *testing.T) {
	s := newTest(t, "interval: 30m\nbackends: [{name: a, max_running: 10}]\n")
	now := testEpoch
	s.SetLoad(now, "a", 9) // a tenth is reserved for forced runs
	d := s.Decide(CheckIn{Node: "due", Now: now})
	if d.RunNow || d.Reason != ReasonCapacity || d.RetryAfter <= 0 || !d.NextCheckIn.Equal(now.Add(d.RetryAfter)) {
		t.Errorf("a slot run at 9/10 got %+v, want later for capacity", d)
	}
	// A node that ran 10 minutes ago and is not due: forced, it runs.
	last := now.Add(-10 * time.Minute)
	d = s.Decide(CheckIn{Node: "forced", Now: now, LastRun: last, Force: true})
	if !d.RunNow || d.Reason != ReasonForced {
		t.Fatalf("forced run at 9/10 got %+v, want run", d)
	}
	d = s.Decide(CheckIn{Node: "forced2", Now: now, Force: true})
	if d.RunNow || d.Reason != ReasonCapacity {
		t.Errorf("forced run at 10/10 got %+v, want later: forced runs stay within max_running", d)
	}
	if st := s.Stats(now); st.Waiting != 2 || st.Forced != 1 {
		t.Errorf("stats %+v, want 2 waiting and 1 forced", st)
	}
	// The forced run did not move the node's slot by more than it must:
	// its next check-in is a wait for its slot, not an immediate retry.
	s.Finish(now.Add(time.Minute), "a")
	d = s.Decide(CheckIn{Node: "forced", Now: now.Add(time.Minute), LastRun: now})
	if d.RunNow || d.Reason != ReasonNotDue {
		t.Errorf("after its forced run the node got %+v, want not due", d)
	}
}

func TestDecisionFields(t *testing.T) {
	s := newTest(t, `interval: 30m
max_checkin: 4m
backends: [{name: p1, max_running: 10}]
runs:
  - match: {glob: 'web*'}
    command: run-web
    watch: [/etc/sudoers]
    env: {ROLE: web}
facts: {upload_every: 1h}
rollouts:
  - {name: all, percent: 100, env: {FLAG: "on"}}
  - {name: none, percent: 0, env: {NEVER: "1"}}
`)
	now := testEpoch
	d := s.Decide(CheckIn{Node: "web1", Now: now, LastFacts: now.Add(-2 * time.Hour)})
	want := map[string]string{"ROLE": "web", "FLAG": "on", "MUSTER_BACKEND": "p1", "MUSTER_RUN_REASON": ReasonFirst}
	if !d.RunNow || d.Reason != ReasonFirst || d.Run == nil || d.Run.Command != "run-web" || !d.UploadFacts ||
		len(d.Watch) != 1 || fmt.Sprint(d.Env) != fmt.Sprint(want) {
		t.Errorf("first run of web1: %+v", d)
	}
	if d.Run.Env["MUSTER_BACKEND"] != "" {
		t.Error("the decision's env leaked into the config")
	}
	if w := d.NextCheckIn.Sub(now); w < 2*time.Minute || w > 4*time.Minute {
		t.Errorf("next check-in in %s, want within max_checkin 4m (from 2m)", w)
	}
	d = s.Decide(CheckIn{Node: "web1", Now: now.Add(time.Second), LastRun: now, LastFacts: now, Running: true})
	if d.RunNow || d.Reason != ReasonRunning || d.UploadFacts {
		t.Errorf("running node: %+v", d)
	}
	d = s.Decide(CheckIn{Node: "db1", Now: now})
	if d.RunNow || d.Reason != ReasonNoRun || d.Run != nil {
		t.Errorf("node no entry matches: %+v", d)
	}
}

func TestFirstContact(t *testing.T) {
	const y = "interval: 30m\nbackends: [{name: p, max_running: 100}]\n"
	now := testEpoch
	s := newTest(t, y)
	if d := s.Decide(CheckIn{Node: "old", Now: now, LastRun: now.Add(-3 * time.Hour)}); !d.RunNow || d.Reason != ReasonOverdue {
		t.Errorf("a node last run 3h ago: %+v, want overdue run", d)
	}
	// A node that ran 10 minutes ago waits for its slot, however the
	// sweep lies: at most the rest of this interval and the next.
	for i := range 200 {
		name := fmt.Sprintf("recent%d", i)
		d := s.Decide(CheckIn{Node: name, Now: now, LastRun: now.Add(-10 * time.Minute)})
		if d.RunNow {
			t.Fatalf("%s ran 10 minutes ago and runs again: %+v", name, d)
		}
	}
	// With a fixed interval and no restart, the slot is NextDue's.
	s = newTest(t, y)
	name := "web42"
	last := NextDue(name, now.Add(-30*time.Minute), 30*time.Minute)
	due := NextDue(name, last, 30*time.Minute)
	at := now
	for range 20 {
		d := s.Decide(CheckIn{Node: name, Now: at, LastRun: last})
		if d.RunNow {
			break
		}
		at = d.NextCheckIn
	}
	if d := at.Sub(due); d < 0 || d > time.Millisecond {
		t.Errorf("the node was sent to run at %s, its slot is %s", at, due)
	}
}

// TestSlotCadence checks that with a fixed interval each node runs once
// per interval, at its slot.
func TestSlotCadence(t *testing.T) {
	s := newTest(t, "interval: 10m\nbackends: [{name: p, max_running: 100}]\n")
	f := newFleet(s, 50, func(int) time.Duration { return 20 * time.Second })
	s.Register(testEpoch, f.names...)
	runs := map[int][]time.Time{}
	f.observe = func(now time.Time, i int, d Decision) {
		if d.RunNow {
			runs[i] = append(runs[i], now)
		}
	}
	f.run(testEpoch, testEpoch.Add(time.Hour), 100*time.Millisecond)
	for i, ts := range runs {
		if len(ts) < 6 || len(ts) > 7 {
			t.Errorf("%s ran %d times in an hour at a 10m interval", f.names[i], len(ts))
		}
		for k := 2; k < len(ts); k++ { // the first run is its first contact
			if gap := ts[k].Sub(ts[k-1]); gap < 10*time.Minute-200*time.Millisecond || gap > 10*time.Minute+200*time.Millisecond {
				t.Errorf("%s: runs %s apart, want 10m", f.names[i], gap)
			}
		}
	}
}

func TestReloadKeepsInFlight(t *testing.T) {
	s := newTest(t, "interval: 30m\nbackends: [{name: a, max_running: 2}, {name: b, max_running: 2}]\n")
	now := testEpoch
	s.SetLoad(now, "a", 1)
	s.SetLoad(now, "b", 2)
	s.Reload(mustParse(t, "interval: 20m\nbackends: [{name: b, max_running: 3}, {name: c, max_running: 1}]\n"))
	st := s.Stats(now)
	got := fmt.Sprint(st.Backends)
	if want := "[{b 2 3 true false} {c 0 1 true false} {a 1 2 true true}]"; got != want {
		t.Errorf("backends after reload %s, want %s", got, want)
	}
	if st.Interval != 20*time.Minute {
		t.Errorf("interval after reload %s, want the new fixed 20m", st.Interval)
	}
	if d := s.Decide(CheckIn{Node: "x", Now: now}); d.Backend != "c" {
		t.Errorf("chose %q, want c (a is draining, b is at 2/3)", d.Backend)
	}
	s.Finish(now, "a")
	if st := s.Stats(now); len(st.Backends) != 2 {
		t.Errorf("a drained but is still listed: %+v", st.Backends)
	}
}

func TestRetryAfterSpread(t *testing.T) {
	s := newTest(t, "retry_after: {min: 10s, max: 2m}\nbackends: [{name: a, max_running: 1}]\n")
	now := testEpoch
	s.SetLoad(now, "a", 1)
	seen := map[time.Duration]bool{}
	var lo, hi time.Duration = time.Hour, 0
	for i := range 200 {
		d := s.Decide(CheckIn{Node: fmt.Sprint("n", i), Now: now})
		if d.RunNow || d.RetryAfter < 10*time.Second || d.RetryAfter > 2*time.Minute {
			t.Fatalf("decision %+v, want later within [10s, 2m]", d)
		}
		seen[d.RetryAfter] = true
		lo, hi = min(lo, d.RetryAfter), max(hi, d.RetryAfter)
	}
	if len(seen) < 190 || lo > 20*time.Second || hi < 110*time.Second {
		t.Errorf("retry-afters not spread: %d distinct in [%s, %s]", len(seen), lo, hi)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newTest(t, "backends: [{name: a, max_running: 5}]\n")
	done := make(chan bool)
	for g := range 4 {
		go func() {
			for i := range 200 {
				now := testEpoch.Add(time.Duration(i) * time.Second)
				if d := s.Decide(CheckIn{Node: fmt.Sprint(g, "-", i%20), Now: now}); d.RunNow {
					s.Finish(now, d.Backend)
				}
				s.SetHealth("a", true, 0)
				_ = s.Stats(now)
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
	if st := s.Stats(testEpoch.Add(time.Hour)); st.Backends[0].InFlight != 0 || !strings.Contains(fmt.Sprint(st.Admitted), "") {
		t.Errorf("in flight %d after every run finished", st.Backends[0].InFlight)
	}
}

func TestDropFacts(t *testing.T) {
	cfg, err := Parse("pull.yaml", []byte("backends: [{name: b, max_running: 1}]\nfacts:\n  blacklist: ['uptime*', 'memory.system.available*', 'mountpoints']\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg, Options{})
	facts := map[string]any{
		"uptime": "3 days", "uptime_seconds": 7,
		"memory":      map[string]any{"system": map[string]any{"available_bytes": 1, "total_bytes": 2}},
		"os":          map[string]any{"family": "Debian"},
		"mountpoints": map[string]any{"/": map[string]any{}},
	}
	s.DropFacts(facts)
	want := `map[memory:map[system:map[total_bytes:2]] os:map[family:Debian]]`
	if got := fmt.Sprint(facts); got != want {
		t.Errorf("after DropFacts: %s\nwant %s", got, want)
	}
}
