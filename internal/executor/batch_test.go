package executor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func failing(names ...string) Func {
	bad := map[string]bool{}
	for _, n := range names {
		bad[n] = true
	}
	return func(ctx context.Context, t *muster.Target) *muster.Result {
		r := ok(t)
		if bad[t.Name] {
			r.Error = muster.Errorf(muster.KindCommand, "failed")
		}
		return r
	}
}

func count(rs []*muster.Result) (okN, failed, notRun int) {
	for _, r := range rs {
		switch {
		case r.OK():
			okN++
		case r.Error.Kind == muster.KindNotRun:
			notRun++
		default:
			failed++
		}
	}
	return
}

func TestRolling(t *testing.T) {
	tests := []struct {
		name                    string
		rolling                 Rolling
		fn                      Func
		wantOK, wantF, wantSkip int
	}{
		{"no limit", Rolling{Size: 3, MaxFailures: NoLimit}, failing("t001", "t005"), 8, 2, 0},
		{"stop after first failure", Rolling{Size: 1, MaxFailures: 0}, failing("t003"), 3, 1, 6},
		{"tolerate two", Rolling{Size: 1, MaxFailures: 2}, failing("t001", "t002", "t003", "t004"), 1, 3, 6},
		{"percent limit", Rolling{Size: 1, MaxFailuresPercent: 20}, failing("t000", "t001", "t002"), 0, 3, 7},
		{"canary fails", Rolling{Canary: 1, MaxFailures: NoLimit}, failing("t000"), 0, 1, 9},
		{"canary passes", Rolling{Canary: 2, Size: 4, MaxFailures: NoLimit}, failing("t009"), 9, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rolling
			res := Run(context.Background(), targets(10), Options{Concurrency: 100, Rolling: &r}, "command", "x", tc.fn)
			o, f, s := count(res)
			if o != tc.wantOK || f != tc.wantF || s != tc.wantSkip || len(res) != 10 {
				t.Errorf("ok/failed/not-run = %d/%d/%d, want %d/%d/%d", o, f, s, tc.wantOK, tc.wantF, tc.wantSkip)
			}
		})
	}
}

func TestRollingWindowAndCanaryOrder(t *testing.T) {
	var inFlight, peak atomic.Int64
	var canaryDone atomic.Bool
	fn := func(ctx context.Context, tg *muster.Target) *muster.Result {
		n := inFlight.Add(1)
		if p := peak.Load(); n > p {
			peak.CompareAndSwap(p, n)
		}
		if tg.Name != "t000" && !canaryDone.Load() {
			t.Errorf("%s started before the canary finished", tg.Name)
		}
		time.Sleep(time.Millisecond)
		if tg.Name == "t000" {
			canaryDone.Store(true)
		}
		inFlight.Add(-1)
		return ok(tg)
	}
	res := Run(context.Background(), targets(20), Options{Concurrency: 100, Rolling: &Rolling{Canary: 1, Percent: 10, MaxFailures: NoLimit}}, "command", "x", fn)
	if len(res) != 20 || peak.Load() > 2 {
		t.Errorf("%d results, peak %d in flight; want 20 and at most 2 (10%% of 20)", len(res), peak.Load())
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string][2]float64{"5": {5, 0}, "10%": {0, 10}, " 3 ": {3, 0}} {
		n, p, err := ParseCount("--batch", in)
		if err != nil || float64(n) != want[0] || p != want[1] {
			t.Errorf("ParseCount(%q) = %d, %v, %v", in, n, p, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "0%", "150%", "5%%"} {
		if _, _, err := ParseCount("--batch", bad); err == nil {
			t.Errorf("ParseCount(%q) accepted", bad)
		}
	}
}
