package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/store/postgres"
	"github.com/muster-run/muster/internal/testkit/pgtest"
)

// TestWakeAcrossStores checks that a submission through one store wakes
// another store on the same database (LISTEN/NOTIFY), and that the
// listener comes back after its connection is killed.
func TestWakeAcrossStores(t *testing.T) {
	ctx := context.Background()
	a := factory(t)(t).(*postgres.Store)
	var path string
	if err := a.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	// B pings its listening connection every 20ms, so the waits below
	// also cover a listener that keeps timing out and pinging.
	old := postgres.SetListenCheck(20 * time.Millisecond)
	b, err := postgres.Open(ctx, pgtest.WithSearchPath(t, pgtest.URL(t), path))
	postgres.SetListenCheck(old)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	drain := func() {
		for {
			select {
			case <-b.Wake():
			default:
				return
			}
		}
	}
	wantWake := func(what string) {
		t.Helper()
		select {
		case <-b.Wake():
		case <-time.After(10 * time.Second):
			t.Fatalf("store B was not woken by %s", what)
		}
	}
	submit := func(node string) {
		t.Helper()
		if _, err := a.SubmitJob(ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{node}}); err != nil {
			t.Fatal(err)
		}
	}

	drain()
	time.Sleep(100 * time.Millisecond) // several timeouts and pings
	if _, n := postgres.ListenerState(b); n != 1 {
		t.Fatalf("the idle listener connected %d times, want once: a timeout must not cost the connection", n)
	}
	submit("n1")
	wantWake("a submission on store A")

	pid, conns := postgres.ListenerState(b)
	if pid == 0 {
		t.Fatal("store B's listener has no connection")
	}
	var killed bool
	if err := a.DB().QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, n := postgres.ListenerState(b)
		if n > conns && p != 0 {
			if p == pid {
				t.Fatalf("the listener reconnected with the killed backend's pid %d", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener did not reconnect after its backend %d was terminated", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantWake("the listener's reconnection")
	drain()
	submit("n2")
	wantWake("a submission on store A after the listener reconnected")

	// Close stops the listener: its backend goes away.
	p, _ := postgres.ListenerState(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if p2, _ := postgres.ListenerState(b); p2 != 0 {
		t.Errorf("after Close the listener still has backend %d", p2)
	}
	waitGone(t, a.DB(), p)
}

// waitGone waits until the backend pid has left pg_stat_activity.
func waitGone(t *testing.T, db *sql.DB, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE pid=$1`, int64(pid)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still connected after Close", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodeSignalsAcrossStores checks that nodes signalled through one
// store reach every store on the database (the signalling one too), in
// chunks under the payload limit, and that a reconnected listener
// signals every node (nil).
func TestNodeSignalsAcrossStores(t *testing.T) {
	ctx := context.Background()
	a := factory(t)(t).(*postgres.Store)
	var path string
	if err := a.DB().QueryRow(`SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	b, err := postgres.Open(ctx, pgtest.WithSearchPath(t, pgtest.URL(t), path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	hear := func(s *postgres.Store) chan []string {
		c := make(chan []string, 100)
		s.OnNodeSignal(func(names []string) { c <- names })
		return c
	}
	ca, cb := hear(a), hear(b)
	collect := func(c chan []string, n int) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		for len(got) < n {
			select {
			case names := <-c:
				for _, name := range names {
					got[name] = true
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("heard %d of %d signalled nodes", len(got), n)
			}
		}
		return got
	}
	if err := a.SignalNodes(ctx, "web1.example.com", "web2.example.com"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chan []string{ca, cb} {
		if got := collect(c, 2); !got["web1.example.com"] || !got["web2.example.com"] {
			t.Errorf("heard %v", got)
		}
	}
	// More names than one notification holds.
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("node-%04d.a-rather-long-domain-name.example.com", i))
	}
	if err := b.SignalNodes(ctx, many...); err != nil {
		t.Fatal(err)
	}
	if got := collect(ca, len(many)); len(got) != len(many) {
		t.Errorf("heard %d names, want %d", len(got), len(many))
	}
	// A listener that reconnects signals every node.
	pid, _ := postgres.ListenerState(b)
	if _, err := a.DB().ExecContext(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case names := <-cb:
			if names == nil {
				return
			}
		case <-deadline:
			t.Fatal("the reconnected listener did not signal every node")
		}
	}
}
