package capacity

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// step is one event in a scenario, at a time relative to the start.
type step struct {
	at      time.Duration
	start   int    // runs to Start
	finish  int    // runs to Finish
	probe   *Probe // a probe result to Observe
	changed bool   // Observe's expected answer (with probe)

	// Admit's expected answer (checked on every step).
	n       int
	why     string        // substring; "" means Why must be empty
	retryIn time.Duration // exact, when the rate limit closes admission
}

func healthy(load float64) *Probe { return &Probe{OK: true, Status: 200, Load: load} }

func TestAdmit(t *testing.T) {
	const all = math.MaxInt
	nan := math.NaN()
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"no limits", Config{}, []step{
			{n: all},
			{start: 1000, n: all},
			{probe: &Probe{Err: errors.New("refused")}, n: all}, // no probe configured: ignored
		}},
		{"in-flight limit", Config{MaxInFlight: 3}, []step{
			{n: 3},
			{start: 2, n: 1},
			{start: 1, why: "max running 3 reached"},
			{finish: 1, n: 1},
			{finish: 5, n: 3}, // never below zero
		}},
		{"rate limit with burst", Config{Rate: 10, Burst: 4}, []step{
			{n: 4},
			{start: 4, why: "rate limit 10/s", retryIn: 100 * time.Millisecond},
			{at: 50 * time.Millisecond, why: "rate limit 10/s", retryIn: 50 * time.Millisecond},
			{at: 100 * time.Millisecond, n: 1},
			{at: 350 * time.Millisecond, n: 3},
			{at: 350 * time.Millisecond, start: 3, why: "rate limit", retryIn: 50 * time.Millisecond},
			{at: 10 * time.Second, n: 4}, // the bucket holds at most Burst
		}},
		{"default burst is a tenth of a second", Config{Rate: 50}, []step{
			{n: 5},
			{start: 5, why: "rate limit 50/s", retryIn: 20 * time.Millisecond},
		}},
		{"default burst is at least 1", Config{Rate: 2}, []step{
			{n: 1},
			{start: 1, why: "rate limit 2/s", retryIn: 500 * time.Millisecond},
		}},
		{"starting more than admitted goes into debt", Config{Rate: 10, Burst: 2}, []step{
			{start: 5, why: "rate limit"},
			{at: 250 * time.Millisecond, n: 0, why: "rate limit"},
		}},
		{"tightest limit wins", Config{MaxInFlight: 2, Rate: 100, Burst: 10}, []step{
			{n: 2},
			{start: 2, why: "max running 2 reached"},
			{finish: 2, n: 2},
			{finish: 0, start: 1, n: 1},
			{finish: 1, start: 0, n: 2},
		}},
		{"rate tighter than in-flight", Config{MaxInFlight: 10, Rate: 10, Burst: 3}, []step{
			{n: 3},
			{start: 2, n: 1},
		}},
		{"health gate starts closed", Config{Health: "http://pm/status"}, []step{
			{why: "health probe http://pm/status has not answered yet"},
			{probe: healthy(nan), changed: true, n: all},
			{probe: healthy(nan), n: all},
		}},
		{"health gate closes and reopens", Config{Health: "http://pm/status", LoadThreshold: 2, MaxInFlight: 5}, []step{
			{probe: &Probe{Status: 503}, why: "health probe http://pm/status answered 503"},
			{probe: healthy(1.5), changed: true, n: 5},
			{probe: healthy(2), n: 5}, // at the threshold is fine
			{probe: healthy(2.5), changed: true, why: "reports load 2.5, above 2"},
			{probe: healthy(3), why: "reports load 3, above 2"},
			{probe: &Probe{Err: errors.New("connection refused")}, why: "health probe http://pm/status failed: connection refused"},
			{probe: &Probe{}, why: "reports the backend unhealthy"},
			{probe: healthy(nan), changed: true, n: 5}, // unknown load passes
		}},
		{"load ignored without a threshold", Config{Health: "h"}, []step{
			{probe: healthy(1e9), changed: true, n: all},
		}},
		{"closed gate outranks the other limits", Config{Health: "h", MaxInFlight: 1, Rate: 1}, []step{
			{start: 1, why: "health probe h has not answered yet"},
			{probe: healthy(nan), changed: true, why: "max running 1 reached"},
			{finish: 1, why: "rate limit 1/s", retryIn: time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.cfg)
			t0 := time.Unix(1_700_000_000, 0)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				if s.probe != nil {
					if got := c.Observe(*s.probe); got != s.changed {
						t.Errorf("step %d: Observe changed = %v, want %v", i, got, s.changed)
					}
				}
				c.Start(now, s.start)
				c.Finish(s.finish)
				d := c.Admit(now)
				if d.N != s.n {
					t.Errorf("step %d: N = %d, want %d (why %q)", i, d.N, s.n, d.Why)
				}
				if d.Open() != (s.n > 0) {
					t.Errorf("step %d: Open = %v", i, d.Open())
				}
				if s.why == "" && d.Why != "" || !strings.Contains(d.Why, s.why) {
					t.Errorf("step %d: Why = %q, want %q", i, d.Why, s.why)
				}
				if s.retryIn != 0 && absDiff(d.RetryIn, s.retryIn) > time.Microsecond {
					t.Errorf("step %d: RetryIn = %v, want %v", i, d.RetryIn, s.retryIn)
				}
				if s.n == 0 && strings.Contains(d.Why, "rate") != (d.RetryIn > 0) {
					t.Errorf("step %d: RetryIn = %v with why %q", i, d.RetryIn, d.Why)
				}
			}
		})
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func TestHealthAndInFlight(t *testing.T) {
	c := New(Config{Health: "h"})
	if open, why := c.Health(); open || why == "" {
		t.Fatalf("Health() = %v, %q before any probe", open, why)
	}
	c.Observe(Probe{OK: true, Load: math.NaN()})
	if open, why := c.Health(); !open || why != "" {
		t.Fatalf("Health() = %v, %q after a good probe", open, why)
	}
	c.Start(time.Now(), 3)
	c.Finish(1)
	if got := c.InFlight(); got != 2 {
		t.Fatalf("InFlight = %d, want 2", got)
	}
}
