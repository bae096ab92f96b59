package storetest

// cases_once.go: jobs with a OnceKey exist at most once, whoever submits
// them, on every server of the database.

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/muster-run/muster"
)

func testOnceKey(e *env) {
	first := e.submit(muster.Job{Targets: []string{"a", "b"}, Spec: spec("hook"), OnceKey: "hook:web:a"})
	if first.Existing || len(first.Runs) != 2 {
		e.t.Fatalf("first submit: %+v", first)
	}
	again, err := e.s.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{"a"}, Spec: spec("other"), OnceKey: "hook:web:a"})
	if err != nil || !again.Existing || again.Job.ID != first.Job.ID || len(again.Runs) != 0 || again.Job.OnceKey != "hook:web:a" {
		e.t.Fatalf("a second submit with the key: %+v, %v; want the first job, nothing stored", again, err)
	}
	if n := len(e.runs(muster.RunFilter{Node: "a"})); n != 1 {
		e.t.Errorf("node a has %d runs, want 1", n)
	}
	// Cancelled, the job still holds its key.
	if _, err := e.s.CancelJob(e.ctx, first.Job.ID); err != nil {
		e.t.Fatal(err)
	}
	if res, err := e.s.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{"a"}, OnceKey: "hook:web:a"}); err != nil || !res.Existing {
		e.t.Errorf("a submit after the cancel: %+v, %v; want the cancelled job", res, err)
	}
	if other := e.submit(muster.Job{Targets: []string{"a"}, Spec: spec("hook"), OnceKey: "hook:web:b"}); other.Existing {
		e.t.Errorf("another key: %+v", other)
	}
	long := make([]byte, 513)
	for i := range long {
		long[i] = 'k'
	}
	if _, err := e.s.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{"a"}, OnceKey: string(long)}); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("a 513-byte key: %v, want ErrInvalid", err)
	}
}

// testOnceKeyConcurrent submits one key from many goroutines at once (on
// PostgreSQL, many connections): one job is stored.
func testOnceKeyConcurrent(e *env) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[int64]int{}
	stored := 0
	for range 12 {
		wg.Go(func() {
			res, err := e.s.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Targets: []string{"n1"},
				Spec: json.RawMessage(`{"command":"hook"}`), OnceKey: "hook:race"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				e.t.Errorf("submit: %v", err)
				return
			}
			ids[res.Job.ID]++
			if !res.Existing {
				stored++
			}
		})
	}
	wg.Wait()
	if len(ids) != 1 || stored != 1 {
		e.t.Errorf("12 submits of one key stored %d jobs (%v); want one", stored, ids)
	}
}
