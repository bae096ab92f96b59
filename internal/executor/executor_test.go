package executor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func targets(n int) []*muster.Target {
	ts := make([]*muster.Target, n)
	for i := range ts {
		ts[i] = &muster.Target{Name: fmt.Sprintf("t%03d", i)}
	}
	return ts
}

func ok(t *muster.Target) *muster.Result { return &muster.Result{Target: t.Name, Action: "command"} }

func TestWindowNeverExceedsConcurrency(t *testing.T) {
	for _, conc := range []int{1, 3, 10, 200} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			var inFlight, peak atomic.Int64
			res := Run(context.Background(), targets(50), Options{Concurrency: conc}, "command", "x",
				func(ctx context.Context, tg *muster.Target) *muster.Result {
					n := inFlight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					inFlight.Add(-1)
					return ok(tg)
				})
			if len(res) != 50 {
				t.Fatalf("got %d results, want 50", len(res))
			}
			if want := int64(min(conc, 50)); peak.Load() > want {
				t.Errorf("peak in flight = %d, want at most %d", peak.Load(), want)
			}
		})
	}
}

// A slow target must not hold back the window: with concurrency 2, while
// t000 blocks, every other target still runs (sliding window, not batches).
func TestSlidingWindowNotBatches(t *testing.T) {
	release := make(chan struct{})
	var others atomic.Int64
	done := make(chan []*muster.Result)
	go func() {
		done <- Run(context.Background(), targets(10), Options{Concurrency: 2}, "command", "x",
			func(ctx context.Context, tg *muster.Target) *muster.Result {
				if tg.Name == "t000" {
					<-release
				} else if others.Add(1) == 9 {
					close(release)
				}
				return ok(tg)
			})
	}()
	res := <-done
	if len(res) != 10 || res[len(res)-1].Target != "t000" {
		t.Fatalf("t000 should finish last after the 9 others ran beside it; order: %v", order(res))
	}
}

func order(rs []*muster.Result) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Target)
	}
	return s
}

func TestCancelMarksUnstartedTargets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int64
	res := Run(ctx, targets(20), Options{Concurrency: 2}, "command", "x",
		func(ctx context.Context, tg *muster.Target) *muster.Result {
			if started.Add(1) == 2 {
				cancel()
			}
			<-ctx.Done()
			return &muster.Result{Target: tg.Name, Error: muster.Errorf(muster.KindCancelled, "cancelled")}
		})
	if len(res) != 20 {
		t.Fatalf("got %d results, want one per target (20)", len(res))
	}
	if started.Load() > 3 {
		t.Errorf("%d targets started after cancel, want at most 3", started.Load())
	}
	notStarted := 0
	for _, r := range res {
		if r.OK() || r.Error.Kind != muster.KindCancelled {
			t.Errorf("%s: got %+v, want a cancelled failure", r.Target, r.Error)
		}
		if r.Error.Details["started"] == false {
			notStarted++
		}
	}
	if notStarted < 17 {
		t.Errorf("%d targets reported as never started, want at least 17", notStarted)
	}
}

func TestPanicBecomesFailedResult(t *testing.T) {
	res := Run(context.Background(), targets(3), Options{}, "command", "x",
		func(ctx context.Context, tg *muster.Target) *muster.Result {
			if tg.Name == "t001" {
				panic("boom")
			}
			return ok(tg)
		})
	failures := 0
	for _, r := range res {
		if !r.OK() {
			failures++
			if r.Target != "t001" || r.Error.Kind != muster.KindInternal {
				t.Errorf("unexpected failure %s: %+v", r.Target, r.Error)
			}
		}
	}
	if failures != 1 || len(res) != 3 {
		t.Fatalf("got %d failures in %d results, want 1 in 3", failures, len(res))
	}
}

func TestTimeoutIsPerTarget(t *testing.T) {
	res := Run(context.Background(), targets(2), Options{Timeout: 20 * time.Millisecond}, "command", "x",
		func(ctx context.Context, tg *muster.Target) *muster.Result {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("%s: context has no deadline", tg.Name)
			}
			<-ctx.Done()
			return &muster.Result{Target: tg.Name, Error: muster.ContextError(ctx, "command on "+tg.Name)}
		})
	if len(res) != 2 {
		t.Fatalf("got %d results", len(res))
	}
	for _, r := range res {
		if r.Error == nil || r.Error.Kind != muster.KindTimeout || !strings.Contains(r.Error.Msg, "time limit of 20ms") {
			t.Errorf("%s: error = %v, want a timeout naming the 20ms limit", r.Target, r.Error)
		}
	}
}

func TestObserversAreSerialised(t *testing.T) {
	var mu sync.Mutex
	busy := false
	check := func() {
		mu.Lock()
		if busy {
			t.Error("observer calls overlap")
		}
		busy = true
		mu.Unlock()
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		busy = false
		mu.Unlock()
	}
	var started, finished atomic.Int64
	Run(context.Background(), targets(100), Options{Concurrency: 50,
		Started:  func(*muster.Target) { check(); started.Add(1) },
		Finished: func(*muster.Result) { check(); finished.Add(1) },
	}, "command", "x", func(ctx context.Context, tg *muster.Target) *muster.Result { return ok(tg) })
	if started.Load() != 100 || finished.Load() != 100 {
		t.Errorf("started %d, finished %d, want 100 each", started.Load(), finished.Load())
	}
}
