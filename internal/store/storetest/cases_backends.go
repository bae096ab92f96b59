package storetest

// cases_backends.go: a pull run's backend limits, counted in the database
// so that they hold across every server (ClaimNodeRun with a Backend).

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// claimOn claims certname's next pull run on backend within lim.
func (e *env) claimOn(certname, backend string, lim muster.BackendLimit) (muster.Run, bool, error) {
	return e.s.ClaimNodeRun(e.ctx, muster.NodeClaim{Certname: certname, Owner: owner(certname), LeaseTTL: agentTTL,
		Now: e.clk.Now(), Backend: backend, Limit: lim})
}

func (e *env) wantLoad(want map[string]int) {
	e.t.Helper()
	got, err := e.s.BackendLoad(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Errorf("BackendLoad = %v, want %v", got, want)
	}
}

func testBackendMaxRunning(e *env) {
	names := []string{"n1", "n2", "n3", "n4"}
	e.signedNodes(names...)
	e.pull(names, nil)
	lim := muster.BackendLimit{MaxRunning: 2}
	var held []muster.Run
	for i, name := range names {
		r, ok, err := e.claimOn(name, "puppet1", lim)
		switch {
		case i < 2 && (!ok || err != nil):
			e.t.Fatalf("claim %d on a backend with room: %v, %v", i, ok, err)
		case i >= 2 && (ok || !errors.Is(err, muster.ErrBackendFull)):
			e.t.Fatalf("claim %d on a full backend: %v, %v; want ErrBackendFull", i, ok, err)
		}
		if ok {
			held = append(held, r)
		}
	}
	// Another backend is not counted against this one; a refused claim
	// left its run waiting.
	if _, ok, err := e.claimOn("n3", "puppet2", lim); !ok || err != nil {
		e.t.Fatalf("claim on another backend: %v, %v", ok, err)
	}
	e.wantLoad(map[string]int{"puppet1": 2, "puppet2": 1})
	e.complete(held[0], muster.OutcomeSucceeded)
	e.wantLoad(map[string]int{"puppet1": 1, "puppet2": 1})
	if r, ok, err := e.claimOn("n4", "puppet1", lim); !ok || err != nil || r.Node != "n4" {
		e.t.Fatalf("claim after a run ended: %+v, %v, %v", r, ok, err)
	}
	// A run without a backend (an operator's old-style claim) is not
	// counted on any.
	e.pull([]string{"n1"}, nil)
	e.claimNode("n1", true)
	e.wantLoad(map[string]int{"puppet1": 2, "puppet2": 1})
}

func testBackendRate(e *env) {
	names := []string{"r1", "r2", "r3", "r4"}
	e.signedNodes(names...)
	e.pull(names, nil)
	lim := muster.BackendLimit{Rate: 2, Burst: 2}
	for i, name := range names[:3] {
		_, ok, err := e.claimOn(name, "b", lim)
		if want := i < 2; ok != want || !want && !errors.Is(err, muster.ErrBackendFull) {
			e.t.Fatalf("claim %d within a burst of 2: %v, %v", i, ok, err)
		}
	}
	e.clk.Advance(500 * time.Millisecond) // one token back at 2/s
	if _, ok, err := e.claimOn("r3", "b", lim); !ok || err != nil {
		e.t.Fatalf("claim after a refill: %v, %v", ok, err)
	}
	if _, ok, err := e.claimOn("r4", "b", lim); ok || !errors.Is(err, muster.ErrBackendFull) {
		e.t.Fatalf("claim with the bucket empty again: %v, %v", ok, err)
	}
	for _, bad := range []muster.BackendLimit{{MaxRunning: -1}, {Rate: -1}, {Rate: 1, Burst: 0.5}} {
		if _, _, err := e.claimOn("r4", "b", bad); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("limits %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// testBackendConcurrent claims from many goroutines at once (on
// PostgreSQL, many connections: the servers of a fleet): exactly the
// backend's limit get runs.
func testBackendConcurrent(e *env) {
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("c%02d", i))
	}
	e.signedNodes(names...)
	e.pull(names, nil)
	lim := muster.BackendLimit{MaxRunning: 3}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got, full := 0, 0
	for _, name := range names {
		wg.Go(func() {
			_, ok, err := e.claimOn(name, "shared", lim)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ok:
				got++
			case errors.Is(err, muster.ErrBackendFull):
				full++
			default:
				e.t.Errorf("claim of %s: %v, %v", name, ok, err)
			}
		})
	}
	wg.Wait()
	if got != 3 || full != len(names)-3 {
		e.t.Errorf("%d claims got a run and %d were refused; want 3 and %d", got, full, len(names)-3)
	}
	e.wantLoad(map[string]int{"shared": 3})
}

func testNodeFacts(e *env) {
	e.signedNodes("f1")
	if facts, at, err := e.s.NodeFacts(e.ctx, "f1"); err != nil || string(facts) != "{}" || !at.IsZero() {
		e.t.Fatalf("facts before any upload: %s, %v, %v", facts, at, err)
	}
	at := e.clk.Now()
	want := `{"os":{"family":"Debian","release":{"major":"12"}}}`
	if err := e.s.SetNodeFacts(e.ctx, "f1", []byte(want), at); err != nil {
		e.t.Fatal(err)
	}
	facts, got, err := e.s.NodeFacts(e.ctx, "f1")
	if err != nil || string(facts) != want || !got.Equal(at.Truncate(time.Microsecond)) {
		e.t.Errorf("facts: %s at %v, %v", facts, got, err)
	}
	if n, err := e.s.GetNode(e.ctx, "f1"); err != nil || !n.FactsAt.Equal(got) {
		e.t.Errorf("node's FactsAt %v, want %v (%v)", n.FactsAt, got, err)
	}
	for _, bad := range []struct {
		node, facts string
		want        error
	}{
		{"f1", `[1,2]`, muster.ErrInvalid},
		{"f1", `{"a":`, muster.ErrInvalid},
		{"nobody", `{}`, muster.ErrNotFound},
	} {
		if err := e.s.SetNodeFacts(e.ctx, bad.node, []byte(bad.facts), at); !errors.Is(err, bad.want) {
			e.t.Errorf("SetNodeFacts(%s, %s) = %v, want %v", bad.node, bad.facts, err, bad.want)
		}
	}
	if _, err := e.s.RevokeNode(e.ctx, "f1"); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.SetNodeFacts(e.ctx, "f1", []byte(`{}`), at); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("a revoked node's upload: %v, want ErrNotFound", err)
	}
}
