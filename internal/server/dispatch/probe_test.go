package dispatch_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/server/dispatch"
)

// answer is what a fake health endpoint says.
type answer struct {
	status int
	body   string
	delay  time.Duration
}

// healthServer is a fake backend status page whose answer can change.
type healthServer struct {
	*httptest.Server
	now    atomic.Pointer[answer]
	probes atomic.Int64
}

func newHealthServer(t testing.TB, a answer) *healthServer {
	h := &healthServer{}
	h.now.Store(&a)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := h.now.Load()
		if a.delay > 0 {
			select {
			case <-time.After(a.delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
		h.probes.Add(1)
	}))
	t.Cleanup(h.Close)
	return h
}

// waitProbes waits for n more probes to be answered.
func (h *healthServer) waitProbes(t testing.TB, n int64) {
	t.Helper()
	target := h.probes.Load() + n
	waitFor(t, fmt.Sprintf("%d health probes", n), func() bool { return h.probes.Load() >= target })
}

func TestProbe(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		answer answer
		ok     bool
		status int
		load   float64
		err    string
	}{
		{name: "200 without a load", answer: answer{status: 200}, ok: true, status: 200, load: nan},
		{name: "JSON load", answer: answer{status: 200, body: `{"load": 1.5, "other": "x"}`}, ok: true, status: 200, load: 1.5},
		{name: "plain-text load", answer: answer{status: 200, body: "0.75\n"}, ok: true, status: 200, load: 0.75},
		{name: "JSON without a load", answer: answer{status: 200, body: `{"status":"ok"}`}, ok: true, status: 200, load: nan},
		{name: "text that is no number", answer: answer{status: 200, body: "all good"}, ok: true, status: 200, load: nan},
		{name: "204", answer: answer{status: 204}, ok: true, status: 204, load: nan},
		{name: "503", answer: answer{status: 503, body: "busy"}, status: 503, load: nan},
		{name: "503 with a load", answer: answer{status: 503, body: `{"load": 9}`}, status: 503, load: 9},
		{name: "timeout", answer: answer{status: 200, delay: time.Minute}, load: nan, err: "deadline exceeded"},
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHealthServer(t, tt.answer)
			p := dispatch.Probe(context.Background(), client, h.URL, 100*time.Millisecond)
			if p.OK != tt.ok || p.Status != tt.status || !sameFloat(p.Load, tt.load) {
				t.Errorf("Probe = %+v; want OK %v, status %d, load %v", p, tt.ok, tt.status, tt.load)
			}
			if (p.Err == nil) != (tt.err == "") || p.Err != nil && !strings.Contains(p.Err.Error(), tt.err) {
				t.Errorf("Probe error %v, want %q", p.Err, tt.err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		h := newHealthServer(t, answer{status: 200})
		h.Close()
		p := dispatch.Probe(context.Background(), client, h.URL, time.Second)
		if p.Err == nil || p.OK || strings.Contains(p.Err.Error(), h.URL) {
			t.Errorf("Probe of a closed server = %+v; want an error without the URL", p)
		}
	})
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// TestHealthGate: nothing starts while the backend's probe fails or
// reports too much load; runs start once it recovers.
func TestHealthGate(t *testing.T) {
	h := newHealthServer(t, answer{status: 503, body: "overloaded"})
	store := openSQLite(t, "")
	f := newFake(nil)
	var mu sync.Mutex
	var closed []string
	d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, HealthURL: h.URL, HealthInterval: 10 * time.Millisecond,
		LoadThreshold: 2, PollInterval: 10 * time.Millisecond,
		Hooks: dispatch.Hooks{OnAdmission: func(open bool, why string) {
			mu.Lock()
			defer mu.Unlock()
			if !open {
				closed = append(closed, why)
			}
		}}})
	sawReason := func(s string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return containsReason(closed, s)
		}
	}
	res := submit(t, store, "gated", nodeNames("g", 5), nil)

	h.waitProbes(t, 5)
	waitFor(t, "admission to close on the 503", sawReason("health probe "+h.URL+" answered 503"))
	if n := f.total(); n != 0 {
		t.Fatalf("%d runs started while the probe answered 503", n)
	}
	h.now.Store(&answer{status: 200, body: `{"load": 5}`})
	h.waitProbes(t, 5)
	waitFor(t, "admission to close on the load", sawReason("reports load 5, above 2"))
	if n := f.total(); n != 0 {
		t.Fatalf("%d runs started while the load was above the threshold", n)
	}
	if a := d.Admission(); a.Open() {
		t.Errorf("Admission() = %+v while the load is too high", a)
	}
	h.now.Store(&answer{status: 200, body: "1.5\n"})
	waitFor(t, "the runs to finish", func() bool { return f.finished.Load() == 5 })
	d.shutdown(t, 5*time.Second)
	for _, r := range jobRuns(t, store, res.Job.ID) {
		if r.State != muster.RunSucceeded {
			t.Errorf("run %d: %s", r.ID, r.State)
		}
	}
}

// TestNoGoroutineLeak: after a graceful and an abrupt stop, every
// goroutine the dispatchers started (probe connections included) is gone.
func TestNoGoroutineLeak(t *testing.T) {
	h := newHealthServer(t, answer{status: 200})
	stores := []muster.Store{openSQLite(t, ""), openSQLite(t, "")}
	before := runtime.NumGoroutine()
	for i, abrupt := range []bool{false, true} {
		store := stores[i]
		f := newFake(func(ctx context.Context, r muster.Run) dispatch.Outcome {
			if r.Node == "stuck" {
				return blockUntilCancelled(ctx, r)
			}
			return sleepUpTo(2*time.Millisecond)(ctx, r)
		})
		d := start(t, dispatch.Config{Queue: store, Rescuer: store, Executor: f, HealthURL: h.URL, HealthInterval: 5 * time.Millisecond,
			LeaseTTL: time.Second, HeartbeatInterval: 10 * time.Millisecond})
		submit(t, store, fmt.Sprint("leak", i), append(nodeNames("l", 30), "stuck"), func(j *muster.Job) {
			j.Timeout = time.Minute
		})
		waitFor(t, "the runs to start", func() bool { return f.total() == 31 && f.inFlight.Load() == 1 })
		if abrupt {
			d.kill(t)
		} else {
			d.shutdown(t, 10*time.Millisecond)
		}
		f.check(t)
	}
	settleGoroutines(t, before)
}
