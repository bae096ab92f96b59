package action

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// lingerHarness is a Linger with a settable clock that records what it
// forgets instead of touching a Runner.
type lingerHarness struct {
	*Linger
	mu     sync.Mutex
	clock  time.Time
	forgot []string
	block  chan struct{} // if set, forgetting waits on it
}

func newLingerHarness(idle time.Duration, max int) *lingerHarness {
	h := &lingerHarness{clock: time.Unix(1e9, 0)}
	h.Linger = NewLinger(nil, idle, max)
	h.now = func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.clock }
	h.forgets = func(t *muster.Target) error {
		if h.block != nil {
			<-h.block
		}
		h.mu.Lock()
		h.forgot = append(h.forgot, t.Name)
		h.mu.Unlock()
		return nil
	}
	return h
}

func (h *lingerHarness) advance(d time.Duration) {
	h.mu.Lock()
	h.clock = h.clock.Add(d)
	h.mu.Unlock()
}

func (h *lingerHarness) forgotten() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.forgot)
	slices.Sort(out)
	return out
}

func tg(name string) *muster.Target { return &muster.Target{Name: name} }

func TestLinger(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		idle time.Duration
		max  int
		// steps act on h; want is what is forgotten at the end.
		steps func(h *lingerHarness)
		want  []string
		idles int
	}{
		{name: "idle 0 forgets when the action ends", idle: 0, steps: func(h *lingerHarness) {
			h.Use(tg("a"))
			h.Done(ctx, tg("a"))
		}, want: []string{"a"}},
		{name: "kept while idle for less than the limit", idle: time.Minute, steps: func(h *lingerHarness) {
			h.Use(tg("a"))
			h.Done(ctx, tg("a"))
			h.advance(59 * time.Second)
			h.sweep(ctx)
		}, idles: 1},
		{name: "forgotten once idle for the limit", idle: time.Minute, steps: func(h *lingerHarness) {
			h.Use(tg("a"))
			h.Done(ctx, tg("a"))
			h.Use(tg("b"))
			h.Done(ctx, tg("b"))
			h.advance(time.Minute)
			h.Use(tg("b")) // used again: b is busy, then idle afresh
			h.Done(ctx, tg("b"))
			h.sweep(ctx)
		}, want: []string{"a"}, idles: 1},
		{name: "in use is never forgotten", idle: time.Minute, steps: func(h *lingerHarness) {
			h.Use(tg("a"))
			h.Use(tg("a"))
			h.Done(ctx, tg("a")) // one action of two ended
			h.advance(time.Hour)
			h.sweep(ctx)
		}},
		{name: "beyond max the longest idle go first", idle: time.Hour, max: 2, steps: func(h *lingerHarness) {
			for _, n := range []string{"a", "b", "c", "d"} {
				h.Use(tg(n))
				h.Done(ctx, tg(n))
				h.advance(time.Second)
			}
			h.sweep(ctx)
		}, want: []string{"a", "b"}, idles: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLingerHarness(tc.idle, tc.max)
			tc.steps(h)
			if got := h.forgotten(); !slices.Equal(got, tc.want) {
				t.Errorf("forgot %v, want %v", got, tc.want)
			}
			if got := h.Idle(); got != tc.idles {
				t.Errorf("%d idle, want %d", got, tc.idles)
			}
		})
	}
}

// Use waits while its target is being forgotten, so an action never
// runs on a connection that is being closed.
func TestLingerUseWaitsForForget(t *testing.T) {
	ctx := context.Background()
	h := newLingerHarness(time.Minute, 0)
	h.block = make(chan struct{})
	h.Use(tg("a"))
	h.Done(ctx, tg("a"))
	h.advance(time.Hour)
	swept := make(chan struct{})
	go func() { h.sweep(ctx); close(swept) }()
	// Wait until the sweep has claimed a for forgetting.
	for {
		h.Linger.mu.Lock()
		n := len(h.Linger.forgetting)
		h.Linger.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	used := make(chan []string)
	go func() {
		h.Use(tg("a"))
		used <- h.forgotten() // what had been forgotten when Use returned
	}()
	close(h.block)
	if got := <-used; !slices.Equal(got, []string{"a"}) {
		t.Errorf("Use returned while a was still being forgotten (forgotten then: %v)", got)
	}
	<-swept
	h.Done(ctx, tg("a"))
	if h.Idle() != 1 {
		t.Errorf("after the new action, a should be idle with its new connection")
	}
}

// Run sweeps when more than Max are idle, without waiting for a tick.
func TestLingerRunSweepsOverMax(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := newLingerHarness(time.Hour, 1)
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	for _, n := range []string{"a", "b"} {
		h.Use(tg(n))
		h.Done(ctx, tg(n))
		h.advance(time.Second)
	}
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for len(h.forgotten()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := h.forgotten(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("forgot %v, want the longest idle, a", got)
	}
}
